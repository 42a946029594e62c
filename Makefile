# One command to set up and start (make run), one to set up and test (make test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Debian packages the project needs: ffmpeg (the live-stream tests push RTSP/HTTP streams with it)
# and chromium (the web app's browser tests). Installed once when missing; needs root or sudo.
APT_PACKAGES := ffmpeg chromium
APT_STAMP := $(VENV)/.apt

$(APT_STAMP): | $(BIN)/python
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { $$SUDO apt-get update >/dev/null && $$SUDO apt-get install -y --no-install-recommends $$missing; }; \
	fi
	touch $(APT_STAMP)

$(STAMP): pyproject.toml $(APT_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps 'rapidocr-onnxruntime==1.4.4'
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
