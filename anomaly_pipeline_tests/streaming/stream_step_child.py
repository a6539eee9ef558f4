"""The process the crash-consistency test kills: one local stream step over a given data dir.

    python -m anomaly_pipeline_tests.streaming.stream_step_child EVENTS_SQLITE DELTA_ROOT BATCH

Imports everything, prints `ready`, waits for a line on stdin, then runs
`LocalStreamEngine.process_available` in small micro-batches and prints `done`.
"""

from __future__ import annotations

import sys

from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.local_event_log import LocalEventLog
from anomaly_pipeline.resources.stream_engine import LocalStreamEngine


def main(events_path: str, delta_root: str, batch: str) -> None:
    stream = LocalEventLog(path=events_path)
    store = DeltaStore(root_uri=delta_root)
    engine = LocalStreamEngine(max_batch_events=int(batch))
    print("ready", flush=True)
    sys.stdin.readline()
    engine.process_available(stream, store)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
