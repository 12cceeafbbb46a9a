# runq — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: system-deps install demo test test-unit test-integration lint typecheck bench bench-ask chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/runq demo

# Debian packages for the browser and compose tests (installed when root, else named).
system-deps:
	@bash scripts/system-deps.sh

# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
test: $(STAMP) system-deps lint typecheck
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/sandbox

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Benchmarks: `make bench` (N=1000, L=500 ms; writes docs/benchmarks.md and
# bench/results/latest.json), `make bench QUICK=1` (the CI smoke run), `make bench FULL=1`.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(if $(QUICK),--quick,) $(if $(FULL),--full,)

# `runq ask` twice on the sample corpus: the re-run's share of the first run's time.
bench-ask: $(STAMP)
	$(BIN)/python -m bench.ask_rerun

# Reliability harness: faults, worker kills and a Redis restart, then the rate-limit run
# (docs/reliability.md).
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(if $(QUICK),--quick,)
	$(BIN)/python -m bench.ratelimit_run $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .runq .pytest_cache .mypy_cache .ruff_cache
