"""kubesim benchmark: creates per second and watch-event latency with the official client.

kubesim runs in its own process (``python -m kubesim --no-runner``), as it does for the
controller benchmark, so client and server do not share a GIL. Figures, one run:

1. creates/s: ConfigMaps created one after the other by one client, then by 4 client threads.
2. gets/s and the time to list all of them (one LIST of N objects, JSON).
3. watch-event latency: a watch (``Watch().stream``) is open in one thread; the main thread
   creates objects one at a time and records the time from just before the create call to the
   ADDED event arriving in the watcher; p50/p99.
4. watch fan-out: 20 raw watch streams receive the same events (created by 4 client threads);
   deliveries/s and whether every stream got every event in resourceVersion order.
5. HTTP stack: requests/s of ``GET /version`` over TLS with keep-alive from 4 client threads,
   against kubesim (aiohttp) and against the stdlib ``ThreadingHTTPServer`` serving the same JSON
   with the same certificate, to show what the transport costs.

Run: ``python bench/kubesim.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import urllib3
from kubernetes import client, config, watch

CLIENT_THREADS = 4

_STDLIB_SERVER = r"""
import json, ssl, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
body = json.dumps({"major": "1", "minor": "37", "gitVersion": "v1.37.1-kubesim"}).encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # fair: headers and body are two writes
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


def start_kubesim(state: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "--no-runner"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    assert proc.stdout is not None
    kubeconfig = proc.stdout.readline().strip()
    if not kubeconfig:
        raise SystemExit("kubesim did not start")
    return proc, kubeconfig


def api_for(kubeconfig: str) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = CLIENT_THREADS * 2
    return client.ApiClient(cfg)


def bench_creates(api: client.ApiClient, n: int) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "bench-seq"}})
    t0 = time.perf_counter()
    for i in range(n):
        v1.create_namespaced_config_map(
            "bench-seq", {"metadata": {"name": f"cm-{i}"}, "data": {"k": "v"}}
        )
    seq = n / (time.perf_counter() - t0)
    v1.create_namespace({"metadata": {"name": "bench-par"}})

    def create(i: int) -> None:
        v1.create_namespaced_config_map(
            "bench-par", {"metadata": {"name": f"cm-{i}"}, "data": {"k": "v"}}
        )

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(create, range(n)))
    par = n / (time.perf_counter() - t0)
    print(f"creates/s, 1 client:            {seq:8.0f}   ({n} ConfigMaps)")
    print(f"creates/s, {CLIENT_THREADS} client threads:    {par:8.0f}   ({n} ConfigMaps)")
    t0 = time.perf_counter()
    for i in range(n):
        v1.read_namespaced_config_map(f"cm-{i}", "bench-seq")
    print(f"gets/s, 1 client:               {n / (time.perf_counter() - t0):8.0f}")
    t0 = time.perf_counter()
    items = v1.list_namespaced_config_map("bench-seq").items
    print(f"list of {len(items)} ConfigMaps:        {1000 * (time.perf_counter() - t0):8.1f} ms")


def bench_watch_latency(api: client.ApiClient, n: int) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "bench-watch"}})
    rv = v1.list_namespaced_config_map("bench-watch").metadata.resource_version
    arrived: dict[str, float] = {}
    ready = threading.Event()
    done = threading.Event()

    def watcher() -> None:
        w = watch.Watch()
        ready.set()
        for ev in w.stream(
            v1.list_namespaced_config_map, "bench-watch", resource_version=rv, timeout_seconds=120
        ):
            arrived[ev["object"].metadata.name] = time.perf_counter()
            if len(arrived) >= n:
                w.stop()
        done.set()

    t = threading.Thread(target=watcher, daemon=True)
    t.start()
    ready.wait()
    time.sleep(0.3)  # the watch request is on the wire before the first create
    sent: dict[str, float] = {}
    for i in range(n):
        name = f"w-{i}"
        sent[name] = time.perf_counter()
        v1.create_namespaced_config_map("bench-watch", {"metadata": {"name": name}})
        deadline = time.perf_counter() + 5
        while name not in arrived and time.perf_counter() < deadline:
            time.sleep(0.0002)
    done.wait(10)
    lat = sorted(1000 * (arrived[k] - sent[k]) for k in sent if k in arrived)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(
        f"watch-event latency (create call -> ADDED in watcher), {len(lat)} events: "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )


def bench_watch_fanout(api: client.ApiClient, kubeconfig: str, watchers: int, n: int) -> None:
    """``watchers`` raw watch streams each receive the same ``n`` events; all must arrive in order."""
    import yaml

    kc = yaml.safe_load(Path(kubeconfig).read_text())
    server = kc["clusters"][0]["cluster"]["server"]
    token = kc["users"][0]["user"]["token"]
    ca = str(Path(kubeconfig).parent / "ca.crt")
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "bench-fan"}})
    rv = v1.list_namespaced_config_map("bench-fan").metadata.resource_version
    pool = urllib3.PoolManager(maxsize=watchers, ssl_context=ssl.create_default_context(cafile=ca))
    url = f"{server}/api/v1/namespaces/bench-fan/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=120"
    got: list[list[int]] = [[] for _ in range(watchers)]
    finished: list[float] = [0.0] * watchers

    def watch_one(i: int) -> None:
        r = pool.request(
            "GET", url, headers={"Authorization": f"Bearer {token}"}, preload_content=False
        )
        buf = b""
        for chunk in r.stream(65536):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line:
                    got[i].append(int(json.loads(line)["object"]["metadata"]["resourceVersion"]))
            if len(got[i]) >= n:
                finished[i] = time.perf_counter()
                break
        r.release_conn()

    threads = [threading.Thread(target=watch_one, args=(i,), daemon=True) for i in range(watchers)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENT_THREADS) as ex:
        list(
            ex.map(
                lambda i: v1.create_namespaced_config_map(
                    "bench-fan", {"metadata": {"name": f"f-{i}"}}
                ),
                range(n),
            )
        )
    for t in threads:
        t.join(60)
    complete = all(len(g) == n and g == sorted(g) for g in got)
    elapsed = max(finished) - t0
    print(
        f"watch fan-out: {watchers} watches x {n} events, complete and ordered: {complete}; "
        f"{watchers * n / elapsed:.0f} event deliveries/s ({elapsed:.2f} s from first create to last delivery)"
    )


def _rps(url: str, ca: str, headers: dict[str, str], n: int) -> float:
    pool = urllib3.PoolManager(
        maxsize=CLIENT_THREADS, ssl_context=ssl.create_default_context(cafile=ca)
    )
    pool.request("GET", url, headers=headers)

    def run(k: int) -> None:
        for _ in range(k):
            r = pool.request("GET", url, headers=headers)
            assert r.status == 200

    per = n // CLIENT_THREADS
    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENT_THREADS) as ex:
        list(ex.map(run, [per] * CLIENT_THREADS))
    return per * CLIENT_THREADS / (time.perf_counter() - t0)


def bench_transport(kubeconfig: str, n: int) -> None:
    import yaml

    kc = yaml.safe_load(Path(kubeconfig).read_text())
    server = kc["clusters"][0]["cluster"]["server"]
    token = kc["users"][0]["user"]["token"]
    state = Path(kubeconfig).parent
    ca, crt, key = str(state / "ca.crt"), str(state / "tls.crt"), str(state / "tls.key")
    ours = _rps(f"{server}/version", ca, {"Authorization": f"Bearer {token}"}, n)
    with tempfile.TemporaryDirectory():
        proc = subprocess.Popen(
            [sys.executable, "-c", _STDLIB_SERVER, crt, key], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            stdlib = _rps(f"https://127.0.0.1:{port}/version", ca, {}, n)
        finally:
            proc.terminate()
            proc.wait()
    print(
        f"GET /version req/s, {CLIENT_THREADS} threads, TLS keep-alive: kubesim/aiohttp {ours:.0f}, "
        f"stdlib ThreadingHTTPServer {stdlib:.0f} (ratio {ours / stdlib:.2f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    args = parser.parse_args()
    n_create = 200 if args.quick else 2000
    n_watch = 50 if args.quick else 500
    n_http = 400 if args.quick else 4000
    with tempfile.TemporaryDirectory() as tmp:
        proc, kubeconfig = start_kubesim(Path(tmp))
        try:
            with api_for(kubeconfig) as api:
                bench_creates(api, n_create)
                bench_watch_latency(api, n_watch)
                bench_watch_fanout(api, kubeconfig, 20, n_watch)
            bench_transport(kubeconfig, n_http)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(json.dumps({"ok": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
