"""The job page a person watches (charts fed by polls that carry only what changed, events without
the per-step lines, the baseline labelled, elapsed time; the confusion matrix and misclassified
examples of a really trained model), comparing runs, and "New job from this one"."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from finetune.models import FineTuneJob, JobEvent, MetricPoint, ModelVersion
from tests.engine.tiny_models import BANKING_TEST, PEAK_MID_RUN_HYPERPARAMETERS, banking_rows
from tests.jobs.conftest import FAST_WORKER_ENV, submit, wait_for_status
from tests.jobs.tiny import make_dataset_version

BANKING_ROWS = banking_rows()
BANKING_TEST_ROWS = banking_rows(BANKING_TEST)

pytestmark = pytest.mark.django_db


def _web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _json_script(page: str, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page, re.S)
    assert match, f"no #{element_id} in the page"
    return json.loads(match.group(1))


def _points(job_id: str, *, train_steps, eval_steps) -> None:
    for step in train_steps:
        MetricPoint.objects.create(
            job_id=job_id,
            step=step,
            kind="train",
            values={"train_loss": 2.0 - step / 100, "learning_rate": 1e-4},
        )
    for step in eval_steps:
        MetricPoint.objects.create(
            job_id=job_id,
            step=step,
            kind="eval",
            values={
                "valid_loss": 2.5 - step / 100,
                "valid_accuracy": step / 100,
                "valid_confusion_matrix": [[1]],
            },
        )


def test_the_job_page_draws_the_curves_and_polls_only_what_changed(alice, alice_client, dataset_version):
    job = submit(alice_client, dataset_version)
    FineTuneJob.objects.filter(pk=job["id"]).update(status="running", started_at=timezone.now())
    _points(job["id"], train_steps=[1, 2, 3], eval_steps=[0])
    JobEvent.objects.create(job_id=job["id"], type="metrics", message="Step 3: train_loss=1.97")
    web = _web(alice)

    page = web.get(f"/jobs/{job['id']}/").content.decode()
    data = _json_script(page, "chart-data")
    assert [row[0] for row in data["train"]] == [1, 2, 3] and data["eval"] == [[0, 2.5, 0.0]]
    assert data["main_metric"] == "valid_accuracy"
    assert 'hx-trigger="every 2s"' in page and "Step 3: train_loss" not in page  # steps are the charts'
    assert "Untuned baseline (step 0)" in page and "Running for" in page
    last_event = re.search(r"after_event=(\d+)", page).group(1)

    _points(job["id"], train_steps=[4, 5], eval_steps=[5])
    JobEvent.objects.create(job_id=job["id"], level="warn", message="a warning while training")
    live = web.get(
        f"/jobs/{job['id']}/live/?after_event={last_event}&after_train=3&after_eval=0", HTTP_HX_REQUEST="true"
    ).content.decode()
    update = _json_script(live, "chart-update")
    assert [row[0] for row in update["train"]] == [4, 5] and [row[0] for row in update["eval"]] == [5]
    assert "a warning while training" in live and "Files validated" not in live  # only the new event
    assert 'hx-swap-oob="beforeend"' in live and "after_train=5&amp;after_eval=5" in live
    assert "Validation (step 5)" in live

    FineTuneJob.objects.filter(pk=job["id"]).update(
        status="succeeded", finished_at=timezone.now() + timedelta(minutes=3)
    )
    final = web.get(
        f"/jobs/{job['id']}/live/?after_event={last_event}", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "hx-trigger" not in final  # the finished job's answer stops the polling
    assert "Took 3 min from start to finish." in final

    assert web.get(f"/jobs/{job['id']}/live/?after_event=x").status_code == 400


@pytest.mark.slow
def test_a_trained_classifier_shows_its_confusion_matrix_per_class_scores_and_mistakes(
    alice, alice_client, dataset_version, start_worker, charlie
):
    start_worker(queues="cpu", name="results", env=FAST_WORKER_ENV)
    job = submit(alice_client, dataset_version)
    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=90)
    assert done["status"] == "succeeded", done["error"]

    version = ModelVersion.objects.get(pk=done["result_model_version"])
    assert "validation_predictions.jsonl" in {f["path"] for f in version.files}
    page = _web(alice).get(f"/jobs/{job['id']}/").content.decode()
    assert 'id="heatmap"' in page and "Per-class scores" in page and "data-sortable" in page
    for label in dataset_version.labels:
        assert f'<th scope="row" class="row-label">{label}</th>' in page
    matrix = version.metrics["final"]["valid_confusion_matrix"]
    wrong = sum(map(sum, matrix)) - sum(matrix[i][i] for i in range(len(matrix)))
    assert "Misclassified validation examples" in page
    assert page.count('<td class="example-text">') == min(wrong, 20)
    if wrong:
        assert f"{wrong} examples the final model got wrong" in page or f"{wrong} example the" in page
    else:
        assert "classified every validation example correctly" in page
    assert "hx-trigger" not in page
    assert _web(charlie).get(f"/jobs/{job['id']}/").status_code == 404

    # The training engine's own log lines carry a code and params: in Chinese they read Chinese,
    # while the API and the log download keep the English text.
    from django.conf import settings

    assert "Plan: " in page and "Model ready: " in page and "Exported the weights of step" in page
    web = _web(alice)
    web.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    chinese = web.get(f"/jobs/{job['id']}/").content.decode()
    for line in ("计划：", "模型就绪：", "调优前的基线：", "已导出第", "已写入产物：", "已分词"):
        assert line in chinese, line
    for line in (
        "Plan: ",
        "Model ready: ",
        "Baseline before tuning",
        "Exported the weights",
        "Artifacts written",
    ):
        assert line not in chinese, line
    logs = JobEvent.objects.filter(job_id=job["id"], source="log", data__code="engine.plan")
    assert logs.get().message.startswith("plan: ")


@pytest.mark.slow
def test_a_run_that_peaks_mid_run_says_which_step_was_kept_and_why_it_stopped(
    alice, alice_client, team, base_model, start_worker
):
    # The engine test's peak-mid-run run, through a job: the 4-intent rows, early stopping after 3
    # evaluations without improvement.
    version = make_dataset_version(team, n_train=len(BANKING_ROWS), n_valid=len(BANKING_TEST_ROWS))
    start_worker(queues="cpu", name="kept", env=FAST_WORKER_ENV)
    # Patience counted from step 3, the first evaluation (as from the start, but said on the page).
    hyperparameters = {
        **PEAK_MID_RUN_HYPERPARAMETERS,
        "early_stopping_patience": 3,
        "early_stopping_start_step": 3,
        "max_length": 32,
    }
    job = submit(alice_client, version, max_steps=None, hyperparameters=hyperparameters)
    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=120)
    assert done["status"] == "succeeded", done["error"]

    kept = done["kept_checkpoint"]
    evals = MetricPoint.objects.filter(job_id=job["id"], kind="eval", step__gt=0).order_by("step")
    accuracy = {p.step: p.values["valid_accuracy"] for p in evals}
    best_step = max(accuracy, key=lambda step: (accuracy[step], -step))
    assert kept["step"] == best_step < kept["last_step"] == done["progress"]["step"], accuracy
    assert (kept["metric"], kept["reason"]) == ("valid_accuracy", "best")
    assert kept["value"] == pytest.approx(accuracy[best_step])
    assert kept["stop_reason"] == "early_stopping" and kept["patience"] == 3
    assert kept["last_step"] < kept["planned_steps"] == done["progress"]["total_steps"]
    assert alice_client.get("/api/v1/jobs").json()["data"][0]["kept_checkpoint"] == kept

    page = _web(alice).get(f"/jobs/{job['id']}/").content.decode()
    kept_card = page[page.index('id="kept-checkpoint"') :].split("</section>")[0]
    assert f"<strong>step {kept['step']}</strong> of {kept['last_step']}" in kept_card
    assert "the best valid_accuracy" in kept_card
    assert (
        f"stopped early at step {kept['last_step']} of {kept['planned_steps']} planned: "
        "valid_accuracy had not improved for 3 evaluations. Only evaluations from step 3 on counted"
    ) in kept_card
    assert _json_script(page, "chart-data")["kept_step"] == kept["step"]  # the charts' marker
    # The poll that brings the finished job carries the marker too.
    live = _web(alice).get(f"/jobs/{job['id']}/live/?after_event=0", HTTP_HX_REQUEST="true").content.decode()
    assert _json_script(live, "chart-update")["kept_step"] == kept["step"]
    assert 'id="kept-checkpoint"' in live

    web = _web(alice)
    web.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    chinese = web.get(f"/jobs/{job['id']}/").content.decode()
    assert "保留的检查点" in chinese and "Kept checkpoint" not in chinese


def test_compare_puts_two_runs_side_by_side_with_only_the_settings_that_differ(
    alice, alice_client, dataset_version
):
    first = submit(alice_client, dataset_version, suffix="a")
    second = submit(alice_client, dataset_version, suffix="b", hyperparameters={"batch_size": 4})
    _points(first["id"], train_steps=[1, 2], eval_steps=[0, 2])
    _points(second["id"], train_steps=[1], eval_steps=[0])

    response = _web(alice).get(f"/jobs/compare/?ids={first['id']}&ids={second['id']}")
    assert response.status_code == 200
    page = response.content.decode()
    data = _json_script(page, "compare-data")
    assert [s["job"] for s in data["series"]] == [first["id"], second["id"]]
    assert [len(s["train"]) for s in data["series"]] == [2, 1]
    differing = page.split('class="table compare-differing"')[1].split("</table>")[0]
    assert "batch_size" in differing and "max_length" not in differing and "base_model" not in differing
    metrics = page.split('class="table compare-metrics"')[1].split("</table>")[0]
    assert "valid_accuracy" in metrics and "0.02" in metrics

    api = alice_client.get(f"/api/v1/jobs/compare?ids={first['id']},{second['id']}")
    assert api.status_code == 200
    body = api.json()
    assert body["object"] == "job_comparison" and [j["id"] for j in body["jobs"]] == [
        first["id"],
        second["id"],
    ]
    assert body["differing_hyperparameters"]["batch_size"] == [8, 4]
    assert body["metrics"]["valid_accuracy"] == [0.02, 0.0]


def test_compare_refuses_one_or_six_runs_clearly_and_another_teams_run_is_a_404(
    alice, alice_client, charlie, charlie_client, dataset_version
):
    jobs = [submit(alice_client, dataset_version)["id"] for _ in range(2)]
    FineTuneJob.objects.filter(pk__in=jobs).update(status="succeeded")
    jobs += [submit(alice_client, dataset_version)["id"] for _ in range(2)]
    FineTuneJob.objects.filter(pk__in=jobs).update(status="succeeded")
    jobs += [submit(alice_client, dataset_version)["id"] for _ in range(2)]
    web = _web(alice)

    one = web.get(f"/jobs/compare/?ids={jobs[0]}")
    assert one.status_code == 400 and "Choose 2 to 5 jobs to compare; got 1." in one.content.decode()
    six = web.get(f"/jobs/compare/?ids={','.join(jobs)}")
    assert six.status_code == 400 and "got 6" in six.content.decode()
    api = alice_client.get(f"/api/v1/jobs/compare?ids={jobs[0]}")
    assert api.status_code == 400 and api.json()["error"]["field"] == "ids"

    assert _web(charlie).get(f"/jobs/compare/?ids={jobs[0]},{jobs[1]}").status_code == 404
    assert charlie_client.get(f"/api/v1/jobs/compare?ids={jobs[0]},{jobs[1]}").status_code == 404


def test_new_job_from_this_one_prefills_the_form_and_keeps_the_hidden_hyperparameters(
    alice, alice_client, charlie, dataset_version
):
    source = submit(
        alice_client,
        dataset_version,
        suffix="orig",
        seed=7,
        hyperparameters={"batch_size": 4, "warmup_ratio": 0.2},
    )
    FineTuneJob.objects.filter(pk=source["id"]).update(status="succeeded")
    web = _web(alice)
    assert f'href="/jobs/new/?from={source["id"]}"' in web.get(f"/jobs/{source['id']}/").content.decode()

    form = web.get(f"/jobs/new/?from={source['id']}").content.decode()
    assert re.search(r'name="batch_size" value="4"', form) and re.search(r'name="seed" value="7"', form)
    assert re.search(r'name="suffix" value="orig"', form) and f'value="{source["id"]}"' in form
    assert re.search(rf'<option value="{dataset_version.id}" selected', form)
    assert "copied: change what you want to try" in form
    assert _web(charlie).get(f"/jobs/new/?from={source['id']}").status_code == 404

    fields = {
        "dataset_version": dataset_version.id,
        "model": "tiny-bert",
        "task": "",
        "method": "full",
        "n_epochs": "auto",
        "batch_size": "4",
        "learning_rate": "auto",
        "max_length": "32",
        "max_steps": "40",
        "device_class": "cpu",
        "priority": "normal",
        "suffix": "copy",
        "seed": "7",
        "from_job": source["id"],
        "action": "launch",
    }
    launched = web.post("/jobs/new/", fields)
    assert launched.status_code == 302, launched.content.decode()[:2000]
    copy = FineTuneJob.objects.get(suffix="copy")
    assert (
        copy.hyperparameters["warmup_ratio"] == 0.2
        and copy.hyperparameters["batch_size"] == 4
        and copy.seed == 7
    )


def test_the_job_page_and_its_polls_issue_as_many_queries_with_1000_points_as_with_10(
    alice, alice_client, dataset_version
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    small, large = (submit(alice_client, dataset_version)["id"] for _ in range(2))
    for job_id, n in ((small, 10), (large, 1000)):
        FineTuneJob.objects.filter(pk=job_id).update(status="running", started_at=timezone.now())
        MetricPoint.objects.bulk_create(
            MetricPoint(
                job_id=job_id, step=s, kind="train", values={"train_loss": 1.0, "learning_rate": 1e-4}
            )
            for s in range(1, n + 1)
        )
        MetricPoint.objects.bulk_create(
            MetricPoint(job_id=job_id, step=s, kind="eval", values={"valid_loss": 1.0, "valid_accuracy": 0.5})
            for s in range(0, n + 1, 10)
        )
    web = _web(alice)

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert web.get(url, HTTP_HX_REQUEST="true").status_code == 200
        return len(captured)

    for suffix in ("", "live/?after_event=0&after_train=5&after_eval=0"):
        assert queries(f"/jobs/{small}/{suffix}") == queries(f"/jobs/{large}/{suffix}"), suffix
    page = web.get(f"/jobs/{large}/").content.decode()
    assert len(_json_script(page, "chart-data")["train"]) == 1000


def _finished_with(job_id: str, team, *, task: str, labels: list[str], final: dict) -> FineTuneJob:
    FineTuneJob.objects.filter(pk=job_id).update(status="succeeded", task=task)
    job = FineTuneJob.objects.get(pk=job_id)
    ModelVersion.objects.create(
        team=team,
        name=f"ft:tiny-bert:{team.slug}::{job_id}",
        job=job,
        base_model=job.base_model,
        task=task,
        method="full",
        labels=labels,
        metrics={"final": final},
        storage_prefix=f"teams/{team.id}/models/x",
        files=[],
    )
    return FineTuneJob.objects.select_related("model_version").get(pk=job_id)


def test_the_confusion_matrix_puts_the_most_confused_classes_first_and_lists_the_worst_pairs(
    alice, alice_client, dataset_version, team
):
    from finetune.job_insights import job_results

    per_class = {x: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 10} for x in "abc"}
    job = _finished_with(
        submit(alice_client, dataset_version)["id"],
        team,
        task="classification",
        labels=["a", "b", "c"],
        # a is always right; c is taken for b 6 times of 10, b for c twice.
        final={"valid_confusion_matrix": [[10, 0, 0], [0, 8, 2], [0, 6, 4]], "valid_per_class": per_class},
    )
    results = job_results(job=job)
    assert results["labels"] == ["b", "c", "a"] and (results["n_validation"], results["n_wrong"]) == (30, 8)
    assert results["pairs"] == [
        {"label": "c", "predicted": "b", "count": 6},
        {"label": "b", "predicted": "c", "count": 2},
    ]
    c_row = results["rows"][1]
    assert [cell.count for cell in c_row.cells] == [6, 4, 0]
    assert (
        c_row.cells[0].bucket > c_row.cells[1].bucket > c_row.cells[2].bucket == 0 and c_row.cells[1].diagonal
    )
    page = _web(alice).get(f"/jobs/{job.id}/").content.decode()
    assert 'id="heatmap"' in page and "<strong>c</strong> taken for <strong>b</strong>: 6×" in page
    assert 'id="misclassified"' not in page  # no predictions file on this version

    multilabel = _finished_with(
        submit(alice_client, dataset_version)["id"],
        team,
        task="multilabel_classification",
        labels=["a", "b", "c"],
        final={"valid_confusion_matrix": {"a": [[1, 0], [0, 1]]}, "valid_per_class": per_class},
    )
    page = _web(alice).get(f"/jobs/{multilabel.id}/").content.decode()
    assert 'id="heatmap"' not in page and 'id="per-class"' in page
    # A version from before the engine said which step it kept claims nothing about it.
    assert 'id="kept-checkpoint"' not in page
    assert alice_client.get(f"/api/v1/jobs/{multilabel.id}").json()["kept_checkpoint"] is None
    unvalidated = _finished_with(
        submit(alice_client, dataset_version)["id"], team, task="classification", labels=["a"], final={}
    )
    FineTuneJob.objects.filter(pk=unvalidated.id).update(step=40)
    page = _web(alice).get(f"/jobs/{unvalidated.id}/").content.decode()
    assert "No validation set, so nothing to choose a step by" in page and "<strong>step 40</strong>" in page


def test_the_job_page_names_the_dataset_and_speaks_chinese_in_its_events_and_refusals(
    alice, alice_client, dataset_version
):
    from django.conf import settings

    from finetune.lifecycle import job_fail

    job = submit(alice_client, dataset_version)
    web = _web(alice)
    page = web.get(f"/jobs/{job['id']}/").content.decode()
    # The dataset's own name, linked to its version page, with the `dsv-` id beside it.
    name = dataset_version.dataset.name
    assert re.search(rf'class="dataset-link" href="[^"]*{dataset_version.id}[^"]*">{re.escape(name)} v', page)
    assert f"<code>{dataset_version.id}</code>" in page
    assert "Files validated:" in page and "Queued on cpu" in page

    web.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    chinese = web.get(f"/jobs/{job['id']}/").content.decode()
    # Events the platform wrote carry a code and params: the page shows them in Chinese.
    assert "文件已校验" in chinese and "已进入队列 cpu" in chinese and "已创建微调任务" in chinese
    assert "Files validated:" not in chinese and "Queued on cpu" not in chinese
    # A refusal of our services, shown through the messages framework, is Chinese too.
    refused = web.post(f"/jobs/{job['id']}/resume/", follow=True).content.decode()
    assert "只有已暂停的任务可以恢复" in refused and "only paused jobs can be resumed" not in refused
    # The API keeps speaking English to the same Chinese browser.
    api = alice_client.post(f"/api/v1/jobs/{job['id']}/resume", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert api.status_code == 409 and "only paused jobs can be resumed" in api.json()["error"]["message"]

    # A failure: a human, translated reason; the stored English detail beside it.
    FineTuneJob.objects.filter(pk=job["id"]).update(status="running")
    job_fail(job_id=job["id"], code="out_of_memory", message="The run ran out of host memory.")
    failed = web.get(f"/jobs/{job['id']}/").content.decode()
    assert "<strong>内存不足</strong> <code>out_of_memory</code>" in failed
    assert "任务失败（内存不足）：The run ran out of host memory." in failed
    # An event without a code (a training library's log line) stays as it was written.
    JobEvent.objects.create(job_id=job["id"], source="log", message="transformers: a library line")
    assert "transformers: a library line" in web.get(f"/jobs/{job['id']}/").content.decode()
