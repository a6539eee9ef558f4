"""Every shell command in README.md parses and runs as written from a fresh clone: it calls `make`
or a program in `.venv/bin/`, and the short ones (the `detect` examples, `--help`, dry runs, the
table read) succeed from the repository root, on files that exist."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def readme_commands() -> list[str]:
    """Each command of the README's ```bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), flags=re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip() and not command.strip().startswith("#"):
                commands.append(command.strip())
    return commands


def _program(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    while words and ASSIGNMENT.match(words[0]):
        words.pop(0)
    return words


def _is_short(words: list[str]) -> bool:
    """Runs in seconds and changes nothing outside its working directory."""
    program = words[0]
    return program == ".venv/bin/anomaly-pipeline" and (
        words[1] == "detect" or "--help" in words or "--dry-run" in words
    ) or (program == ".venv/bin/python" and words[1] == "-c")


COMMANDS = readme_commands()


def test_the_readme_has_the_commands_it_documents():
    programs = [" ".join(_program(c)[:2]) for c in COMMANDS]
    assert {"make run", "make test", ".venv/bin/anomaly-pipeline detect", ".venv/bin/dagster asset"} <= set(programs)
    assert sum(_is_short(_program(c)) for c in COMMANDS) >= 8


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_parses_and_calls_make_or_the_venv(command):
    assert subprocess.run(["bash", "-n", "-c", command], capture_output=True).returncode == 0, command
    program = _program(command)[0]
    assert program in ("make", "export") or program.startswith(".venv/bin/"), command
    assert not program.startswith(".venv/bin/") or (VENV / program.removeprefix(".venv/")).exists(), command


@pytest.fixture(scope="module")
def clone_like_root(tmp_path_factory) -> Path:
    """The repository root as the commands see it (`.venv`, `samples`), with `.data` holding a
    verdicts table, so the commands' outputs stay out of the real checkout."""
    root = tmp_path_factory.mktemp("readme")
    (root / ".venv").symlink_to(VENV)
    (root / "samples").symlink_to(REPO_ROOT / "samples")
    pl.DataFrame({"hour": ["2026-01-30 14:00", "2026-01-30 15:00"], "is_anomaly": [True, False]}).write_delta(
        root / ".data" / "delta" / "tweet_anomalies"
    )
    return root


@pytest.mark.parametrize("command", [c for c in COMMANDS if _is_short(_program(c))])
def test_each_short_command_runs_from_the_root(command, clone_like_root):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "EVENTHUB_"))}
    done = subprocess.run(["bash", "-c", command], cwd=clone_like_root, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, (command, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, command


def test_the_sample_is_what_its_documented_command_makes(tmp_path):
    out = tmp_path / "sample.csv"
    subprocess.run([sys.executable, "samples/make_sample.py", "-o", str(out)], cwd=REPO_ROOT, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    assert out.read_bytes() == (REPO_ROOT / "samples" / "hourly_tweet_counts.csv").read_bytes()
