# One command per task. The first target that needs the environment creates it.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
UI_STAMP := $(VENV)/.ui-installed-stamp
# The browser test drives the system's Chromium (Debian package); nothing downloads a browser.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export OFFLINE_RL_HOME ?= $(CURDIR)/.data
export DAGSTER_HOME ?= $(OFFLINE_RL_HOME)/dagster

.PHONY: venv demo test test-all test-ui ui-deps lint ui bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build, so nothing pulls the CUDA wheels
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,dask]'
	touch $(STAMP)

demo: venv
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/offline-rl demo

test: venv
	$(BIN)/python -m pytest

test-all: venv
	$(BIN)/python -m pytest -m ''

# Browser test of the Dagster UI: a tiny demo run, dagster-webserver on a free port, headless
# Chromium via Playwright; screenshots in test-artifacts/ui/. UPDATE_DOC_IMAGES=1 also
# refreshes docs/img/asset-graph.png.
test-ui: ui-deps
	OMP_NUM_THREADS=1 CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -m ui tests/ui

ui-deps: $(UI_STAMP)
	@test -x $(CHROMIUM) || { \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			chromium; }
	@test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) missing after installing chromium"; exit 1; }

$(UI_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,ui]'
	touch $(UI_STAMP)

# ruff, the import contracts of pyproject.toml ([tool.importlinter]), then mypy ([tool.mypy]).
lint: venv
	$(BIN)/ruff check offline_rl orchestration assets tests
	$(BIN)/lint-imports
	$(BIN)/mypy

# The code location reads the partitions' first and last day and first night from
# $(OFFLINE_RL_HOME)/calendar.json (written by `offline-rl demo`) unless OFFLINE_RL_FIRST_DAY
# is set. `dagster dev` warns on every start that it is superseded by the `dg` CLI (another
# package, not installed here); only that message is filtered.
ui: venv
	@mkdir -p $(DAGSTER_HOME)
	PYTHONWARNINGS='ignore:Function `dev_command` is superseded' \
		$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: venv
	$(BIN)/offline-rl bench --sizes 1000000 10000000 --end-to-end \
		--json $(OFFLINE_RL_HOME)/reports/bench.json

clean:
	rm -rf $(OFFLINE_RL_HOME) test-artifacts
