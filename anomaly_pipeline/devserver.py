"""`make run`: one `dagster dev` per DAGSTER_HOME, refused on a busy port, stopped without failing runs.

    python -m anomaly_pipeline.devserver --host 127.0.0.1 --port 3000 --workspace workspace.yaml

**Start.** It refuses, with exit status 1 and a message naming the problem, when the port is
taken, when another `make run` holds this DAGSTER_HOME, or when a Dagster daemon still sends
heartbeats to it. Nothing of the running instance is touched.

**Stop** (Ctrl-C, SIGTERM, or the terminal closing). `dagster dev` runs in a session of its own,
so the terminal's Ctrl-C reaches this wrapper only, never a run's processes. The wrapper sends
`dagster dev` SIGINT: the daemon and the web server stop, so no new run starts, and the code
server finishes the runs in flight. The wrapper waits up to `--stop-timeout` seconds for them (a
second Ctrl-C stops at once). It then ends whatever is left, marks every run that did not
finish CANCELED (never FAILURE), and clears the daemon's heartbeats, so the next start is not refused.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

DEFAULT_STOP_TIMEOUT_SECONDS = 180  # the first-start history run takes about two minutes
HEARTBEAT_LIVE_SECONDS = 75  # the daemon writes a heartbeat every 30 s
LOCK_FILE = "make_run.lock"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
POLL_SECONDS = 0.5


def _say(message: str) -> None:
    """To the terminal, if it is still there (after SIGHUP it may not be)."""
    try:
        print(f"make run: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass


class Refused(Exception):
    """`make run` must not start: the message says why and what to do."""


def check_port_free(host: str, port: int) -> None:
    """Bind the port the way the web server will (SO_REUSEADDR), so a port in TIME_WAIT passes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise Refused(f"cannot listen on {host}:{port}: {error.strerror}") from None
            raise Refused(
                f"port {port} on {host} is already in use (another `make run`?). Stop it, or "
                f"start on another port: make run PORT={port + 1}"
            ) from None


def hold_home_lock(home: Path) -> IO[str]:
    """An exclusive lock on DAGSTER_HOME for this process's life (released when it exits)."""
    home.mkdir(parents=True, exist_ok=True)
    handle = (home / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise Refused(
            f"another `make run` (pid {owner}) is using DAGSTER_HOME={home}; stop it first "
            "(Ctrl-C in its terminal)"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def check_no_live_daemon(instance) -> None:
    """A daemon started outside `make run` (e.g. `dagster dev` by hand) on the same DAGSTER_HOME."""
    beats = instance.get_daemon_heartbeats().values()
    if not beats:
        return
    age = time.time() - max(beat.timestamp for beat in beats)
    if age < HEARTBEAT_LIVE_SECONDS:
        raise Refused(
            f"a Dagster daemon sent a heartbeat to DAGSTER_HOME={instance.root_directory} "
            f"{age:.0f} s ago: another `dagster dev` or `dagster-daemon` uses it. Stop it first; "
            f"if it was killed, wait {HEARTBEAT_LIVE_SECONDS - age:.0f} s."
        )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


IN_PROGRESS = ("STARTING", "STARTED", "CANCELING")
UNFINISHED = ("QUEUED", "NOT_STARTED", *IN_PROGRESS)


def _runs(instance, statuses: tuple[str, ...]):
    from dagster import DagsterRunStatus, RunsFilter

    return instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus[name] for name in statuses]))


class DevServer:
    """`dagster dev` in its own session, and its orderly stop."""

    def __init__(self, command: list[str], instance, stop_timeout: float):
        self.instance = instance
        self.stop_timeout = stop_timeout
        self.signals = 0
        self.signalled = threading.Event()
        for number in STOP_SIGNALS:  # before the child starts: it gets SIGINT back at its default
            signal.signal(number, self._on_signal)
        self.process = subprocess.Popen(command, start_new_session=True)

    def _on_signal(self, number, _frame) -> None:
        self.signals += 1
        self.signalled.set()
        if self.signals > 1:
            _say("stopping now")

    def wait(self) -> int:
        """Until `dagster dev` exits on its own or a stop signal arrives; then stops everything."""
        while self.process.poll() is None and not self.signalled.wait(POLL_SECONDS):
            pass
        if self.process.poll() is None:
            _say("stopping; runs in progress may finish first (Ctrl-C again: stop now)")
            os.kill(self.process.pid, signal.SIGINT)
        self._drain()
        self._end_leftovers()
        return 0 if self.signals else (self.process.returncode or 0)

    def _drain(self) -> None:
        """Waits for `dagster dev` and then for its code server, which exits once its runs are done."""
        deadline = time.monotonic() + self.stop_timeout
        reported = None
        while _group_alive(self.process.pid) and self.signals < 2 and time.monotonic() < deadline:
            self.process.poll()  # reap dagster dev when it exits
            running = len(_runs(self.instance, IN_PROGRESS))
            if running and running != reported:
                _say(f"waiting for {running} run(s) to finish")
                reported = running
            time.sleep(POLL_SECONDS)

    def _end_leftovers(self) -> None:
        if _group_alive(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for run in _runs(self.instance, UNFINISHED):
            self.instance.report_run_canceled(run, message="Canceled: `make run` was stopped before the run finished.")
            _say(f"run {run.run_id} ({run.job_name}) marked canceled")
        self.instance.wipe_daemon_heartbeats()  # ours is stopped: the next start is welcome


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m anomaly_pipeline.devserver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--workspace", default="workspace.yaml")
    parser.add_argument("--stop-timeout", type=float, default=DEFAULT_STOP_TIMEOUT_SECONDS,
                        help="seconds to let runs in progress finish on Ctrl-C")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        _say("DAGSTER_HOME is not set")
        return 1
    try:
        check_port_free(args.host, args.port)
        lock = hold_home_lock(Path(home))
        import dagster as dg  # after the quick checks: importing dagster takes seconds

        instance = dg.DagsterInstance.get()
        check_no_live_daemon(instance)
    except Refused as refusal:
        _say(str(refusal))
        return 1
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "dev", "--host", args.host, "--port", str(args.port), "--workspace", args.workspace]
    try:
        return DevServer(command, instance, args.stop_timeout).wait()
    finally:
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
