# chime-onboard — the commands the README promises.
#   make dev    chime-local + moto_server (SQS, DynamoDB) + esm-local + the function under cargo lambda watch (+ a local OpenID provider; DEV_AUTH=off: none)
#   make test   everything CI checks: fmt, clippy, Rust tests, Python tests, template policy, cold-start guard, browser tests
#   make setup  what the machine itself needs: rust-toolchain.toml's toolchain (rustfmt, clippy, arm64 target), python3-venv
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.stamp
# `DEV_AUTH=off make dev`: no sign-in, so no OpenID provider and no .venv-e2e.
DEV_AUTH ?= on
export CARGO_TERM_COLOR ?= never

.PHONY: help setup toolchain python-venv venv test test-rust test-python lint dev
help:
	@grep -hE '^#   make' Makefile make/*.mk | sed 's/^#   //'

# The toolchain rust-toolchain.toml names, with its components and targets. When they are
# all there nothing runs and nothing is fetched; otherwise `rustup toolchain install`
# (no argument: it reads the file) adds what is missing.
toolchain:
	@{ cargo fmt --version && cargo clippy --version && \
	   rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; } >/dev/null 2>&1 || \
	  rustup toolchain install

# `python3 -m venv` needs ensurepip, which Debian ships apart (python3-venv): installed
# when missing if we are root, else make says what to install.
python-venv:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; } || \
	  { echo "make: '$(PYTHON) -m venv' cannot work here: install python3-venv (apt-get install python3-venv, as root)" >&2; exit 1; }

setup: toolchain python-venv

# The venv is rebuilt only when requirements-dev.txt changes.
$(VENV_STAMP): requirements-dev.txt | python-venv
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@
venv: $(VENV_STAMP)

lint: toolchain
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test-rust: toolchain $(VENV_STAMP)
	MOTO_SERVER=$(CURDIR)/scripts/moto-server cargo test --workspace

include make/*.mk

# Every other virtualenv needs `python3 -m venv` too.
$(DEPLOY_STAMP) $(E2E_STAMP) $(BENCH_PEER_STAMP): | python-venv

# Only what scripts/dev.sh runs: moto_server and cargo-lambda from .venv; the local
# OpenID provider from .venv-e2e, and only when sign-in is on.
dev: toolchain $(VENV_STAMP) $(if $(filter off,$(DEV_AUTH)),,$(E2E_STAMP))
	DEV_AUTH=$(DEV_AUTH) scripts/dev.sh

test: lint test-deny test-rust test-python test-deploy test-openapi bench-quick e2e
