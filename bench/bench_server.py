"""Requests per second of last/detect (72 hourly points, the tutorial's request) on 127.0.0.1,
alone and while heavy clients send requests of 1,000 points spread over 17,280 hourly slots.

Starts `anomaly-pipeline serve-detector` in a subprocess (with a key, as in production), drives it
for a bounded time from client processes over keep-alive connections, and prints the rates.

    .venv/bin/python bench/bench_server.py --seconds 10 --workers 2 --clients 4 --heavy-clients 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing as mp
import os
import secrets
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from anomaly_pipeline_tests.detection.contract_cases import sparse_hourly_body

PATH = "/anomalydetector/v1.0/timeseries/last/detect"


def tutorial_body(n: int = 72) -> bytes:
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    series = [
        {
            "timestamp": (start + timedelta(hours=i)).isoformat().replace("+00:00", "Z"),
            "value": round(100 + 20 * math.sin(2 * math.pi * i / 24) + 3 * math.sin(i * 1.7), 3),
        }
        for i in range(n)
    ]
    body = {"series": series, "maxAnomalyRatio": 0.25, "sensitivity": 95, "granularity": "hourly"}
    return json.dumps(body).encode()


def _client(
    kind: str, port: int, key: str, body: bytes, start_at: float, stop_at: float, out
) -> None:
    """Sends ``body`` back to back until ``stop_at``; puts (kind, ok, busy, errors, latencies)."""
    headers = {"Ocp-Apim-Subscription-Key": key, "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done = busy = errors = 0
    latencies = []
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < stop_at:
        began = time.perf_counter()
        conn.request("POST", PATH, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - began)
        if response.status == 200 and b'"isAnomaly"' in payload:
            done += 1
        elif response.status == 503:  # the heavy lane is full: retried by real clients
            busy += 1
            time.sleep(float(response.getheader("Retry-After", "1")))
        else:
            errors += 1
    conn.close()
    out.put((kind, done, busy, errors, latencies))


def _wait_ready(port: int, key: str, body: bytes, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("POST", PATH, body=body, headers={"Ocp-Apim-Subscription-Key": key})
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not come up")


def _run(port: int, key: str, seconds: float, clients: dict[str, tuple[int, bytes]]) -> dict:
    """Runs ``clients`` ({kind: (processes, body)}) together; totals per kind."""
    queue: mp.Queue = mp.Queue()
    start_at = time.time() + 1.0
    stop_at = start_at + seconds
    processes = [
        mp.Process(target=_client, args=(kind, port, key, body, start_at, stop_at, queue))
        for kind, (count, body) in clients.items()
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=seconds + 90) for _ in processes]
    for process in processes:
        process.join()
    totals = {}
    for kind in clients:
        mine = [r for r in results if r[0] == kind]
        latencies = sorted(x for r in mine for x in r[4])
        totals[kind] = {
            "ok": sum(r[1] for r in mine),
            "busy": sum(r[2] for r in mine),
            "errors": sum(r[3] for r in mine),
            "p50": latencies[len(latencies) // 2] * 1e3 if latencies else float("nan"),
            "p99": latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else float("nan"),
        }
    return totals


def _line(label: str, totals: dict, seconds: float) -> str:
    return (
        f"{label}: {totals['ok'] / seconds:.0f} req/s ({totals['ok']} ok, {totals['busy']} busy, "
        f"{totals['errors']} errors; p50 {totals['p50']:.1f} ms, p99 {totals['p99']:.1f} ms)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--clients", type=int, default=4, help="light client processes")
    parser.add_argument("--heavy-clients", type=int, default=4, help="0 skips the heavy phase")
    parser.add_argument("--points", type=int, default=72)
    args = parser.parse_args(argv)

    from anomaly_pipeline.detection.server import free_port

    port = free_port()
    key = secrets.token_hex(16)
    env = {**os.environ, "ANOMALY_DETECTOR_KEY": key}
    server = subprocess.Popen(
        [sys.executable, "-m", "anomaly_pipeline.cli", "serve-detector", "--port", str(port),
         "--workers", str(args.workers)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    light = tutorial_body(args.points)
    heavy = json.dumps(sparse_hourly_body()).encode()
    try:
        _wait_ready(port, key, light)
        alone = _run(port, key, args.seconds, {"light": (args.clients, light)})
        loaded = None
        if args.heavy_clients:
            clients = {"light": (args.clients, light), "heavy": (args.heavy_clients, heavy)}
            loaded = _run(port, key, args.seconds, clients)
    finally:
        server.terminate()
        server.wait(timeout=30)
    setup = (
        f"server workers {args.workers}, light client processes {args.clients}, "
        f"cpus {os.cpu_count()}"
    )
    print(f"last/detect {args.points} points ({setup})")
    print("  " + _line("alone", alone["light"], args.seconds))
    errors = alone["light"]["errors"]
    if loaded is not None:
        with_heavy = f"with {args.heavy_clients} heavy clients"
        print("  " + _line(with_heavy, loaded["light"], args.seconds))
        heavy_label = "  the heavy clients (1,000 points over 17,280 slots)"
        print("  " + _line(heavy_label, loaded["heavy"], args.seconds))
        errors += loaded["light"]["errors"] + loaded["light"]["busy"] + loaded["heavy"]["errors"]
    return 0 if errors == 0 and alone["light"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
