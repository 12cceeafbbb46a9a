# runq — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The exact versions CI passed with (`make lock` writes it); LATEST=1 ignores it and
# takes the newest versions pyproject.toml allows (`make test-latest`).
LOCK   := requirements/lock.txt
LATEST ?=

.PHONY: system-deps install demo test test-latest test-unit test-integration lint \
	typecheck imports lock bench bench-ask chaos clean

ifeq ($(LATEST),1)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install --upgrade --upgrade-strategy eager -e '.[dev]'
	touch $(STAMP)
else
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r $(LOCK)
	$(BIN)/python -m pip install --no-deps -e .
	touch $(STAMP)
endif

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/runq demo

# Debian packages for the browser and compose tests (installed when root, else named).
system-deps:
	@bash scripts/system-deps.sh

# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
# The tests run in PYTEST_WORKERS processes (pytest-xdist; 0: in pytest's own). The
# integration tests mostly wait on their stacks, so two take half the time on 2 cores;
# `--dist loadfile` keeps each module, and the stack its fixtures start, in one process.
PYTEST_WORKERS ?= 2
PYTEST_ARGS = -n $(PYTEST_WORKERS) $(if $(filter 0,$(PYTEST_WORKERS)),,--dist loadfile)
test: $(STAMP) system-deps lint typecheck imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The same suite in a venv of its own with the newest versions pyproject.toml allows.
test-latest:
	$(MAKE) test VENV=.venv-latest LATEST=1

# Pin every dependency (extras all and dev) to what resolves today; commit the result.
# The project itself is dropped from the file: `make` installs it editable on its own.
lock: $(STAMP)
	$(BIN)/pip-compile -q --upgrade --no-emit-index-url --no-emit-trusted-host --no-emit-find-links \
		--strip-extras --extra dev --extra all -o $(LOCK) pyproject.toml
	awk '/^runq @ /{skip=1; next} skip && /^    #/{next} {skip=0; print}' $(LOCK) > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

test-unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/unit tests/sandbox

test-integration: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The layers and the independence of the sandbox ([tool.importlinter] in pyproject.toml).
imports: $(STAMP)
	$(BIN)/lint-imports

# Benchmarks: `make bench` (N=1000, L=500 ms; writes docs/benchmarks.md and
# bench/results/latest.json), `make bench QUICK=1` (the CI smoke run), `make bench FULL=1`.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(if $(QUICK),--quick,) $(if $(FULL),--full,)

# `runq ask` twice on the sample corpus: the re-run's share of the first run's time.
bench-ask: $(STAMP)
	$(BIN)/python -m bench.ask_rerun

# Reliability harness: faults, worker kills and a Redis restart, then the rate-limit run
# (docs/reliability.md); MODE=webhook runs the harness in webhook mode (lost, late and
# duplicate deliveries, receiver kills), MODE=stream in stream mode.
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(if $(QUICK),--quick,) $(if $(MODE),--mode $(MODE),)
	$(BIN)/python -m bench.ratelimit_run $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .venv-latest .runq .pytest_cache .mypy_cache .ruff_cache
