# chime-onboard — the commands the README promises.
#   make dev    chime-local + moto_server (SQS, DynamoDB) + the function under cargo lambda watch
#   make test   everything CI checks: fmt, clippy, Rust tests, Python tests, template policy, cold-start guard, browser tests
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.stamp
export CARGO_TERM_COLOR ?= never

.PHONY: help venv test test-rust test-python lint dev
help:
	@grep -hE '^#   make' Makefile make/*.mk | sed 's/^#   //'

# The venv is rebuilt only when requirements-dev.txt changes.
$(VENV_STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@
venv: $(VENV_STAMP)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test-rust: $(VENV_STAMP)
	MOTO_SERVER=$(CURDIR)/$(VENV)/bin/moto_server cargo test --workspace

include make/*.mk

# cargo-lambda comes from the deploy venv (one copy of it and its zig).
dev: $(VENV_STAMP) $(DEPLOY_STAMP) $(E2E_STAMP)
	scripts/dev.sh

test: lint test-deny test-rust test-python test-deploy test-openapi bench-quick e2e
