# Every target sets up .venv itself: a fresh machine needs only Python 3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ADAPTERS := $(sort $(dir $(wildcard adapters/*/pyproject.toml)))
STAMP := $(VENV)/.installed
DIST := dist
# Each workspace member, editable, with its `test` and `demo` extras when it declares them.
MEMBERS := $(foreach a,$(ADAPTERS),-e "$(a)$(shell sed -nE 's/^(test|demo) = \[.*/\1/p' \
	$(a)pyproject.toml | paste -sd, - | sed -E 's/.+/[&]/')")

.PHONY: venv demo test lint format dist wheel-check bench bench-smoke soak clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(wildcard adapters/*/pyproject.toml) src/forbear/_version.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[testing]" $(MEMBERS) \
		--group dev
	touch $(STAMP)

# The crawl lives in forbear-testing (its `forbear-demo` command), not in the core.
demo: $(STAMP)
	$(BIN)/forbear-demo

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
	$(MAKE) --no-print-directory wheel-check

# Every distribution's sdist, and its wheel built from that sdist, in dist/; metadata checked.
dist: $(STAMP)
	rm -rf $(DIST) && mkdir -p build
	@for p in . $(ADAPTERS); do \
		echo "build $$p"; \
		$(BIN)/python -m build --no-isolation -o $(DIST) $$p >build/dist.log 2>&1 \
			|| { cat build/dist.log; exit 1; }; \
	done
	$(BIN)/twine check --strict $(DIST)/*

# The built wheels, installed (not editable) into fresh virtual environments: contents, the
# core alone, the README's examples and one test module per distribution (tests/wheels).
wheel-check: dist
	FORBEAR_DIST=$(DIST) $(BIN)/python -m pytest -q -p no:randomly tests/wheels

bench: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check --group bench
	$(BIN)/python -m benchmarks.run

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.run --smoke

soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak

clean:
	rm -rf $(VENV) $(DIST) .mypy_cache .ruff_cache .pytest_cache
