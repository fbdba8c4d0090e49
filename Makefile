# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test test-packages lint bench profile clean

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

# The Debian packages the tests and benches drive, installed where they are missing: chromium and
# chromium-driver (the browser tests; Playwright drives /usr/bin/chromium, no browser download works
# here), prometheus (promtool on deploy/prometheus, and a real Prometheus that fires an alert), wrk
# (the load generator of bench.exchange and bench.profile; a Python one measures itself). Without
# apt-get, or neither root nor sudo, nothing is installed and those tests skip, unless
# BROKER_TEST_REQUIRE_BROWSER / BROKER_TEST_REQUIRE_PROMETHEUS make them fail instead (CI sets both).
# A daemon the prometheus package may start on :9090 is not used: the tests start their own.
TEST_COMMANDS := /usr/bin/chromium /usr/bin/chromedriver /usr/bin/prometheus /usr/bin/promtool /usr/bin/wrk
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo)

test-packages:
	@missing=; for command in $(TEST_COMMANDS); do [ -x $$command ] || missing=yes; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1 || { [ -n "$(AS_ROOT)" ] && ! command -v sudo >/dev/null 2>&1; }; then \
		echo "cannot install Debian's chromium, chromium-driver, prometheus and wrk (no apt-get, or neither root nor sudo): the tests that need them will skip" >&2; exit 0; \
	fi; \
	echo "Installing Debian's chromium, chromium-driver, prometheus and wrk for the tests and benches"; \
	$(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver prometheus wrk; \
	for command in $(TEST_COMMANDS); do [ -x $$command ] || { echo "apt-get ran, but $$command is not there" >&2; exit 1; }; done

# Two workers (pytest-xdist), a test module each at a time so its fixtures stay in one process:
# most tests wait on subprocess brokers and databases, so the suite takes about 18 instead of 28
# minutes on two cores.
test: $(VENV)/.installed $(BROWSER_TESTS)/node_modules/.installed test-packages
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(BIN)/ruff check broker adapters bench tests
	$(BIN)/mypy broker adapters

bench: $(VENV)/.installed test-packages
	$(BIN)/python -m bench.exchange
	$(BIN)/python -m bench.xml
	$(BIN)/python -m bench.log
	$(BIN)/python -m bench.merkle
	@if command -v valgrind >/dev/null 2>&1; then $(BIN)/python -m bench.instructions; \
	else echo "valgrind is not installed: bench.instructions (instructions per request) left out"; fi

# Where a synchronous exchange spends its time: a flame graph of the broker under load (var/profile.svg).
profile: $(VENV)/.installed test-packages
	$(BIN)/python -m bench.profile

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
