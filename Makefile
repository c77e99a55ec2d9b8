# py-finance: `make run` and `make test` work on a fresh machine with Python 3.11 and make.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Every dependency pinned to the version the committed outputs were made with (make lock).
LOCK := constraints.txt
export PATH := $(BIN):$(PATH)
export GIT_PYTHON_REFRESH := quiet
export PYTHONWARNINGS := ignore::DeprecationWarning,ignore::FutureWarning

.PHONY: exp exps install-bench leakcheck install lock run test test-fast test-all lint ui params clean bench services services-stop cluster cluster-stop

# (Re)create the virtualenv when it is missing or pyproject.toml or the lock changed; the
# versions come from the lock, so a fresh machine reproduces the committed dvc.lock.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(LOCK) --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# Re-resolve the newest versions pyproject.toml allows into constraints.txt (a deliberate step:
# then `make run` on a fresh clone and commit the lock with the dvc.lock it produces). Resolve
# with the oldest Python 3.11 to support (PY=/usr/bin/python3.11, Debian 12's 3.11.2): a newer
# one may pin releases that refuse to install there, and the script stops on those.
lock:
	$(PY) scripts/lock_requirements.py

# Compose params.yaml from conf/ exactly as `dvc exp run` does (DVC's Hydra integration).
params: $(STAMP)
	$(BIN)/python -m py_finance.config params.yaml

# The whole pipeline on the bundled data, one paper day, then the results table.
run: $(STAMP)
	@test -d .git || (git init -q && echo "initialised a git repository for DVC")
	@# DVC ends with "Use `dvc push` to send your updates to remote storage." whenever a stage
	@# ran, remote or not: left out when no remote is configured.
	@echo "$(BIN)/dvc repro"; set -o pipefail; \
	if grep -qs 'remote "' .dvc/config .dvc/config.local; then $(BIN)/dvc repro; \
	else $(BIN)/dvc repro | sed -u '/^Use `dvc push` to send your updates to remote storage\.$$/d'; fi
	@# The gate may promote nothing (data/promotion/h5.json says why): then there is no model to
	@# trade, and the live dry run is skipped with a message instead of failing the target.
	@rc=0; $(BIN)/python scripts/promote.py --has-champion || rc=$$?; \
	if [ $$rc -eq 0 ]; then $(BIN)/python scripts/run_live_loop.py --broker paper --dry-run --as-of last-session; \
	elif [ $$rc -eq 1 ]; then echo "skipping the live dry run: no @champion to trade"; \
	else exit $$rc; fi
	@$(BIN)/python scripts/show_results.py

# DVC experiments side by side in 120 columns: the model, the horizon, the figures of
# summary.json (Sharpe, CAGR, max drawdown, the gate's DSR and its trials) and the changed
# params, whichever horizon's summary.json a revision has (`dvc exp show` names a metric
# `path:metric` once two metric files exist).
exps: $(STAMP)
	@$(BIN)/python scripts/show_exps.py

# A DVC experiment whose overrides are checked against conf/ first (a typo is one line with
# "did you mean", exit 2): make exp ARGS="-S model=xgboost -S labels=h20"
exp: $(STAMP)
	@$(BIN)/python scripts/exp_run.py $(ARGS)

# Default loop: fast tests. With CI=true (as .ci/run sets) the slow ones run too.
test: $(STAMP)
	$(BIN)/python -m pytest $(if $(CI),-m "",) $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests pipelines scripts benchmarks
	$(BIN)/ruff format --check src tests pipelines scripts benchmarks
	$(BIN)/mypy

# Prints the address to open: the runs with the key metrics as columns (a bare
# http://127.0.0.1:5000 opens MLflow 3's GenAI home instead). See docs/platform.md.
ui: $(STAMP)
	$(BIN)/python scripts/mlflow_ui.py --port 5000

# PostgreSQL on 127.0.0.1 (databases mlflow and optuna; installed with apt-get when missing) for
# an MLflow tracking server and shared Optuna studies; `scripts/services.sh mlflow` also starts
# the MLflow server. See docs/platform.md.
services: $(STAMP)
	scripts/services.sh start

services-stop:
	scripts/services.sh stop

# A two-node Ray cluster on loopback (head and worker, one CPU each) for hydra/launcher=ray and
# walk_forward.executor=ray; prints RAY_ADDRESS. See docs/platform.md.
cluster: $(STAMP)
	scripts/ray_cluster.sh start

cluster-stop:
	scripts/ray_cluster.sh stop

# Lookahead detector over 100 sampled sessions of every shipped feature set, label, regime
# config and regime policy.
leakcheck: $(STAMP)
	$(BIN)/python -m py_finance.leakcheck --sessions 100

# Performance benchmarks against the peers (vectorbt, Qlib), side by side in one run each.
# Results go to benchmarks/results/*.md.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

# The benchmark peers, so the tests that compare with them (vectorbt) run instead of skipping.
install-bench: $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

# Every pipeline output, the MLflow store, the Optuna study (its trials' runs are gone with the
# store) and the logs; the stages that log to MLflow are forgotten by DVC's cache, so the next
# `make run` runs them and fills the new store (the others come back from the cache).
clean:
	rm -rf data/store data/features data/models data/backtest data/promotion data/live \
	  reports/results.md logs mlruns mlflow.db outputs/optuna.db \
	  .pytest_cache .mypy_cache .ruff_cache
	@if [ -x $(BIN)/python ] && [ -d .dvc/cache ]; then $(BIN)/python scripts/forget_logged_stages.py; fi
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
