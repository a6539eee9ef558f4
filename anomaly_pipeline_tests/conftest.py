"""Shared fixtures: real local resources (SQLite event log, Delta tables on disk) in a temp dir."""

from __future__ import annotations

import os

# The tests judge fixed past dates (2026-01 ... 2026-05): pin the partitions' start before any
# pipeline module resolves it (it would otherwise follow the data, see anomaly_pipeline.partitions).
os.environ["PARTITIONS_START"] = "2025-01-01"

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from anomaly_pipeline.definitions import build_resources
from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline.settings import Settings


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def resources(data_dir: Path) -> dict[str, object]:
    """The embedded-default resources, exactly as definitions builds them, under a temp dir."""
    return build_resources(Settings.from_env({"DATA_DIR": str(data_dir)}))


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def materialize_range(assets, resources, instance, start: datetime, end: datetime, run_config=None):
    """Materialize `assets` over the hours [start, end) in a single run, as a backfill does."""
    result = dg.materialize(
        assets,
        resources=resources,
        instance=instance,
        run_config=run_config,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: partition_key(start),
            ASSET_PARTITION_RANGE_END_TAG: partition_key(end - timedelta(hours=1)),
        },
    )
    assert result.success
    return result


def read_table(resources, spec) -> pl.DataFrame:
    return resources["delta_store"].scan(spec).collect()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)
