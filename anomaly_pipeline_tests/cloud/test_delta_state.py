"""The stream's cloud state in real Delta tables: checkpoints that only move forwards, across
processes too, text state that outlives the process, and tables that do not pile up files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from anomaly_pipeline.resources import delta_state
from anomaly_pipeline.resources.delta_location import DeltaLocation
from anomaly_pipeline.resources.delta_state import DeltaCheckpointStore, DeltaStateStore


def _location(root: Path) -> DeltaLocation:
    return DeltaLocation(root_uri=str(root))


def test_checkpoints_move_only_forwards_per_hub_group_and_partition(tmp_path):
    store = DeltaCheckpointStore(location=_location(tmp_path))
    assert store.load("tweets", "$Default") == {}
    store.save("tweets", "$Default", {"0": 5, "1": 2})
    store.save("tweets", "$Default", {"0": 3, "1": 7})  # a late, stale writer for partition 0
    store.save("tweets", "databricks", {"0": 1})
    store.save("other-hub", "$Default", {"0": 9})
    reopened = DeltaCheckpointStore(location=_location(tmp_path))  # another process or machine
    assert reopened.load("tweets", "$Default") == {"0": 5, "1": 7}
    assert reopened.load("tweets", "databricks") == {"0": 1}
    assert reopened.load("other-hub", "$Default") == {"0": 9}


SAVER = """
import sys
from anomaly_pipeline.resources.delta_location import DeltaLocation
from anomaly_pipeline.resources.delta_state import DeltaCheckpointStore
store = DeltaCheckpointStore(location=DeltaLocation(root_uri=sys.argv[1]))
for sequence in range(15):
    store.save("tweets", sys.argv[2], {"0": sequence, "1": sequence})
"""


def test_concurrent_writers_lose_no_checkpoint(tmp_path):
    groups = ["engine", "databricks"]
    writers = [subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), group]) for group in groups]
    assert [writer.wait(timeout=300) for writer in writers] == [0, 0]
    store = DeltaCheckpointStore(location=_location(tmp_path))
    assert {group: store.load("tweets", group) for group in groups} == {
        group: {"0": 14, "1": 14} for group in groups}


def test_state_outlives_the_process_and_holds_text_only(tmp_path):
    state = DeltaStateStore(location=_location(tmp_path))
    assert state.get("raw_tweets.since_id") is None
    state.set("raw_tweets.since_id", "1861234567890123456")
    state.set("raw_tweets.since_id", "1861234567890123999")
    state.set("other", "x")
    reopened = DeltaStateStore(location=_location(tmp_path))
    assert reopened.get("raw_tweets.since_id") == "1861234567890123999"
    assert reopened.items() == {"raw_tweets.since_id": "1861234567890123999", "other": "x"}
    with pytest.raises(TypeError, match="text"):
        reopened.set("raw_tweets.since_id", 5)  # type: ignore[arg-type]


def test_replaced_files_are_vacuumed_every_few_commits(tmp_path, monkeypatch):
    monkeypatch.setattr(delta_state, "VACUUM_EVERY", 5)
    monkeypatch.setattr(delta_state, "TABLE_CONFIGURATION", {
        **delta_state.TABLE_CONFIGURATION, "delta.deletedFileRetentionDuration": "interval 0 seconds"})
    store = DeltaCheckpointStore(location=_location(tmp_path))
    table_dir = tmp_path / delta_state.EVENTHUB_CHECKPOINTS.name
    for sequence in range(4):  # versions 1-4: each MERGE replaces the one data file
        store.save("tweets", "$Default", {"0": sequence})
    assert len(list(table_dir.glob("*.parquet"))) == 4
    store.save("tweets", "$Default", {"0": 4})  # version 5: vacuumed
    assert len(list(table_dir.glob("*.parquet"))) == 1
    assert store.load("tweets", "$Default") == {"0": 4}
