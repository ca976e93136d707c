# Deployment: template checks, arm64 packaging, sam build. See docs/DEPLOY.md.
#   make test-deploy   cfn-lint + sam validate --lint + checkov + policy rules and their tests (no AWS account, no network)
#   make package       release arm64 build -> target/lambda/chime-onboard/bootstrap.zip (cargo-lambda, zig)
#   make sam-build     sam build (BuildMethod rust-cargolambda, no Docker) -> .aws-sam/build
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
LAMBDA_TARGET := aarch64-unknown-linux-gnu
LAMBDA_ZIP := target/lambda/chime-onboard/bootstrap.zip

.PHONY: deploy-venv test-deploy package sam-build smoke-arm64 rust-target-arm64

$(DEPLOY_STAMP): requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/pip install --quiet -r requirements-deploy.txt
	mkdir -p $(SAM_APP_DIR)
	echo '{"telemetryEnabled": false, "lastVersionCheck": 4102444800.0}' > $(SAM_APP_DIR)/metadata.json
	touch $@
deploy-venv: $(DEPLOY_STAMP)

test-deploy: $(DEPLOY_STAMP)
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

sam-build: $(DEPLOY_STAMP) rust-target-arm64
	$(DEPLOY_ENV) sam build --template template.yaml

# Starts the built bootstrap as Lambda would (template environment, loopback Runtime
# API, every AWS endpoint on a closed loopback port) and checks three invocations.
# An arm64 binary runs under qemu-user; installed once from Debian's packages.
smoke-arm64: sam-build
	@command -v qemu-aarch64 >/dev/null && test -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user libc6-arm64-cross; }
	$(DEPLOY_ENV) python policy/smoke_bootstrap.py .aws-sam/build/OnboardFunction/bootstrap
