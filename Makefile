# One command to set up and start (make run), one to set up and test (make test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/faceledger serve

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/calibrate.py
	$(BIN)/python bench/engine_speed.py
	$(BIN)/python bench/lfw_accuracy.py
	$(BIN)/python bench/group_detection.py
	$(BIN)/python bench/serve_memory.py
	$(BIN)/python bench/enrolment.py
	$(BIN)/python bench/one_to_n.py
	$(BIN)/python bench/vector_index.py
	$(BIN)/python bench/rekognition_api.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/fairness_report.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
