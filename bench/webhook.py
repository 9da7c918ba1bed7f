"""Webhook throughput: reviews/s of a 20-step JobFlow vs a trivial FastAPI echo endpoint.

Both targets are served the same way in the same run: uvicorn (h11), TLS 1.2+ with the same
certificate context from certs/, in this one server process (each on its own event loop),
logging off.
- `validate` / `mutate`: the real webhook app (`app.main.create_app`, metrics and all) behind
  `app.serve.Servers`, exactly what `zen-flow serve --webhook-only` runs.
- `echo`: a FastAPI app whose one POST route returns the request body unchanged.
The load runs in a separate process (2 cores: one serves, one loads) with aiohttp over
keep-alive TLS connections, like the API server's client, at a fixed concurrency; every target
gets the same AdmissionReview body. Reported: requests/s, p50 and p99 latency, and the ratio to
echo, plus the server process's CPU time per request (read around each measured slice; it does
not depend on other load on the machine, and its ratio is what a server-bound run would show,
since the one Python load process usually saturates before the echo server does).
Goal (issue 4): validate >= 0.5x echo in requests/s; `--check` exits 1 when it is missed.

    .venv/bin/python bench/webhook.py [--concurrency 16] [--duration 6] [--rounds 3] [--steps 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Run as `python bench/webhook.py`, this file's directory is sys.path[0] and the file itself
# would shadow the `webhook` package; the project root (installed editable) must win.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import uvicorn  # noqa: E402
from fastapi import FastAPI, Request, Response  # noqa: E402

from app import serve, settings  # noqa: E402
from certs import authority  # noqa: E402

GOAL = 0.5  # validate throughput as a fraction of the echo's (issue 4)
WARMUP = 0.5  # seconds of load before each measured slice: TLS set-up, first-call costs


def flow_review(steps: int) -> bytes:
    """An AdmissionReview CREATE of a realistic flow: fan-in DAG, Job templates with resources."""
    items = []
    for i in range(steps):
        deps = [f"step-{j}" for j in (i - 1, i - 2) if j >= 0]
        items.append(
            {
                "name": f"step-{i}",
                "dependencies": deps,
                "retryPolicy": {"limit": 2, "backoff": {"type": "Exponential", "duration": "10s"}},
                "timeoutSeconds": 600,
                "template": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {
                                        "name": "main",
                                        "image": "registry.example.com/etl/worker:1.4.2",
                                        "command": ["python", "-m", "etl", "--part", str(i)],
                                        "env": [{"name": "PART", "value": str(i)}],
                                        "resources": {
                                            "requests": {"cpu": "100m", "memory": "128Mi"},
                                            "limits": {"cpu": "1", "memory": "512Mi"},
                                        },
                                    }
                                ],
                            }
                        }
                    },
                },
            }
        )
    flow = {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"steps": items},
    }
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench-uid",
            "kind": {"group": "workflow.kube-zen.io", "version": "v1alpha1", "kind": "JobFlow"},
            "resource": {
                "group": "workflow.kube-zen.io",
                "version": "v1alpha1",
                "resource": "jobflows",
            },
            "name": "bench",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "bench"},
            "object": flow,
            "oldObject": None,
            "dryRun": False,
        },
    }
    return json.dumps(review).encode()


def echo_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    return app


class _QuietServer(uvicorn.Server):
    def capture_signals(self) -> Any:  # the bench process handles no signals
        import contextlib

        return contextlib.nullcontext()


def start_echo(tls_context: ssl.SSLContext) -> tuple[int, _QuietServer, threading.Thread]:
    """The echo app behind uvicorn with the webhook's own TLS context and settings."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as app.serve
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    config = uvicorn.Config(
        echo_app(),
        ssl_context_factory=lambda _c, _d: tls_context,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = _QuietServer(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("echo server did not start")
        time.sleep(0.01)
    return sock.getsockname()[1], server, thread


# -- the load generator (runs in its own process) -------------------------------------------------
async def _slice(
    session: Any, url: str, body: bytes, concurrency: int, duration: float, mark: Any
) -> tuple[list[float], int, float]:
    """Load ``url`` for WARMUP + ``duration`` s; latencies of the measured part. ``mark`` is
    called when measuring begins and ends (the server side reads its CPU time then)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = time.monotonic() + WARMUP + duration

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                ok = response.status == 200
            if not ok:
                errors += 1
            elif measuring:
                latencies.append(time.perf_counter() - started)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(WARMUP)
    mark("begin")
    measuring = True
    began = time.monotonic()
    await asyncio.sleep(stop_at - time.monotonic())
    measuring = False
    took = time.monotonic() - began
    mark("end", len(latencies))
    await asyncio.gather(*tasks)
    return latencies, errors, took


async def _load(
    targets: dict[str, str],
    body: bytes,
    ca_pem: str,
    concurrency: int,
    duration: float,
    rounds: int,
    conn: Any,
) -> dict[str, dict[str, Any]]:
    """Measure every target in ``rounds`` interleaved slices, so load from anything else on
    the machine drifts over all targets alike and the ratios stay fair."""
    import aiohttp

    context = ssl.create_default_context(cadata=ca_pem)
    collected: dict[str, tuple[list[float], int, float]] = {n: ([], 0, 0.0) for n in targets}
    for _ in range(rounds):
        for name, url in targets.items():
            connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)

            def mark(event: str, count: int = 0, name: str = name) -> None:
                conn.send((event, name, count))
                conn.recv()  # the server has read its CPU clock

            async with aiohttp.ClientSession(connector=connector) as session:
                lat, err, took = await _slice(
                    session, url, body, concurrency, duration / rounds, mark
                )
            old = collected[name]
            collected[name] = (old[0] + lat, old[1] + err, old[2] + took)
    results = {}
    for name, (latencies, errors, elapsed) in collected.items():
        latencies.sort()
        results[name] = {
            "rps": len(latencies) / elapsed,
            "p50": statistics.median(latencies) * 1000,
            "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
            "count": len(latencies),
            "errors": errors,
        }
    return results


def _load_process(conn: Any, *args: Any) -> None:
    conn.send(("done", asyncio.run(_load(*args, conn)), 0))


def measure(
    targets: dict[str, str],
    body: bytes,
    ca_pem: str,
    *,
    concurrency: int,
    duration: float,
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """Run the load in a separate process (the server keeps its own core) and add the server
    process's CPU time per request, which does not depend on what else the machine runs."""
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(
        target=_load_process,
        args=(there, targets, body, ca_pem, concurrency, duration, rounds),
    )
    proc.start()
    cpu = dict.fromkeys(targets, 0.0)
    counted = dict.fromkeys(targets, 0)
    began = 0.0
    budget = time.monotonic() + len(targets) * (duration + rounds * WARMUP) + 120
    while True:
        if not here.poll(max(0.0, budget - time.monotonic())):
            proc.kill()
            raise RuntimeError("the load generator did not finish")
        event, payload, count = here.recv()
        if event == "done":
            results: dict[str, dict[str, Any]] = payload
            break
        now = time.process_time()
        if event == "begin":
            began = now
        else:
            cpu[payload] += now - began
            counted[payload] += count
        here.send("ok")
    proc.join(timeout=30)
    for name, result in results.items():
        result["cpu_ms"] = cpu[name] / max(1, counted[name]) * 1000
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per target")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices per target")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args()

    body = flow_review(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        ca, _ = authority.write_bundle(
            Path(tmp), dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
        ca_pem = ca.cert_pem.decode()
        config = settings.load(
            {
                "webhook_host": "127.0.0.1",
                "webhook_port": 0,
                "metrics_host": "127.0.0.1",
                "metrics_port": 0,
                "cert_dir": tmp,
                "webhook_only": True,
                "log_level": "ERROR",
            },
            environ={},
        )
        with serve.start_in_thread(config) as webhook:
            echo_port, echo_server, echo_thread = start_echo(webhook.servers.tls.server_context())
            try:
                check = measure(
                    {"validate": f"{webhook.webhook_url}/validate"},
                    body,
                    ca_pem,
                    concurrency=1,
                    duration=0.2,
                    rounds=1,
                )
                assert check["validate"]["errors"] == 0, "the bench flow must be answered 200"
                results = measure(
                    {
                        "echo": f"https://127.0.0.1:{echo_port}/echo",
                        "validate": f"{webhook.webhook_url}/validate",
                        "mutate": f"{webhook.webhook_url}/mutate",
                    },
                    body,
                    ca_pem,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    rounds=args.rounds,
                )
            finally:
                echo_server.should_exit = True
                echo_thread.join(timeout=10)

    print(
        f"webhook bench: {args.steps}-step flow ({len(body)} B AdmissionReview), "
        f"concurrency {args.concurrency}, {args.duration:g} s per target in {args.rounds} "
        "interleaved slices, "
        f"uvicorn + TLS, one server process"
    )
    echo_rps = results["echo"]["rps"]
    for name, r in results.items():
        ratio = "" if name == "echo" else f"  {r['rps'] / echo_rps:.2f}x echo"
        print(
            f"  {name:<9}{r['rps']:8.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
            f"  server CPU {r['cpu_ms']:5.2f} ms/req  ({r['count']} requests, "
            f"{r['errors']} errors){ratio}"
        )
    ratio = results["validate"]["rps"] / echo_rps
    met = ratio >= GOAL
    print(f"goal validate >= {GOAL}x echo: {'met' if met else 'MISSED'} ({ratio:.2f}x)")
    cpu = results["echo"]["cpu_ms"] / results["validate"]["cpu_ms"]
    print(f"server CPU bound (whole server core per target): validate ~{cpu:.2f}x echo")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
