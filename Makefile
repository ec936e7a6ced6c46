# `make run` runs the main job, `make test` runs the tests; both set up .venv when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIPELINE ?= pipelines/toy2d.yaml
PROFILE ?=
RUN_ARGS ?=
TEST_ARGS ?=

.PHONY: setup run smoke test lint clean

setup: $(VENV)/.installed

# torch goes in first, pinned to the CPU wheel, so nothing below pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0
	DS_BUILD_OPS=0 $(BIN)/pip install -e ".[test]"
	$(BIN)/wsfm --help > /dev/null
	touch $@

run: setup
	$(BIN)/wsfm run $(PIPELINE) $(if $(PROFILE),--profile $(PROFILE)) $(RUN_ARGS)

smoke:
	$(MAKE) run PROFILE=smoke

test: setup
	$(BIN)/python -m pytest $(TEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf wsfm-runs .pytest_cache
