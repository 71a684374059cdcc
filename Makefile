# Every target sets up .venv itself: a fresh machine needs only Python 3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ADAPTERS := $(sort $(dir $(wildcard adapters/*/pyproject.toml)))
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint format bench bench-smoke soak clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(wildcard adapters/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[testing,cli]" \
		$(foreach a,$(ADAPTERS),-e $(a)) --group dev
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/forbear demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src $(foreach a,$(ADAPTERS),$(a)src) tests/typing

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest -q -p no:randomly
	$(MAKE) --no-print-directory bench-smoke

bench: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check --group bench
	$(BIN)/python -m benchmarks.run

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.run --smoke

soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
