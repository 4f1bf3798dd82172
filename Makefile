# Fresh machine: `make demo` (virtual environment, install, the seed story) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# `make bench` measures PostgreSQL here (this machine kind's local server); `BENCH_PG_DSN=` skips it
BENCH_PG_DSN ?= postgresql://postgres@127.0.0.1:5432/test
# `make fuzz` runs the scanner's fuzz target this long (seconds); findings go to tests/regressions/scan
FUZZ_SECONDS ?= 300

.PHONY: demo test bench lint format install install-all clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[sklearn]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

install: $(VENV)/.demo-installed

# every optional part (server, PostgreSQL, formats, ONNX, BLAKE3), without the test tools
install-all: | $(BIN)/python
	$(PIP) -e '.[all]'

demo: $(VENV)/.demo-installed
	$(BIN)/modelchain demo

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	tools/ensure-chromium
	$(BIN)/python -m pytest

bench: $(VENV)/.dev-installed
	tools/ensure-wrk
	MODELCHAIN_TEST_PG_DSN="$${MODELCHAIN_TEST_PG_DSN:-$(BENCH_PG_DSN)}" $(BIN)/python benchmarks/run.py

# the same benchmarks at an earlier commit and here, taking turns: `make bench-compare BEFORE=v1`
bench-compare: $(VENV)/.dev-installed
	tools/ensure-wrk
	MODELCHAIN_TEST_PG_DSN="$${MODELCHAIN_TEST_PG_DSN:-$(BENCH_PG_DSN)}" \
		$(BIN)/python benchmarks/compare.py --before "$(BEFORE)"

.PHONY: fuzz bench-compare
fuzz: $(VENV)/.dev-installed
	$(BIN)/python fuzz/fuzz_scan.py -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=20 \
		-artifact_prefix=tests/regressions/scan/ fuzz/corpus tests/regressions/scan

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis bench-data
