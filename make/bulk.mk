# Bulk onboarding: the onboard-bulk CLI (crates/onboard-bulk). See README, "Bulk onboarding".
#   make bulk-demo N=10000    the whole path (CLI -> queue -> esm-local -> function -> chime-local -> replies -> CLI), checked
#   make test-bulk            onboard-bulk's unit and end-to-end tests (part of make test-rust)

N ?= 1000
BULK_RPS ?= 200
BULK_BURST ?= 10
# esm-local pollers and the function's MAX_CONCURRENCY: enough to keep the bucket busy.
BULK_ESM_CONCURRENCY ?= 8
BULK_MAX_CONCURRENCY ?= 10

.PHONY: bulk-demo test-bulk

bulk-demo: $(VENV_STAMP)
	cargo build -q -p chime-onboard --bin chime-onboard -p chime-local --bin chime-local \
		-p lambda-local --bin esm-local -p onboard-bulk --bin onboard-bulk
	$(VENV)/bin/python scripts/bulk_demo.py --n $(N) --rps $(BULK_RPS) --burst $(BULK_BURST) \
		--esm-concurrency $(BULK_ESM_CONCURRENCY) --max-concurrency $(BULK_MAX_CONCURRENCY) \
		--moto $(VENV)/bin/moto_server

test-bulk: $(VENV_STAMP)
	MOTO_SERVER=$(CURDIR)/$(VENV)/bin/moto_server cargo test -p onboard-bulk
