# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint install install-test system-deps migrations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

install: $(STAMP)
install-test: $(TEST_STAMP)

## make run: install if needed, then start a local 3-node cluster (Ctrl-C stops it)
run: $(STAMP)
	$(BIN)/cloudstorage dev --procfile Procfile

## make test: install test needs (Python packages, PostgreSQL, clients), check, run the suite
test: $(TEST_STAMP) system-deps lint
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest -n 2 --dist loadfile -q

system-deps:
	@bash scripts/test-services.sh

## make lint: ruff over the tree, mypy over storage/ and protocols/ (pyproject.toml)
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## make migrations: write a migration after editing storage/models.py
migrations: $(STAMP)
	$(BIN)/tortoise -c storage.db.TORTOISE_ORM makemigrations

clean:
	rm -rf var
