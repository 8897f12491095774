"""The GPU launcher without a GPU: detection results are passed in as device lists, and the
supervisor runs real (tiny) processes."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.celery_harness import wait_until
from workers.devices import GpuDevice, parse_visible_devices
from workers.gpu_launcher import (
    NO_GPU_MESSAGE,
    Supervisor,
    WorkerSpec,
    build_cpu_worker_spec,
    build_worker_specs,
)

ROOT = Path(__file__).resolve().parents[2]
H200 = GpuDevice(index=0, visible_id="0", name="NVIDIA H200", memory_mb=143771)


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_it_starts_one_solo_single_job_worker_per_gpu_pinned_to_that_gpu():
    gpus = [
        H200,
        GpuDevice(index=1, visible_id="1", name="NVIDIA H200", memory_mb=143771),
        GpuDevice(index=2, visible_id="2", name="NVIDIA A100-SXM4-80GB", memory_mb=81920),
    ]
    specs = build_worker_specs(gpus)
    assert [s.name for s in specs] == ["gpu0", "gpu1", "gpu2"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in specs] == ["0", "1", "2"]
    for spec in specs:
        assert spec.argv[1:6] == ["-m", "celery", "-A", "workers.celery_app", "worker"]
        assert _option(spec.argv, "--pool") == "solo"
        assert _option(spec.argv, "--concurrency") == "1"
        assert _option(spec.argv, "--hostname") == f"{spec.name}@%h"
        assert spec.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert _option(specs[0].argv, "-Q") == "gpu,gpu.h200"
    assert _option(specs[2].argv, "-Q") == "gpu,gpu.a100"
    assert specs[2].env["TUNEFORGE_DEVICE_CLASS"] == "a100"


def test_workers_are_named_after_the_physical_gpu_when_the_launcher_sees_a_subset():
    # The launcher itself ran with CUDA_VISIBLE_DEVICES=2,3: torch calls them 0 and 1.
    gpus = [
        GpuDevice(index=0, visible_id="2", name="NVIDIA L4"),
        GpuDevice(index=1, visible_id="3", name="NVIDIA L4"),
    ]
    specs = build_worker_specs(gpus)
    assert [s.name for s in specs] == ["gpu2", "gpu3"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in specs] == ["2", "3"]
    uuid_gpu = GpuDevice(index=0, visible_id="GPU-5d3c1c2e-aaaa", name="NVIDIA L4")
    (spec,) = build_worker_specs([uuid_gpu])
    assert spec.name == "gpu0" and spec.env["CUDA_VISIBLE_DEVICES"] == "GPU-5d3c1c2e-aaaa"


def test_the_device_class_can_be_overridden_for_the_whole_machine():
    (spec,) = build_worker_specs(
        [GpuDevice(index=0, visible_id="0", name="NVIDIA H100 NVL")], device_class_override="h100nvl"
    )
    assert _option(spec.argv, "-Q") == "gpu,gpu.h100nvl"
    assert spec.env["TUNEFORGE_DEVICE_CLASS"] == "h100nvl"


def test_it_refuses_a_device_class_override_that_cannot_be_a_queue_name():
    with pytest.raises(ValueError, match="TUNEFORGE_DEVICE_CLASS='H100 NVL'"):
        build_worker_specs([H200], device_class_override="H100 NVL")


def test_extra_queues_are_added_to_every_worker():
    (spec,) = build_worker_specs([H200], extra_queues=["default"])
    assert _option(spec.argv, "-Q") == "gpu,gpu.h200,default"


def test_the_cpu_worker_consumes_the_cpu_queue_and_sees_no_gpu():
    spec = build_cpu_worker_spec()
    assert _option(spec.argv, "-Q") == "cpu"
    assert _option(spec.argv, "--hostname") == "cpu@%h"
    assert spec.env["CUDA_VISIBLE_DEVICES"] == ""


def test_it_reads_cuda_visible_devices():
    assert parse_visible_devices(None) is None
    assert parse_visible_devices("") == []
    assert parse_visible_devices("2, 3") == ["2", "3"]


def _launcher(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workers.gpu_launcher", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_without_a_gpu_it_says_so_and_exits_non_zero():
    result = _launcher(CUDA_VISIBLE_DEVICES="")
    assert result.returncode != 0
    assert NO_GPU_MESSAGE in result.stderr
    assert "--cpu" in result.stderr


def test_with_cpu_it_plans_one_cpu_worker():
    result = _launcher("--cpu", "--dry-run", "--extra-queues", "default", CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stderr
    assert "cpu: CPU; queues cpu,default" in result.stdout
    assert (
        "-m celery -A workers.celery_app worker --pool solo --concurrency 1 -Q cpu,default --hostname cpu@%h"
        in result.stdout
    )


def test_more_than_one_job_per_gpu_is_refused():
    result = _launcher("--cpu", "--dry-run", "--concurrency", "2")
    assert result.returncode != 0
    assert "--concurrency" in result.stderr


def _run_in_thread(supervisor: Supervisor) -> threading.Thread:
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    return thread


def _wait(predicate) -> None:
    wait_until(predicate, timeout=10, interval=0.05, message="the supervisor")


def test_the_supervisor_restarts_a_worker_that_crashes(tmp_path):
    crashing = WorkerSpec(name="crashy", argv=[sys.executable, "-c", "import sys; sys.exit(3)"])
    steady = WorkerSpec(name="steady", argv=[sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor = Supervisor(
        [crashing, steady], cwd=tmp_path, min_backoff=0.05, max_backoff=0.2, poll_interval=0.02
    )
    thread = _run_in_thread(supervisor)
    try:
        _wait(lambda: supervisor.restarts["crashy"] >= 3)
        assert supervisor.restarts["steady"] == 0
        steady_pid = supervisor.processes["steady"].pid
    finally:
        supervisor.request_stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(steady_pid, 0)


def test_the_supervisor_stops_every_worker_gracefully_then_kills_stragglers(tmp_path):
    graceful = WorkerSpec(name="graceful", argv=[sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = WorkerSpec(
        name="stubborn",
        argv=[
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open('stubborn.ready', 'w').close(); time.sleep(60)",
        ],
    )
    supervisor = Supervisor([graceful, stubborn], cwd=tmp_path, stop_timeout=1.0, poll_interval=0.02)
    thread = _run_in_thread(supervisor)
    _wait(lambda: len(supervisor.processes) == 2)
    _wait(lambda: (tmp_path / "stubborn.ready").exists())  # its SIGTERM handler is installed
    processes = dict(supervisor.processes)
    started = time.monotonic()
    supervisor.request_stop()
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert processes["graceful"].returncode == -15  # SIGTERM
    assert processes["stubborn"].returncode == -9  # SIGKILL after the stop timeout
    assert 0.9 < time.monotonic() - started < 10
