# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make demo   - create .venv, install steward, run the demo story end to end
#   make test   - create/update .venv with the dev extras, run the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: demo test install install-dev lint bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

$(STAMP_RUN): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(STAMP_DEV): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev,text,mlflow]"
	touch $@ $(STAMP_RUN)

install: $(STAMP_RUN)
install-dev: $(STAMP_DEV)

demo: $(STAMP_RUN)
	HF_HUB_OFFLINE=1 $(BIN)/steward demo

test: $(STAMP_DEV)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP_DEV)
	$(BIN)/ruff check .

bench: $(STAMP_DEV)
	$(BIN)/python -m benchmarks.drift
	$(BIN)/python -m benchmarks.index
	$(BIN)/python -m benchmarks.continual

# Not part of `make test`: hammers, a kill -9 crash loop and bad inputs for SOAK_MINUTES (default 5)
# per database (PostgreSQL when STEWARD_SOAK_POSTGRES_URL or STEWARD_TEST_POSTGRES_URL is set).
soak: $(STAMP_DEV)
	nice -n 10 $(BIN)/python -m benchmarks.soak

clean:
	rm -rf $(VENV) .steward .pytest_cache
