# Two commands do all the set-up on a fresh machine:
#   make run   - create .venv, install vitq, start the explorer on the bundled reference model
#   make test  - create .venv, install vitq with dev deps and the ray extra, run ruff, mypy and pytest (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8501
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,pt2e]"
	touch $@

venv: $(VENV)/.installed

run: venv
	$(BIN)/streamlit run explorer_app/app.py --server.headless true --server.address $(HOST) \
		--server.port $(PORT) --browser.gatherUsageStats false

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
