# Two entry points: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml hatch_build.py patter_core/audio/_fir.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python -m patter_core.demo

test: $(STAMP)
	@$(BIN)/python -m pytest -q

lint: $(STAMP)
	@$(BIN)/ruff check patter_core patterd patter_tui tests bench
	@$(BIN)/ruff format --check patter_core patterd patter_tui tests bench
	@$(BIN)/mypy patter_core patterd patter_tui

bench: $(STAMP)
	@$(BIN)/python bench/transcode.py

clean:
	rm -rf $(VENV)
