# The two commands of the README: `make demo` and `make test`. Both install what they need.
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ctdata

$(BIN)/analyzer: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

.PHONY: demo test lint bench
demo: $(BIN)/analyzer  ## ingest the bundled fixtures and print the alert summary
	$(BIN)/analyzer ingest fixtures/AWSLogs --data $(DATA)
	$(BIN)/analyzer detect --data $(DATA) || [ $$? -eq 3 ]  # 3 = findings, expected on the fixtures

lint: $(BIN)/analyzer
	$(BIN)/ruff check analyzer tests bench
	$(BIN)/mypy analyzer

test: lint  ## lint, type-check, and run every test (slow end-to-end tests included)
	$(BIN)/pytest
