# vibcam: every entry point a user needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DB ?= sqlite:///data/survey.db
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help venv venv-dev system-deps test demo demo-votes report demo-distinction results bench mutate clean

help: ## List every target with one line each
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-17s %s\n", $$1, $$2}'

$(VENV)/.runtime: requirements.txt pyproject.toml
	@echo ">> creating $(VENV) from requirements.txt (first run takes 2-3 minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on -r requirements.txt
	@echo ">> installing vibcam itself in editable mode (no sys.path edits anywhere)"
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	@echo ">> installing test dependencies from requirements-dev.txt"
	$(PY) -m pip install --progress-bar on -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.runtime ## Create .venv with the runtime dependencies

venv-dev: $(VENV)/.dev ## Create .venv with runtime and test dependencies

system-deps: ## Install Debian's chromium and postgresql for the browser and PostgreSQL tests (root only)
	@bash tests/install_system_deps.sh

test: venv-dev system-deps ## Run the whole test suite (about 9 minutes on 2 cores once .venv exists)
	$(PY) -m pytest

demo: venv ## The main job: train, make CAM pairs, open the survey on http://localhost:8501
	$(PY) -m scripts.demo

# The simulated raters look at the maps: each item's preference follows its energy-in-mask difference.
demo-votes: venv ## Fill the demo study with 30 simulated raters driven by the maps' energy in mask
	$(PY) -m scripts.simulate_raters --db $(DB) --study demo --raters 30 --metrics studies/demo-metrics/metrics.csv

# --min-response-ms 0: simulated demo raters answer in milliseconds.
report: venv ## Write the analysis report of the demo study and print where it is
	$(PY) -m analysis.report --db $(DB) --study demo --out reports/demo --metrics studies/demo-metrics/metrics.csv --min-response-ms 0

# HIVE's distinction task on the demo's models: package, import, 30 simulated raters, report.
demo-distinction: venv ## Distinction task (HIVE) on the demo's models: package, import, 30 simulated raters, report
	$(PY) -m scripts.demo_distinction

results: venv ## Rerun docs/results.md: 13 trainings, CAM metrics, decision (studies/results/results.md)
	$(PY) -m scripts.results --jobs 2

bench: venv-dev system-deps ## Run every benchmark in bench/ (prints ratios against a same-run baseline)
	for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Not in CI: slow. MODULES="package binomial" picks targets; scripts/mutate.py --list names them all.
mutate: venv-dev ## Mutation testing of the core modules (mutmut): score per module and survivors
	nice -n 10 $(PY) -m scripts.mutate $(MODULES)

clean: ## Remove generated data, runs, studies and reports (keeps .venv)
	rm -rf data runs studies reports mutants .mutation
