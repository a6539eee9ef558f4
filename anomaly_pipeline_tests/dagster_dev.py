"""A real `dagster dev` of this project in the background, for the smoke test and bench scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

DAGSTER = str(Path(sys.executable).with_name("dagster"))
REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 180


@contextmanager
def running_dagster_dev(workdir: Path, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`dagster dev` on 127.0.0.1:`port` with DAGSTER_HOME `workdir/dagster_home` and `env` over
    the current environment, its log in `workdir/dagster_dev.log`; yields once the web server
    answers, and stops the whole process group on exit."""
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "dagster_dev.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [DAGSTER, "dev", "--host", "127.0.0.1", "--port", str(port), "--workspace", "workspace.yaml"],
        cwd=REPO_ROOT, env={**os.environ, "DAGSTER_HOME": str(home), **env}, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
        # dagster dev ignores SIGTERM while SIGINT is ignored, as it is for background processes.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"dagster dev did not start within {START_TIMEOUT_SECONDS} s"
            time.sleep(1)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
