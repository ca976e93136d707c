# Deployment: template checks, arm64 packaging, sam build. See docs/DEPLOY.md.
#   make test-deploy   cfn-lint + sam validate --lint + checkov + policy rules and their tests (no AWS account, no network)
#   make package       release arm64 build -> target/lambda/chime-onboard/bootstrap.zip (cargo-lambda, zig)
#   make sam-build     sam build (BuildMethod rust-cargolambda, no Docker) -> .aws-sam/build; no prompt, no terminal needed
#   make smoke-arm64   run that arm64 bootstrap under qemu-user with the template's environment
#
# Tools live in their own venv (.venv-deploy), apart from .venv (moto), so SAM CLI's
# pins never fight moto's. It is rebuilt only when requirements-deploy.txt changes.

PYTHON ?= python3
DEPLOY_VENV := .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.stamp
# Every deploy tool runs with the venv first on PATH (cargo finds `cargo-lambda`
# there, cargo-lambda finds zig in the venv's ziglang), in us-east-1, without
# telemetry and without reaching for instance credentials. SAM CLI keeps its state
# in the venv (not ~/.aws-sam); the stamp seeds it so SAM skips its weekly
# "newer version?" request: the checks make no network call at all.
SAM_APP_DIR := $(CURDIR)/$(DEPLOY_VENV)/sam-cli
DEPLOY_ENV := PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" AWS_DEFAULT_REGION=us-east-1 \
	SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true __SAM_CLI_APP_DIR="$(SAM_APP_DIR)"
# The oldest SAM CLI that builds BuildMethod rust-cargolambda without --beta-features
# (1.156.0 took it out of beta); older ones stop at a prompt, or fail without a
# terminal. requirements-deploy.txt asks for at least this; `make sam-version` checks
# the SAM CLI actually found, before anything that runs it.
SAM_MIN_VERSION := 1.156.0
LAMBDA_TARGET := aarch64-unknown-linux-gnu
LAMBDA_ZIP := target/lambda/chime-onboard/bootstrap.zip

.PHONY: deploy-venv sam-version test-deploy package sam-build smoke-arm64 rust-target-arm64

$(DEPLOY_STAMP): requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/pip install --quiet -r requirements-deploy.txt
	mkdir -p $(SAM_APP_DIR)
	echo '{"telemetryEnabled": false, "lastVersionCheck": 4102444800.0}' > $(SAM_APP_DIR)/metadata.json
	touch $@
deploy-venv: $(DEPLOY_STAMP)

sam-version: $(DEPLOY_STAMP)
	@found=$$($(DEPLOY_ENV) sam --version | sed -n 's/.*version \([0-9][0-9.]*\).*/\1/p'); \
	if [ -z "$$found" ] || ! printf '%s\n%s\n' '$(SAM_MIN_VERSION)' "$$found" | sort -V -C; then \
	  echo "SAM CLI $${found:-(not found)} is older than $(SAM_MIN_VERSION), which builds rust-cargolambda without a prompt: rm -rf $(DEPLOY_VENV) && make deploy-venv" >&2; \
	  exit 1; \
	fi; echo "SAM CLI $$found (>= $(SAM_MIN_VERSION))"

test-deploy: sam-version
	$(DEPLOY_ENV) cfn-lint template.yaml
	$(DEPLOY_ENV) sam validate --lint --template template.yaml
	# The community's checks; every skip is justified inline (checkov:skip) in the template.
	# --skip-download: no request for Prisma Cloud's guideline links.
	$(DEPLOY_ENV) checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download
	$(DEPLOY_ENV) python policy/check.py template.yaml
	$(DEPLOY_ENV) python -m pytest -q -p no:cacheprovider policy

# The arm64 standard library for rustc; added once, skipped when present.
rust-target-arm64:
	@rustup target list --installed | grep -qx '$(LAMBDA_TARGET)' || rustup target add $(LAMBDA_TARGET)

package: $(DEPLOY_STAMP) rust-target-arm64
	$(DEPLOY_ENV) cargo lambda build --release --arm64 --bin chime-onboard --output-format zip
	@echo "bootstrap.zip: $$(stat -c %s $(LAMBDA_ZIP)) bytes ($(LAMBDA_ZIP))"

# stdin is /dev/null: SAM must not be able to ask anything (make sam-build </dev/null).
sam-build: sam-version rust-target-arm64
	$(DEPLOY_ENV) sam build --template template.yaml </dev/null

# Starts the built bootstrap as Lambda would (template environment, loopback Runtime
# API, every AWS endpoint on a closed loopback port) and checks three invocations.
# An arm64 binary runs under qemu-user; installed once from Debian's packages.
smoke-arm64: sam-build
	@command -v qemu-aarch64 >/dev/null && test -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user libc6-arm64-cross; }
	$(DEPLOY_ENV) python policy/smoke_bootstrap.py .aws-sam/build/OnboardFunction/bootstrap
