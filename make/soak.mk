# Soak (issue 9): exactly once under faults and crashes. Not part of `make test`.
#   make soak   1000 SQS requests through esm-local + the release function, chime-local faults, SIGKILLs; checks accounts and replies
#
# scripts/soak.py holds the knobs (constants at its top, each also a flag: SOAK_ARGS="--seed 3").
# The function and chime-local are release builds (what ships); esm-local, the local event
# source mapping (crates/lambda-local), runs as a debug build: it only waits on I/O.

SOAK_ARGS ?=

.PHONY: soak esm-local
esm-local:
	nice cargo build --quiet -p lambda-local --bin esm-local

soak: $(VENV_STAMP) esm-local
	nice cargo build --release --quiet -p chime-onboard
	nice cargo build --release --quiet -p chime-local
	$(VENV)/bin/python scripts/soak.py --target-dir target $(SOAK_ARGS)
