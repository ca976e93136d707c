# Contracts and hardening (issue 12).
#   make test-openapi  schemathesis over openapi.yaml against the function served locally (cargo-lambda's emulator)

.PHONY: test-openapi

# The debug binaries are what `cargo test` and `make test-python` built already;
# cargo-lambda (its Runtime API emulator only) comes from the deploy venv.
test-openapi: $(VENV_STAMP) $(DEPLOY_STAMP)
	cargo build --quiet -p chime-onboard --bin chime-onboard
	cargo build --quiet -p chime-local --bin chime-local
	$(VENV)/bin/python scripts/openapi_check.py

# Supply chain (deny.toml). cargo-deny is installed once, only when missing
# (a from-source build, measured in README.md "Supply chain").
#   make test-deny     cargo deny check licenses bans sources (advisories need a network CI lacks)
.PHONY: test-deny cargo-deny
cargo-deny:
	@cargo deny --version >/dev/null 2>&1 || nice cargo install --locked cargo-deny
test-deny: cargo-deny
	cargo deny --log-level error check licenses bans sources

# Fuzzing (fuzz/, its own workspace, nightly toolchain): not part of `make test`.
#   make fuzz-seeds    seed corpora from events/ and the hostile-input corpus
#   make fuzz FUZZ_TARGET=event FUZZ_SECONDS=600   run one target (event, name_rule, request_document)
FUZZ_TARGET ?= event
FUZZ_SECONDS ?= 600
.PHONY: fuzz fuzz-seeds cargo-fuzz
cargo-fuzz:
	@cargo +nightly fuzz --version >/dev/null 2>&1 || nice cargo install --locked cargo-fuzz
fuzz-seeds: $(VENV_STAMP)
	mkdir -p fuzz/corpus/event fuzz/corpus/name_rule fuzz/corpus/request_document
	cp events/*.json fuzz/corpus/event/
	HOSTILE_CORPUS_DIR=$(CURDIR)/fuzz/corpus/event MOTO_SERVER=$(CURDIR)/scripts/moto-server \
		cargo test --quiet -p chime-onboard --test integration hostile
	$(PYTHON) scripts/fuzz_seeds.py fuzz/corpus
fuzz: cargo-fuzz
	cd fuzz && nice -n 19 cargo +nightly fuzz run --dev --sanitizer none $(FUZZ_TARGET) corpus/$(FUZZ_TARGET) -- \
		-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10
