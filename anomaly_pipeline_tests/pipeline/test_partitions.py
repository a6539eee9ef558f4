"""PARTITIONS_START: where the hourly partitions begin, checked before anything loads."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from anomaly_pipeline.partitions import partitions_start


def test_unset_and_explicit_start():
    assert partitions_start(None) is partitions_start("") is None  # unset: the data decides
    assert partitions_start(" 2026-11-01 ") == "2026-11-01-00:00"


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", "2026-11-01T05:00"])
def test_a_malformed_start_names_the_variable(bad):
    with pytest.raises(ValueError, match="PARTITIONS_START must be a date") as caught:
        partitions_start(bad)
    assert repr(bad.strip()) in str(caught.value)


def test_a_start_in_the_future_is_refused():
    tomorrow = (datetime.now() + timedelta(days=2)).strftime("%Y-%m-%d")
    with pytest.raises(ValueError, match="in the future"):
        partitions_start(tomorrow)


def test_every_asset_starts_at_partitions_start():
    code = (
        "from anomaly_pipeline.definitions import defs\n"
        "repo = defs.get_repository_def()\n"
        "keys = {a.partitions_def.get_first_partition_key() for a in repo.assets_defs_by_key.values()}\n"
        "print(sorted(keys))\n"
    )
    env = {**os.environ, "PARTITIONS_START": "2026-11-01"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['2026-11-01-00:00']"
    env["PARTITIONS_START"] = "1st of November"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "PARTITIONS_START must be a date like 2026-11-01, got '1st of November'" in done.stderr
