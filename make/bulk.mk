# Bulk onboarding: the onboard-bulk CLI (crates/onboard-bulk). See README, "Bulk onboarding".
#   make bulk-demo N=10000    the whole path (CLI -> queue -> esm-local -> function -> chime-local -> replies -> CLI), checked
#   make bulk-demo N=2000 RUNS=2   two submits at once against one stack (N rows each)
#   make test-bulk            onboard-bulk's unit and end-to-end tests (part of make test-rust)
#   make install-bulk         onboard-bulk on PATH (cargo install, into ~/.cargo/bin)

N ?= 1000
RUNS ?= 1
# chime-local's token bucket. moto (SQS and DynamoDB in Python) bounds this machine's local
# path at about 40-50 accounts/s (BENCHMARKS.md, "Bulk onboarding"), so the demo's limit is
# one the local stack sustains: 30/s.
BULK_RPS ?= 30
BULK_BURST ?= 10
# esm-local pollers and the function's MAX_CONCURRENCY: 2 x 2 creates at once keep a 30/s
# bucket busy; more only get throttled (each throttled message waits out the visibility).
BULK_ESM_CONCURRENCY ?= 2
BULK_MAX_CONCURRENCY ?= 2

.PHONY: bulk-demo test-bulk install-bulk

bulk-demo: $(VENV_STAMP)
	cargo build -q -p chime-onboard --bin chime-onboard -p chime-local --bin chime-local \
		-p lambda-local --bin esm-local -p onboard-bulk --bin onboard-bulk
	$(VENV)/bin/python scripts/bulk_demo.py --n $(N) --runs $(RUNS) --rps $(BULK_RPS) --burst $(BULK_BURST) \
		--esm-concurrency $(BULK_ESM_CONCURRENCY) --max-concurrency $(BULK_MAX_CONCURRENCY) \
		--moto $(VENV)/bin/moto_server

test-bulk: $(VENV_STAMP)
	MOTO_SERVER=$(CURDIR)/scripts/moto-server cargo test -p onboard-bulk

install-bulk:
	cargo install --locked --path crates/onboard-bulk
