# Vigil's two commands for a fresh machine: `make demo` and `make test`.
# Everything they need is installed by these targets: uv (from PyPI) and the locked Python
# environment, Redis (Debian's redis-server, via services/), Kafka 4 (Maven Central jars).

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv
VENV := .venv
RUN := $(VENV)/bin
VIGIL := $(RUN)/vigil

.PHONY: env services browser test lint typecheck unit demo stop clean help

help:
	@echo "make demo   - start Kafka, Redis, a worker and the API; publish a simulated bank; show alerts"
	@echo "make test   - lint, type-check and run the whole suite against real Kafka and Redis"
	@echo "make stop   - stop the demo's worker and API, then Kafka and Redis"

$(VENV)/.synced: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

env: $(VENV)/.synced

services: env
	$(VIGIL) services up

lint: env
	$(RUN)/ruff check .

typecheck: env
	$(RUN)/mypy

unit: env
	$(RUN)/pytest -q tests/unit engine features rules actions online_models simulator api replay

browser:
	bash scripts/install_browser.sh

test: env lint typecheck services browser
	$(RUN)/pytest -q

demo: services
	$(VIGIL) demo

stop: env
	-$(VIGIL) demo --stop
	$(VIGIL) services down

clean: stop
	rm -rf .run demo-data
