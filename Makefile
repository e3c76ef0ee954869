# iam-provisioner: run the pipeline locally, test it, check it.
# Everything it needs is installed by the targets themselves.

SHELL := /bin/bash
EVENT ?= events/onboarding-ticket.json
PYTHON ?= python3
# The emulator the tests are written against; tests/tests/moto_facts.rs
# notices when its behaviour changes.
MOTO_SPEC ?= moto[server]>=5.2,<5.3
CARGO ?= cargo

.PHONY: help run test lint deps
.DEFAULT_GOAL := help

help:
	@echo "make run [EVENT=path]  run the whole pipeline locally on a ticket (default $(EVENT))"
	@echo "make test              unit tests and integration tests against a local emulator"
	@echo "make lint              rustfmt and clippy"

# The emulator, unless it is already importable.
deps:
	@$(PYTHON) -c 'import moto, flask, flask_cors' 2>/dev/null || \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check '$(MOTO_SPEC)'

# Starts moto on a free loopback port when AWS_ENDPOINT_URL is unset.
run: deps
	$(CARGO) run --quiet -p tests --bin run-local -- $(EVENT)

test: deps
	$(CARGO) test --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
