# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test lint bench profile clean

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

# The browser tests' npm packages (a real OpenID Provider, axe-core), exactly as locked. Without
# npm they are left out: the browser tests then skip (or fail where BROKER_TEST_REQUIRE_BROWSER=1).
BROWSER_TESTS := tests/browser
$(BROWSER_TESTS)/node_modules/.installed: $(BROWSER_TESTS)/package-lock.json $(BROWSER_TESTS)/package.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "npm ci --prefix $(BROWSER_TESTS) --no-audit --no-fund"; \
		npm ci --prefix $(BROWSER_TESTS) --no-audit --no-fund && touch $@; \
	else \
		echo "npm is not on PATH: the browser tests' npm packages are not installed, those tests will skip"; \
	fi

# Two workers (pytest-xdist), a test module each at a time so its fixtures stay in one process:
# most tests wait on subprocess brokers and databases, so the suite takes about 18 instead of 28
# minutes on two cores.
test: $(VENV)/.installed $(BROWSER_TESTS)/node_modules/.installed
	tools/install-test-packages
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(BIN)/ruff check broker adapters bench tests
	$(BIN)/mypy broker adapters

bench: $(VENV)/.installed
	tools/install-test-packages
	$(BIN)/python -m bench.exchange
	$(BIN)/python -m bench.xml
	$(BIN)/python -m bench.log
	$(BIN)/python -m bench.merkle

# Where a synchronous exchange spends its time: a flame graph of the broker under load (var/profile.svg).
profile: $(VENV)/.installed
	tools/install-test-packages
	$(BIN)/python -m bench.profile

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
