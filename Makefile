# The README's two commands: `make study` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= results/study

.PHONY: study test bench probe mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

study: $(VENV)/.installed
	$(BIN)/meanfield study --out $(OUT)

test: $(VENV)/.installed-test
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_limit.py
	$(BIN)/python benchmarks/bench_rntk.py
	$(BIN)/python benchmarks/bench_langevin.py

probe: $(VENV)/.installed  # bad inputs on the CLI and the API, classified (a few minutes)
	$(BIN)/python benchmarks/probe_inputs.py

mutate: $(VENV)/.installed-test  # mutation testing of the science modules (benchmarks/mutate.py; about an hour)
	$(BIN)/python benchmarks/mutate.py --sample 15

clean:
	rm -rf $(VENV) results .pytest_cache
