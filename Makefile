# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# The development environment: loopback callbacks and links from the Host header are allowed here only.
run: export BROKER_ENV := development
# Loopback authorities and callback receivers of a local demo (see the README's "Outbound calls").
run: export BROKER_EGRESS_ALLOW := 127.0.0.0/8,::1
run: $(VENV)/.installed
	$(BIN)/broker db upgrade
	$(BIN)/broker demo seed
	@echo
	@echo "The broker is starting on http://127.0.0.1:$(PORT) (SQLite database under var/)."
	@echo "Next, in another terminal: create a requester token and follow the README's quickstart:"
	@echo "  TOKEN=\$$($(BIN)/broker clients add my-portal --role requester --allow urn:de:nachweis:meldebescheinigung | tail -n 1)"
	@echo
	$(BIN)/broker serve --host 127.0.0.1 --port $(PORT)

test: $(VENV)/.installed
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check broker adapters bench tests
	$(BIN)/mypy broker adapters

bench: $(VENV)/.installed
	$(BIN)/python -m bench.exchange
	$(BIN)/python -m bench.xml
	$(BIN)/python -m bench.log
	$(BIN)/python -m bench.merkle

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
