VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test check bench install codegen journeys

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/chatops run

# Java and swagger-codegen, for the tests that drive the CML target through a generated cmlapi
codegen:
	bash .ci/scripts/swagger-codegen.sh

test: install codegen
	$(VENV)/bin/pytest -n 2 --ignore=tests/readme
	$(VENV)/bin/pytest tests/readme

# the journey tests over the whole bot, long: more journeys, more steps, a new seed each run
# (JOURNEYS_EXAMPLES=N for more; CHATOPS_JOURNEYS_VERBOSE=1 prints every step)
JOURNEYS_EXAMPLES ?= 25
journeys: install
	CHATOPS_JOURNEYS_PROFILE=long CHATOPS_JOURNEYS_EXAMPLES=$(JOURNEYS_EXAMPLES) \
		$(VENV)/bin/pytest -m journeys -o timeout=0 -rxX tests/journeys

check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: install
	$(PY) bench/deploy_vs_mlflow_serve.py --runs 3
	$(PY) bench/serving.py --rounds 3 --duration 4
