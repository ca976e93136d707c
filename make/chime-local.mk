# chime-local: the Chime account API emulator (crates/chime-local). See crates/chime-local/README.md.
#   make test-python          boto3's chime client against the chime-local binary (pytest, .venv)
#   make bench-chime-local    CreateAccount throughput, faults off (release build, ~8 s of load)
#   make chime-local          run the emulator on CHIME_LOCAL_PORT (default 4580), state in .dev/

CHIME_LOCAL_PORT ?= 4580
# Load generator knobs: seconds of measured load, keep-alive connections.
CHIME_LOCAL_BENCH_SECS ?= 5
CHIME_LOCAL_BENCH_CONNS ?= 32

.PHONY: test-python bench-chime-local chime-local

test-python: $(VENV_STAMP)
	cargo build -p chime-local --bin chime-local
	CHIME_LOCAL_BIN=$(CURDIR)/target/debug/chime-local $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/python

bench-chime-local:
	cargo bench -p chime-local --bench throughput -- \
		--secs $(CHIME_LOCAL_BENCH_SECS) --connections $(CHIME_LOCAL_BENCH_CONNS)

chime-local:
	@mkdir -p .dev
	cargo run -p chime-local --bin chime-local -- --port $(CHIME_LOCAL_PORT) --state .dev/chime-local-state.json
