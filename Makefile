# wxemu: two commands matter — `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Cylc (the forecast-cycle workflow's scheduler) in its own venv: its pins conflict with the project's (docs/cycles.md)
CYLC_VENV ?= .venv-cylc
CYLC_STAMP := $(CYLC_VENV)/.installed
CYLC_SPEC ?= cylc-flow>=8.5,<8.6
DATA_DIR ?= $(abspath ../shared/data)
DEMO_DIR ?= demo-output

.PHONY: install cycle-install slurm-install demo test bench clean

install: $(STAMP) $(CYLC_STAMP)

cycle-install: $(CYLC_STAMP)

$(CYLC_STAMP): Makefile
	test -x $(CYLC_VENV)/bin/python || $(PYTHON) -m venv $(CYLC_VENV)
	$(CYLC_VENV)/bin/pip install -q '$(CYLC_SPEC)'
	touch $(CYLC_STAMP)

# Debian's munge, slurmctld, slurmd, slurm-client for the one-node test cluster (needs root; .ci/run calls it)
slurm-install:
	workflows/slurm/local-cluster.sh install

$(STAMP): pyproject.toml Makefile
	@command -v rsync >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && apt-get install -y -qq rsync) || true; }
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium not installed: the dashboard browser tests will be skipped"; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,cluster,metoffice,notebooks]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/wxemu demo --out $(DEMO_DIR)

test: install slurm-install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest tests

bench: install
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(CYLC_VENV) $(DEMO_DIR) .pytest_cache
