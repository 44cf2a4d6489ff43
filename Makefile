# jincun: `make demo` runs the whole system on embedded defaults, `make check` lints and type-checks,
# `make test` runs both checks and then the test suite.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DEMO_ARGS ?=
PYTEST_ARGS ?=
# the suite in two processes, a test file each at a time (its module fixtures stay in one process): most
# tests wait on real brokers, databases and interpreters, so two keep both cores busy
PYTEST_WORKERS ?= 2
# every extra: a developer runs all tiers, the tests and the checks (pyproject.toml lists what each holds)
EXTRAS  ?= gateway,cloud,sim,postgres,firmware,hardware,test,dev

.PHONY: install demo test sysdeps-demo sysdeps-test check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@scripts/sysdeps.sh demo
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $(STAMP)
	@echo "installed: $(VENV)/bin/jincun"

demo: install
	$(VENV)/bin/jincun demo $(DEMO_ARGS)

check: install
	$(VENV)/bin/ruff check
	$(VENV)/bin/mypy

test: install check
	@scripts/sysdeps.sh test
	$(VENV)/bin/jincun firmware check
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
