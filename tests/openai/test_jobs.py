"""/v1/fine_tuning/jobs through the official openai client.

A job created here is `validating_files` until the `finetune.check_job_files` task ran on a
default-queue worker (`files_checker`); without one it stays validating_files."""

from __future__ import annotations

import json

import openai
import pytest

from finetune.models import Checkpoint, FineTuneJob
from finetune.reconciler import jobs_reconcile
from tests.celery_harness import purge_broker, wait_until
from tests.jobs.tiny import banking_rows
from tests.openai.conftest import jsonl_file

pytestmark = pytest.mark.django_db(transaction=True)

SUPERVISED = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 8}}}


def create(client, file_id, **extra):
    return client.fine_tuning.jobs.create(model="tiny-bert", training_file=file_id, **extra)


@pytest.fixture
def files_checker(start_worker):
    """The short-task worker of the `default` queue, which checks a new job's files."""
    return start_worker(queues="default", name="files-check")


def wait_for_status(client, job_id, *statuses, timeout: float = 90):
    seen = []

    def reached():
        job = client.fine_tuning.jobs.retrieve(job_id)
        seen[:] = [job.status, job.error]
        return job if job.status in statuses else None

    return wait_until(
        reached, timeout=timeout, message=f"job {job_id} {'/'.join(statuses)}", detail=lambda: seen
    )


def test_a_job_is_created_listed_paused_resumed_cancelled_with_openais_shape(
    alice_openai, team, uploaded, base_model, files_checker
):
    job = create(alice_openai, uploaded.id, method=SUPERVISED, suffix="ops", seed=7)

    assert job.object == "fine_tuning.job" and job.id.startswith("ftjob-")
    assert job.status == "validating_files" and job.model == "tiny-bert" and job.training_file == uploaded.id
    assert (
        job.organization_id == team.id
        and job.seed == 7
        and job.fine_tuned_model is None
        and job.error is None
    )
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (1, 8)
    assert job.hyperparameters.learning_rate_multiplier == 1.0
    assert job.method.type == "supervised" and job.method.supervised.hyperparameters.n_epochs == 1
    assert job.result_files == [] and job.integrations == [] and job.validation_file is None
    assert FineTuneJob.objects.get(pk=job.id).suffix == "ops"

    assert [j.id for j in alice_openai.fine_tuning.jobs.list()] == [job.id]
    assert wait_for_status(alice_openai, job.id, "queued", "failed").status == "queued"
    assert alice_openai.fine_tuning.jobs.retrieve(job.id).created_at == job.created_at

    assert alice_openai.fine_tuning.jobs.pause(job.id).status == "queued"  # paused reads as queued on /v1/
    assert FineTuneJob.objects.get(pk=job.id).status == "paused"
    assert alice_openai.fine_tuning.jobs.resume(job.id).status == "queued"
    cancelled = alice_openai.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(openai.ConflictError):
        alice_openai.fine_tuning.jobs.cancel(job.id)

    events = list(alice_openai.fine_tuning.jobs.list_events(job.id, limit=3))
    assert events[0].object == "fine_tuning.job.event" and "Cancelled" in events[0].message
    assert len(events) > 3  # the client follows `after` through every page
    assert any("Files validated" in e.message for e in events)


def test_a_learning_rate_multiplier_scales_the_engines_automatic_rate(
    alice_openai, uploaded, base_model, files_checker
):
    job = create(alice_openai, uploaded.id, hyperparameters={"n_epochs": 1, "learning_rate_multiplier": 2})
    assert job.status == "validating_files" and job.hyperparameters.learning_rate_multiplier == 2.0

    job = wait_for_status(alice_openai, job.id, "queued", "failed")
    assert job.status == "queued", job.error
    stored = FineTuneJob.objects.get(pk=job.id)
    assert stored.hyperparameters["learning_rate"] == pytest.approx(
        2 * stored.validation["auto_learning_rate"]
    )
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(2.0)


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"method": {"type": "dpo", "dpo": {}}}, "method.type"),
        ({"method": {"type": "reinforcement"}}, "method.type"),
        ({"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata." + "k" * 65),
        ({"metadata": {"team": "v" * 513}}, "metadata.team"),
        ({"metadata": {"team": 3}}, "metadata.team"),
        (
            {
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"learning_rate_multiplier": -1}},
                }
            },
            "method.supervised.hyperparameters.learning_rate_multiplier",
        ),
        ({"suffix": "no spaces allowed"}, "suffix"),
    ],
)
def test_what_the_face_cannot_do_is_a_400_naming_the_parameter(
    alice_openai, uploaded, base_model, extra, param
):
    with pytest.raises(openai.BadRequestError) as excinfo:
        create(alice_openai, uploaded.id, **extra)
    assert excinfo.value.body["param"] == param, excinfo.value.body
    assert not FineTuneJob.objects.exists()


def test_an_unknown_model_or_training_file_names_the_parameter(alice_openai, uploaded, base_model):
    with pytest.raises(openai.BadRequestError) as excinfo:
        alice_openai.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded.id)
    assert excinfo.value.body["param"] == "model" and "tiny-bert" in excinfo.value.body["message"]
    with pytest.raises(openai.NotFoundError) as excinfo:
        create(alice_openai, "dsv-nope")
    assert excinfo.value.body["param"] == "training_file"
    with pytest.raises(openai.NotFoundError) as excinfo:
        create(alice_openai, uploaded.id, validation_file="dsv-nope")
    assert excinfo.value.body["param"] == "validation_file"


def test_a_file_in_use_by_a_job_cannot_be_deleted(alice_openai, uploaded, base_model):
    create(alice_openai, uploaded.id, method=SUPERVISED)
    with pytest.raises(openai.ConflictError):
        alice_openai.files.delete(uploaded.id)


def test_checkpoints_are_listed_in_openais_shape(alice_openai, team, uploaded, base_model):
    job = create(alice_openai, uploaded.id, method=SUPERVISED, suffix="ck")
    Checkpoint.objects.create(
        job_id=job.id, step=20, storage_prefix="x", files=[], metrics={"train_loss": 0.9, "valid_loss": 1.1}
    )

    [checkpoint] = alice_openai.fine_tuning.jobs.checkpoints.list(job.id)

    assert checkpoint.object == "fine_tuning.job.checkpoint" and checkpoint.fine_tuning_job_id == job.id
    assert checkpoint.step_number == 20
    assert checkpoint.fine_tuned_model_checkpoint == f"ft:tiny-bert:{team.slug}:ck:{job.id}:ckpt-step-20"
    assert (checkpoint.metrics.step, checkpoint.metrics.train_loss, checkpoint.metrics.valid_loss) == (
        20,
        0.9,
        1.1,
    )


def test_another_teams_job_is_a_404_and_a_read_only_key_cannot_change_jobs(
    alice_openai, charlie_openai, reader_openai, uploaded, base_model
):
    job = create(alice_openai, uploaded.id, method=SUPERVISED)
    jobs = charlie_openai.fine_tuning.jobs
    for call in (jobs.retrieve, jobs.cancel, jobs.pause, jobs.list_events, jobs.checkpoints.list):
        with pytest.raises(openai.NotFoundError):
            list(call(job.id)) if call in (jobs.list_events, jobs.checkpoints.list) else call(job.id)
    assert list(jobs.list()) == []

    assert reader_openai.fine_tuning.jobs.retrieve(job.id).id == job.id
    with pytest.raises(openai.PermissionDeniedError):
        reader_openai.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.PermissionDeniedError):
        create(reader_openai, uploaded.id)
    assert FineTuneJob.objects.get(pk=job.id).status == "validating_files"  # no files checker here


@pytest.mark.slow
def test_a_job_submitted_through_the_client_trains_and_its_model_is_retrievable(
    alice_openai, uploaded, base_model, start_worker
):
    import time

    start_worker(queues="default,cpu", name="openai-e2e")
    job = create(alice_openai, uploaded.id, method=SUPERVISED, suffix="e2e")
    assert job.status == "validating_files"  # the default-queue worker checks the files next
    deadline = time.monotonic() + 120
    while job.status not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = alice_openai.fine_tuning.jobs.retrieve(job.id)

    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith("ft:tiny-bert:") and job.fine_tuned_model.endswith(
        f":e2e:{job.id}"
    )
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at
    model = alice_openai.models.retrieve(job.fine_tuned_model)
    assert model.id == job.fine_tuned_model and model.object == "model"
    assert job.fine_tuned_model in [m.id for m in alice_openai.models.list()]
    metrics = [e for e in alice_openai.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"]
    assert any("train_loss" in e.data for e in metrics) and any("valid_loss" in e.data for e in metrics)


def validation_upload(client, n: int = 17, *, label: str | None = None):
    rows = banking_rows()[-n:]
    if label is not None:
        rows = [{**row, "label": label} if i % 2 else row for i, row in enumerate(rows)]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    return client.files.create(file=jsonl_file(content, name="valid.jsonl"), purpose="fine-tune")


def test_validation_file_and_metadata_round_trip_on_both_faces(
    alice_openai, alice_key, uploaded, base_model, client, files_checker
):
    valid = validation_upload(alice_openai, 17)
    job = create(alice_openai, uploaded.id, validation_file=valid.id, metadata={"team": "red", "run": "7"})
    assert wait_for_status(alice_openai, job.id, "queued", "failed").status == "queued"

    assert job.validation_file == valid.id and job.metadata == {"team": "red", "run": "7"}
    again = alice_openai.fine_tuning.jobs.retrieve(job.id)
    assert again.validation_file == valid.id and again.metadata == {"team": "red", "run": "7"}
    # The job evaluates on every row of the validation file, not on the training file's own split.
    stored = FineTuneJob.objects.get(pk=job.id)
    assert stored.validation["n_valid"] == 17
    assert any("17 validation rows" in e.message for e in alice_openai.fine_tuning.jobs.list_events(job.id))
    # validating_files comes first, then queued, as the job's status events show.
    statuses = [e.data.get("status") for e in stored.events.order_by("id") if e.data.get("status")]
    assert statuses[:2] == ["validating_files", "queued"]

    response = client.get(f"/api/v1/jobs/{job.id}", HTTP_AUTHORIZATION=f"Bearer {alice_key[1]}")
    assert response.status_code == 200, response.content
    native = response.json()
    assert native["validation_dataset_version"] == valid.id and native["metadata"] == {
        "team": "red",
        "run": "7",
    }


def test_a_file_that_fails_the_check_fails_the_job_with_an_error_naming_the_file(
    alice_openai, uploaded, base_model, files_checker
):
    valid = validation_upload(alice_openai, 5, label="no_such_intent")
    job = create(alice_openai, uploaded.id, validation_file=valid.id)
    assert job.status == "validating_files"

    failed = wait_for_status(alice_openai, job.id, "failed", "queued")

    assert failed.status == "failed" and failed.error.param == "validation_file", failed.error
    assert valid.id in failed.error.message and "no_such_intent" in failed.error.message
    assert failed.error.code == "label_mismatch" and failed.finished_at is not None
    events = list(alice_openai.fine_tuning.jobs.list_events(job.id))
    assert events[0].level == "error" and "no_such_intent" in events[0].message

    # Hyperparameters are checked against the files, in the same check.
    bad = create(alice_openai, uploaded.id, hyperparameters={"n_epochs": 0})
    failed = wait_for_status(alice_openai, bad.id, "failed", "queued")
    assert failed.status == "failed" and failed.error.param == "hyperparameters.n_epochs", failed.error


def test_a_job_is_cancelled_while_its_files_are_checked(alice_openai, uploaded, base_model, start_worker):
    job = create(alice_openai, uploaded.id, method=SUPERVISED)
    cancelled = alice_openai.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None

    # The check's message, taken now, finds the job cancelled and leaves it so: a later job's check
    # runs after it on the one worker and queues that job.
    start_worker(queues="default", name="files-check")
    later = create(alice_openai, uploaded.id, method=SUPERVISED)
    assert wait_for_status(alice_openai, later.id, "queued", "failed").status == "queued"
    stored = FineTuneJob.objects.get(pk=job.id)
    assert stored.status == "cancelled" and not stored.validation
    assert not stored.events.filter(message__startswith="Files validated").exists()


def test_the_reconciler_resends_a_lost_files_check(
    alice_openai, uploaded, base_model, start_worker, settings
):
    job = create(alice_openai, uploaded.id, method=SUPERVISED)
    purge_broker()  # the broker lost the check's message
    assert jobs_reconcile()["rechecked"] == []  # sent moments ago: it may be on its way
    FineTuneJob.objects.filter(pk=job.id).update(last_dispatched_at=None)

    assert jobs_reconcile()["rechecked"] == [job.id]
    start_worker(queues="default", name="files-check")
    assert wait_for_status(alice_openai, job.id, "queued", "failed").status == "queued"
    assert (
        FineTuneJob.objects.get(pk=job.id).events.filter(message__startswith="Files check re-sent").exists()
    )


@pytest.mark.slow
def test_a_job_with_a_validation_file_evaluates_on_it_and_its_final_metrics_event_has_step(
    alice_openai, uploaded, base_model, start_worker
):
    import time

    valid = validation_upload(alice_openai, 11)
    start_worker(queues="default,cpu", name="openai-valid")
    job = create(alice_openai, uploaded.id, method=SUPERVISED, validation_file=valid.id)
    deadline = time.monotonic() + 120
    while job.status not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = alice_openai.fine_tuning.jobs.retrieve(job.id)

    assert job.status == "succeeded", job.error
    stored = FineTuneJob.objects.get(pk=job.id)
    assert stored.validation["n_valid"] == 11
    separate = stored.validation_dataset_version
    assert stored.resolved_spec["validation_file"][0] == separate.normalized_file.name
    assert stored.model_version.lineage["validation_dataset_version"] == valid.id
    metrics = [e for e in alice_openai.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"]
    assert metrics and all("step" in e.data for e in metrics)
    final = metrics[0]  # newest first
    assert (
        "Model version" in final.message and final.data["step"] == stored.step and "valid_loss" in final.data
    )
