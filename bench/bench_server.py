"""Requests per second of last/detect (72 hourly points, the tutorial's request) on 127.0.0.1.

Starts `anomaly-pipeline serve-detector` in a subprocess (with a key, as in production), drives it
for a bounded time from client processes over keep-alive connections, and prints the rate.

    .venv/bin/python bench/bench_server.py --seconds 10 --workers 2 --clients 4
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


def _client(port: int, key: str, body: bytes, start_at: float, stop_at: float, out) -> None:
    headers = {"Ocp-Apim-Subscription-Key": key, "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done = errors = 0
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
        else:
            errors += 1
    conn.close()
    out.put((done, errors, latencies))


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
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
    try:
        body = tutorial_body(args.points)
        _wait_ready(port, key, body)
        queue: mp.Queue = mp.Queue()
        start_at = time.time() + 1.0
        stop_at = start_at + args.seconds
        clients = [
            mp.Process(target=_client, args=(port, key, body, start_at, stop_at, queue))
            for _ in range(args.clients)
        ]
        for process in clients:
            process.start()
        results = [queue.get(timeout=args.seconds + 60) for _ in clients]
        for process in clients:
            process.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    done = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    p50 = latencies[len(latencies) // 2] * 1e3 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else float("nan")
    print(
        f"last/detect {args.points} points: {done / args.seconds:.0f} req/s "
        f"({done} ok, {errors} errors in {args.seconds:.0f} s; server workers {args.workers}, "
        f"client processes {args.clients}, cpus {os.cpu_count()}; p50 {p50:.1f} ms, p99 {p99:.1f} ms)"
    )
    return 0 if errors == 0 and done else 1


if __name__ == "__main__":
    sys.exit(main())
