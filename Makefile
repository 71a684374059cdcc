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

.PHONY: venv demo test test-lowest lint format dist wheel-check bench bench-smoke soak clean

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
	$(MAKE) --no-print-directory test-lowest

# The oldest versions the metadata allows: a venv of its own with every workspace member and the
# dev group at the lowest version each floor names (`--resolution lowest-direct`; what those
# pull in at their newest), and the conformance table run there. A floor that is not true
# fails here. About 50 s with a warm uv cache.
LOWEST := build/lowest
CONFORMANCE := $(wildcard adapters/*/tests/test_*_conformance.py)

test-lowest: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check "uv>=0.9"
	rm -rf $(LOWEST)
	$(BIN)/uv venv -q --python $(BIN)/python $(LOWEST)
	$(BIN)/uv pip install -q --python $(LOWEST)/bin/python --no-sources \
		--resolution lowest-direct -e . $(foreach a,$(ADAPTERS),-e $(a)) --group dev
	$(BIN)/uv pip list -q --python $(LOWEST)/bin/python 2>/dev/null \
		| grep -E '^(anyio|httpx|httpcore|aiohttp|requests|urllib3|tenacity|backoff|redis|starlette|uvicorn|h11|pytest|trio) ' \
		| tr -s ' ' | paste -sd, - | sed 's/^/lowest: /'
	$(LOWEST)/bin/python -m pytest -q -p no:randomly $(CONFORMANCE)

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

# `make soak SOAK_ARGS="--fleet --seconds 60"`: the fleet scope (4 processes, one redis-server).
SOAK_ARGS ?=
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(DIST) .mypy_cache .ruff_cache .pytest_cache
