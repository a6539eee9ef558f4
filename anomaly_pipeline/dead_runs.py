"""Runs that died unnoticed: found and marked failed, so they no longer block the sensors.

A run whose worker is killed (`kill -9`, the OOM killer, a host or `dagster dev` restart) stays
STARTED: nothing is left to report its end, and a sensor that waits for the previous run to finish
would wait forever. Dagster's run monitoring (enabled in the `dagster.yaml` the Makefile writes)
fails runs stuck STARTING and ends runs past their `dagster/max_runtime` tag, but with the default
run launcher it cannot see that a worker died. So before a sensor treats a STARTING or STARTED run
as active it asks whether the run is dead:

- On a local instance (SQLite storage and the default run launcher, so every run worker is a
  process on this host) a run whose worker process (the pid of its "Started process" engine event)
  no longer exists is dead. A live worker is left alone, however quiet: a hung one is ended by run
  monitoring's max runtime.
- Otherwise (e.g. workers in containers, where the pid means nothing here), or when the worker's
  pid is not known, a run that has written no event for `silence_limit_seconds` is dead.

A dead run is marked FAILED with the reason, which the UI shows on the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.storage.runs import SqliteRunStorage
from dagster._time import get_current_timestamp

CHECKED_STATUSES = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)


def fail_if_dead(
    instance: dg.DagsterInstance, run: dg.DagsterRun, silence_limit_seconds: float | None, marked_by: str
) -> str | None:
    """Mark `run` FAILED if it is dead; returns why, or None for a run that may still be alive."""
    if run.status not in CHECKED_STATUSES:
        return None
    reason = death_reason(instance, run.run_id, silence_limit_seconds)
    if reason is None:
        return None
    current = instance.get_run_by_id(run.run_id)  # it may have ended meanwhile
    if current is None or current.status not in CHECKED_STATUSES:
        return None
    instance.report_run_failed(current, f"Marked failed by {marked_by}: {reason}.")
    return reason


def death_reason(instance: dg.DagsterInstance, run_id: str, silence_limit_seconds: float | None) -> str | None:
    """Why the run is dead (None: it may be alive), by the rules in the module docstring."""
    pid = worker_pid(instance, run_id)
    if pid is not None and runs_are_local_processes(instance):
        return None if process_alive(pid) else f"its run worker process (pid {pid}) is gone"
    if silence_limit_seconds is None:
        return None
    silent = get_current_timestamp() - last_activity(instance, run_id)
    if silent <= silence_limit_seconds:
        return None
    return f"it has written no event for {silent:.0f} s (limit {silence_limit_seconds:.0f} s)"


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The run worker's pid: from the first run-level engine event that carries one ("Started
    process for run", or the executor's "Executing steps ... (pid: N)")."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or event.step_key is not None:
            continue
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        pid = metadata.get("pid")
        if pid is not None and str(pid.value).isdigit():
            return int(pid.value)
    return None


def last_activity(instance: dg.DagsterInstance, run_id: str) -> float:
    """When the run last wrote an event (or, with none, when its record last changed)."""
    newest = instance.get_records_for_run(run_id, ascending=False, limit=1).records
    if newest:
        return newest[0].event_log_entry.timestamp
    record = instance.get_run_record_by_id(run_id)
    return record.update_timestamp.timestamp() if record else get_current_timestamp()


def runs_are_local_processes(instance: dg.DagsterInstance) -> bool:
    """A single-host instance: runs are launched as processes of this host's code server."""
    return isinstance(instance.run_launcher, DefaultRunLauncher) and isinstance(
        instance.run_storage, SqliteRunStorage
    )


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (killed, not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:  # Linux: the state letter follows the parenthesised command name
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
