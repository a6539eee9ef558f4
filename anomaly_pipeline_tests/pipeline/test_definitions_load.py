"""Loading the code location on the embedded defaults is quick and quiet: no Databricks or Spark
import, and no BetaWarning in the log of every process that loads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CLOUD_ONLY_MODULES = ("dagster_databricks", "databricks", "pyspark")
REPORT_IMPORTS = (
    "import json, sys; import anomaly_pipeline.definitions; "
    f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(CLOUD_ONLY_MODULES)!r}))))"
)


def _load_definitions(tmp_path: Path) -> subprocess.CompletedProcess:
    """A fresh interpreter importing the definitions as `dagster dev` does, on the default environment."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("STREAM_ENGINE", "EVENT_STREAM", "TWEET_SOURCE", "DETECTOR", "PYTHONWARNINGS")}  # fmt: skip
    env["DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-c", REPORT_IMPORTS], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def test_default_definitions_import_neither_databricks_nor_spark(tmp_path):
    loaded = _load_definitions(tmp_path)
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == []


def test_loading_the_definitions_prints_no_beta_warning(tmp_path):
    loaded = _load_definitions(tmp_path)
    assert "BetaWarning" not in loaded.stderr, loaded.stderr
    assert "Warning" not in loaded.stderr, loaded.stderr  # nothing else floods the log either
