"""Webhook cost: a 20-step JobFlow review (validate, mutate) vs a trivial FastAPI echo endpoint.

All three targets are served the same way in this one server process: uvicorn with the
webhook server's options (`app.serve.webhook_server_options`: h11 with the request head
deadline, no proxy headers), TLS 1.2+ with the same certificate context from certs/, sockets
created as app/serve.py creates them (IPPROTO_TCP, so asyncio sets TCP_NODELAY), logging off.
Only the endpoints differ, so the ratios measure what the webhook's endpoints cost beyond a
trivial one, not how the server is set up.
- `validate` / `mutate`: the real webhook app (`app.main.create_app`, metrics and all) behind
  `app.serve.Servers`, exactly what `zen-flow serve --webhook-only` runs.
- `echo`: a FastAPI app whose one POST route returns the request body unchanged.
Every target gets the same AdmissionReview body. The load comes from separate processes (aiohttp
over keep-alive TLS connections, as the API server's client keeps them). Two measurements:

1. single connection: one request at a time on one connection, p50/p99 latency. This is what
   one `kubectl apply` waits for; Nagle's algorithm (a socket without TCP_NODELAY) shows up
   here as ~40 ms per answer (the client's delayed ACK).
2. saturated: LOADERS processes x CONCURRENCY connections each, so the one-threaded server is
   busy all the time, in interleaved slices per target. The server process's CPU time over
   each slice divided by the requests answered in it is the server's cost per request: it
   does not depend on what else the machine runs, and its ratio echo/target is the fraction
   of echo's throughput the target reaches on a core of its own. The server's CPU share of the
   slice's wall time says whether it was the bottleneck (1.0 = one core, all the time).
Goals (issue 14): single-connection p50 < 2 ms for each target; by server CPU, validate >=
0.5x echo and mutate >= 0.6x echo. `--check` exits 1 when one is missed.

    .venv/bin/python bench/webhook.py [--loaders 2] [--concurrency 8] [--duration 6]
                                      [--rounds 3] [--single 400] [--steps 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

# Run as `python bench/webhook.py`, this file's directory is sys.path[0] and the file itself
# would shadow the `webhook` package; the project root (installed editable) must win.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import uvicorn  # noqa: E402
from fastapi import FastAPI, Request, Response  # noqa: E402

from app import serve, settings  # noqa: E402
from certs import authority  # noqa: E402

GOALS = {"validate": 0.5, "mutate": 0.6}  # by server CPU, as a fraction of echo's (issue 14)
GOAL_P50_MS = 2.0  # single-connection p50 of every target (issue 14)
WARMUP = 0.5  # seconds of load before each measured slice: TLS set-up, first-call costs
TAIL = 0.3  # seconds of load after it, so the slice never sees the load wind down


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


def start_echo(
    tls_context: ssl.SSLContext, config: settings.Settings
) -> tuple[int, _QuietServer, threading.Thread]:
    """The echo app behind uvicorn with the webhook's own TLS context and server options (the
    same HTTP protocol, request head deadline and middleware): only the endpoints differ."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as app.serve
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    uvicorn_config = uvicorn.Config(
        echo_app(),
        ssl_context_factory=lambda _c, _d: tls_context,
        **serve.webhook_server_options(config),
    )
    server = _QuietServer(uvicorn_config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("echo server did not start")
        time.sleep(0.01)
    return sock.getsockname()[1], server, thread


# -- the load generators (each in its own process) ------------------------------------------------
def _loader(conn: Any, ca_pem: str, body: bytes) -> None:
    """Serve commands from the bench: ("single", url, n) or ("load", url, concurrency, begin,
    end, stop); answer with latencies (seconds) and, for "load", completion times."""
    asyncio.run(_loader_main(conn, ca_pem, body))


async def _loader_main(conn: Any, ca_pem: str, body: bytes) -> None:
    import aiohttp

    context = ssl.create_default_context(cadata=ca_pem)
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command[0] == "quit":
            return
        connector = aiohttp.TCPConnector(limit=max(1, command[2]), ssl=context)
        async with aiohttp.ClientSession(connector=connector) as session:
            run = _Run(session, body, command[1])
            if command[0] == "single":
                for _ in range(command[2] // 10):  # warm-up: TLS handshake, first-call costs
                    await run.one()
                run = _Run(session, body, command[1])
                for _ in range(command[2]):
                    await run.one()
                conn.send((run.latencies, [], run.errors))
                continue
            _, _, concurrency, begin, end, stop = command
            await asyncio.gather(*(run.until(stop) for _ in range(concurrency)))
            inside = [t for t in run.done if begin <= t < end]
            measured = [
                lat for lat, t in zip(run.latencies, run.done, strict=True) if begin <= t < end
            ]
            conn.send((measured, inside, run.errors))


class _Run:
    """Requests to one URL on one session: latencies, completion times, non-200 answers."""

    HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json"}

    def __init__(self, session: Any, body: bytes, url: str) -> None:
        self.session, self.body, self.url = session, body, url
        self.latencies: list[float] = []
        self.done: list[float] = []
        self.errors = 0

    async def one(self) -> None:
        started = time.perf_counter()
        async with self.session.post(self.url, data=self.body, headers=self.HEADERS) as response:
            await response.read()
            if response.status != 200:
                self.errors += 1
        self.latencies.append(time.perf_counter() - started)
        self.done.append(time.monotonic())

    async def until(self, stop: float) -> None:
        while time.monotonic() < stop:
            await self.one()


class Loaders:
    """LOADERS load processes, started once (spawned: nothing of the server is inherited)."""

    def __init__(self, count: int, ca_pem: str, body: bytes) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes = []
        self.procs = []
        for _ in range(count):
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_loader, args=(there, ca_pem, body), daemon=True)
            proc.start()
            self.pipes.append(here)
            self.procs.append(proc)

    def single(self, url: str, count: int) -> dict[str, Any]:
        self.pipes[0].send(("single", url, count))
        latencies, _, errors = self._recv(self.pipes[0], 120 + count)
        latencies.sort()
        return {
            "p50": statistics.median(latencies) * 1000,
            "p99": _p99(latencies) * 1000,
            "errors": errors,
        }

    def saturate(self, url: str, concurrency: int, duration: float) -> dict[str, Any]:
        """Load ``url`` from every loader; the server's CPU time over the measured window."""
        begin = time.monotonic() + WARMUP + 1.0  # the loaders need a moment to start
        end = begin + duration
        for pipe in self.pipes:
            pipe.send(("load", url, concurrency, begin, end, end + TAIL))
        time.sleep(max(0.0, begin - time.monotonic()))
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(max(0.0, end - time.monotonic()))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        latencies: list[float] = []
        answered = errors = 0
        for pipe in self.pipes:
            lat, inside, err = self._recv(pipe, duration + 120)
            latencies += lat
            answered += len(inside)
            errors += err
        return {
            "cpu": cpu,
            "wall": wall,
            "count": answered,
            "errors": errors,
            "latencies": latencies,
        }

    def _recv(self, pipe: Any, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise RuntimeError("a load generator did not answer")
        return pipe.recv()

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("quit",))
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def _p99(ordered: list[float]) -> float:
    return ordered[max(0, int(len(ordered) * 0.99) - 1)] if ordered else 0.0


def measure(targets: dict[str, str], loaders: Loaders, args: argparse.Namespace) -> dict:
    results: dict[str, dict[str, Any]] = {}
    for name, url in targets.items():
        results[name] = {
            "single": loaders.single(url, args.single),
            "cpu": 0.0,
            "wall": 0.0,
            "count": 0,
            "errors": 0,
            "latencies": [],
        }
    for _ in range(args.rounds):  # interleaved: drifting load on the machine hits all alike
        for name, url in targets.items():
            got = loaders.saturate(url, args.concurrency, args.duration / args.rounds)
            total = results[name]
            for key in ("cpu", "wall", "count", "errors", "latencies"):
                total[key] += got[key]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loaders", type=int, default=2, help="load processes")
    parser.add_argument("--concurrency", type=int, default=8, help="connections per loader")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per target")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices per target")
    parser.add_argument("--single", type=int, default=400, help="single-connection requests")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args()

    body = flow_review(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        ca, _ = authority.write_bundle(
            Path(tmp), dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
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
        loaders = Loaders(args.loaders, ca.cert_pem.decode(), body)
        try:
            with serve.start_in_thread(config) as webhook:
                echo_port, echo_server, echo_thread = start_echo(
                    webhook.servers.tls.server_context(), config
                )
                try:
                    results = measure(
                        {
                            "echo": f"https://127.0.0.1:{echo_port}/echo",
                            "validate": f"{webhook.webhook_url}/validate",
                            "mutate": f"{webhook.webhook_url}/mutate",
                        },
                        loaders,
                        args,
                    )
                finally:
                    echo_server.should_exit = True
                    echo_thread.join(timeout=10)
        finally:
            loaders.close()
    return report(results, body, args)


def report(results: dict[str, dict[str, Any]], body: bytes, args: argparse.Namespace) -> int:
    print(
        f"webhook bench: {args.steps}-step flow ({len(body)} B AdmissionReview), uvicorn + TLS, "
        f"one server process; load load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  single connection ({args.single} requests one at a time), then saturated "
        f"({args.loaders} load processes x {args.concurrency} connections, {args.duration:g} s "
        f"per target in {args.rounds} interleaved slices)"
    )
    echo_cpu = results["echo"]["cpu"] / max(1, results["echo"]["count"])
    missed = []
    for name, r in results.items():
        single = r["single"]
        cpu_ms = r["cpu"] / max(1, r["count"]) * 1000
        latencies = sorted(r["latencies"])
        ratio = echo_cpu * 1000 / cpu_ms if cpu_ms else 0.0
        line = (
            f"  {name:<9}single p50 {single['p50']:5.2f} ms p99 {single['p99']:5.2f} ms | "
            f"server CPU {cpu_ms:5.3f} ms/req ({r['cpu'] / r['wall']:.2f} of a core), "
            f"{r['count'] / r['wall']:5.0f} req/s, p50 {statistics.median(latencies) * 1000:5.1f}"
            f" ms | {r['count']} requests, {r['errors'] + single['errors']} errors"
        )
        if name in GOALS:
            line += f" | {ratio:.2f}x echo by CPU"
        print(line)
        if single["p50"] >= GOAL_P50_MS:
            missed.append(f"{name} single-connection p50 {single['p50']:.2f} ms >= {GOAL_P50_MS}")
        if name in GOALS and ratio < GOALS[name]:
            missed.append(f"{name} {ratio:.2f}x echo by server CPU < {GOALS[name]}x")
        if r["errors"] or single["errors"]:
            missed.append(f"{name}: {r['errors'] + single['errors']} answers were not 200")
    goals = ", ".join(f"{n} >= {g}x echo" for n, g in GOALS.items())
    print(
        f"goals: single p50 < {GOAL_P50_MS:g} ms; by server CPU {goals}: "
        + ("met" if not missed else "MISSED: " + "; ".join(missed))
    )
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
