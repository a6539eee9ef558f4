# Everything a fresh machine needs (Python 3.11, pip, make): `make run`, `make test`, `make bench`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 3000
LOCK := requirements.lock
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: install lock run test bench clean

# Installs exactly the versions (and hashes) of requirements.lock, then the project itself.
$(BIN)/.installed: pyproject.toml setup.py $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(BIN)/.installed

# After changing a dependency in pyproject.toml: re-resolve the lock (uv, in a venv of its own).
lock:
	$(PYTHON) -m venv $(VENV)/lock-tools
	$(VENV)/lock-tools/bin/pip install --quiet "uv>=0.13,<1"
	$(VENV)/lock-tools/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --quiet -o $(LOCK)

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\nrun_queue:\n  max_concurrent_runs: 4\nrun_monitoring:\n  enabled: true\n  start_timeout_seconds: 180\n  cancel_timeout_seconds: 180\n  max_resume_run_attempts: 0\n  poll_interval_seconds: 30\n' > $@

# Starts the Dagster UI and daemon on the embedded defaults (or whatever .env configures); refuses a
# busy port or a DAGSTER_HOME in use; Ctrl-C lets runs in progress finish (see anomaly_pipeline/devserver.py).
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m anomaly_pipeline.devserver --host $(HOST) --port $(PORT) --workspace workspace.yaml

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf .data .dagster_home
