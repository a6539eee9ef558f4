"""PARTITIONS_START: where the hourly partitions begin, checked before anything loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from anomaly_pipeline.partitions import partitions_start
from anomaly_pipeline.settings import Settings, SettingsError


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


# ------------------------------------------------------------------ against the tweet source


def _replay_file(tmp_path, *created_at: str):
    path = tmp_path / "tweets.jsonl"
    path.write_text("".join(
        json.dumps({"id": str(1861234567890123456 + i), "created_at": moment}) + "\n"
        for i, moment in enumerate(created_at)))
    return path


def _replay_env(tmp_path, start: str) -> dict[str, str]:
    path = _replay_file(tmp_path, "2026-11-20T05:10:00Z", "2026-11-19T23:59:00+00:00", "2026-11-21T01:00:00Z")
    return {"DATA_DIR": str(tmp_path / "data"), "TWEET_SOURCE": "replay", "REPLAY_PATH": str(path),
            "PARTITIONS_START": start}


def test_a_start_before_the_replay_files_first_tweet_is_refused_naming_the_day(tmp_path):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(_replay_env(tmp_path, "2026-11-18"))
    assert str(raised.value) == (
        "PARTITIONS_START 2026-11-18 is before the first tweet in REPLAY_PATH (2026-11-19): the "
        "source has no tweets for those hours; set PARTITIONS_START=2026-11-19 or later")
    unset = Settings.from_env({**_replay_env(tmp_path, ""), "PARTITIONS_START": ""})
    assert unset.partitions_start == ""  # unset: the partitions follow the data, nothing to refuse
    assert Settings.from_env(_replay_env(tmp_path, "2026-11-19")).partitions_start == "2026-11-19"


def test_a_start_before_the_synthetic_sources_first_day_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="before the first day the synthetic source can "
                                            r"generate \(2010-11-05\).*PARTITIONS_START=2010-11-05"):
        Settings.from_env({"DATA_DIR": str(tmp_path), "PARTITIONS_START": "2010-11-04"})
    assert Settings.from_env({"DATA_DIR": str(tmp_path), "PARTITIONS_START": "2010-11-05"})
    # the live X API has no fixed first day (its recent search is a moving 7-day window)
    Settings.from_env({"DATA_DIR": str(tmp_path), "TWEET_SOURCE": "x_api", "PARTITIONS_START": "2010-01-01"})
