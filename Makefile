# The two commands of README.md: `make demo` and `make test`. Both install into .venv first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench

install:
	@bash scripts/setup.sh

demo: install
	$(BIN)/meshstyle demo --out out/demo --overwrite $(ARGS)

test: install
	@bash scripts/setup_browser.sh
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python scripts/bench_raster.py
	$(BIN)/python scripts/bench_step.py
