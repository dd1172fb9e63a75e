# One command per task. The first target that needs the environment creates it.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export OFFLINE_RL_HOME ?= $(CURDIR)/.data
export DAGSTER_HOME ?= $(OFFLINE_RL_HOME)/dagster

.PHONY: venv demo test test-all lint ui bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build, so nothing pulls the CUDA wheels
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: venv
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/offline-rl demo

test: venv
	$(BIN)/python -m pytest

test-all: venv
	$(BIN)/python -m pytest -m ''

lint: venv
	$(BIN)/ruff check offline_rl orchestration assets tests

ui: venv
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: venv
	$(BIN)/offline-rl bench --sizes 1000000 10000000 --end-to-end \
		--json $(OFFLINE_RL_HOME)/reports/bench.json

clean:
	rm -rf $(OFFLINE_RL_HOME)
