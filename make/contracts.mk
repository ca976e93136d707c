# Contracts and hardening (issue 12).
#   make test-openapi  schemathesis over openapi.yaml against the function served locally (cargo-lambda's emulator)

.PHONY: test-openapi

# The debug binaries are what `cargo test` and `make test-python` built already;
# cargo-lambda (its Runtime API emulator only) comes from the deploy venv.
test-openapi: $(VENV_STAMP) $(DEPLOY_STAMP)
	cargo build --quiet -p chime-onboard --bin chime-onboard
	cargo build --quiet -p chime-local --bin chime-local
	$(VENV)/bin/python scripts/openapi_check.py
