# `make install` builds .venv/ (torch 2.13.0 first, then the project with its dev, mnist and ray extras); it is
# idempotent and reruns only when pyproject.toml changes. `make test` and `make serve` depend on it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test serve lint bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,mnist,ray]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

serve: install
	$(PY) -m ocr serve

lint: install
	$(PY) -m ruff check .

bench: install
	$(PY) -m ocr bench
