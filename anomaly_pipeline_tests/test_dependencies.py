"""Dependencies a user can reproduce: every imported package is declared in pyproject.toml, every
declared one is pinned (with hashes) in requirements.lock within its bound, and the environment
the tests run in is exactly the lock (what `make install` installs)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("anomaly_pipeline", "anomaly_pipeline_tests", "bench", "samples")
# Imported only inside the Databricks job, where the Databricks runtime provides it (delta-spark).
RUNTIME_PROVIDED = {"delta"}
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {canonicalize_name(req.name): req for req in map(Requirement, names)}


def _pins() -> dict[str, str]:
    """Name -> version of each pin of requirements.lock that applies to this interpreter."""
    pins = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        match = PIN.match(line.strip())
        if match and (match[3] is None or Marker(match[3]).evaluate()):
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def _imported_top_level_modules() -> set[str]:
    local = {path.stem for root in SCANNED for path in (REPO_ROOT / root).glob("*.py")}  # bench's own modules
    modules = set()
    for root in SCANNED:
        for path in (REPO_ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules - local - RUNTIME_PROVIDED
            if m not in sys.stdlib_module_names and not m.startswith("anomaly_pipeline")}  # fmt: skip


def test_every_imported_package_is_declared():
    distributions = metadata.packages_distributions()
    declared = _declared()
    undeclared = {
        module: distributions.get(module)
        for module in _imported_top_level_modules()
        if not any(canonicalize_name(dist) in declared for dist in distributions.get(module, []))
    }
    assert undeclared == {}


def test_every_declared_package_is_pinned_within_its_bound():
    pins = _pins()
    for name, requirement in _declared().items():
        assert name in pins, f"{name} is declared but not in requirements.lock (run `make lock`)"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"


def test_every_pin_has_hashes():
    text = (REPO_ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert blocks and all("--hash=sha256:" in block for block in blocks if "==" in block)


def test_the_environment_is_the_lock():
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differs = {name: (version, installed.get(name)) for name, version in _pins().items() if installed.get(name) != version}
    assert differs == {}, "the environment differs from requirements.lock (run `make install`)"
