"""Run every benchmark in turn (`make bench`). Each script also runs alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    "bench_stream.py",
    "bench_backfill.py",
    "bench_event_log.py",
    "bench_detection_speed.py",
    "bench_server.py",
    "bench_false_alarms.py",
    "bench_quality.py",
    "bench_pipeline_replay.py",
]


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for script in BENCHMARKS:
        print(f"\n=== {script} ===", flush=True)
        if subprocess.run([sys.executable, str(here / script)], cwd=here.parent).returncode:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
