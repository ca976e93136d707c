# Benchmarks (issue 6). See BENCHMARKS.md.
#   make bench         cold init, warm overhead, SQS batch, RSS, zip size, TLS cold path -> bench/results.json + BENCHMARKS.md
#   make bench-quick   regression guard for `make test`: 5 cold starts, init and spawn -> first response ratios vs hello world
#   make bench-tls-variants  optional: hello-tls on aws-lc-rs (the SDK default), with and without jitter entropy (once, ~5 min)
#   make bench-deployed  only the deployed case (idempotency on, TLS, RTT_MS of latency to each upstream; `make bench`
#                        runs it too): round trips and spawn -> first response vs the SDK floor, printed and written to
#                        target/bench-logs/deployed.json; results.json and BENCHMARKS.md are left alone
#
# The harness is its own small Cargo workspace (bench/harness) built into the
# shared target dir; the hello worlds (bench/hello, and the SDK floor
# bench/hello-sdk) are workspace members so they get the function's release
# profile. Builds and runs are niced: this machine
# has two cores and other people's builds on them.

PYTHON ?= python3
BENCH_TARGET := $(CURDIR)/target
BENCH_NICE := nice -n 10
BENCH_HARNESS := $(BENCH_TARGET)/release/bench-harness
BENCH_PEER_VENV := bench/.venv-peer
BENCH_PEER_STAMP := $(BENCH_PEER_VENV)/.stamp
BENCH_BIN := $(BENCH_TARGET)/bench/bin
# Profile of the function and hello world for the quick guard. `release` is what
# the goals are about; `dev` reuses what `cargo test` built (see BENCHMARKS.md).
BENCH_QUICK_PROFILE ?= release
BENCH_QUICK_DIR := $(if $(filter dev,$(BENCH_QUICK_PROFILE)),debug,$(BENCH_QUICK_PROFILE))
BENCH_QUICK_FLAGS := $(if $(filter dev,$(BENCH_QUICK_PROFILE)),,--profile $(BENCH_QUICK_PROFILE))
# One package per cargo call: building two together unifies their features and
# would give the function a second, differently-featured build of the SDK stack.

.PHONY: bench bench-quick bench-build bench-harness bench-peer bench-tls-variants bench-deployed

# The deployed case's round-trip time to each upstream (ms), and its size.
RTT_MS ?= 2
DEPLOYED_RUNS ?= 10
DEPLOYED_WARM ?= 10

# The Python peer's own venv; rebuilt only when its requirements change.
$(BENCH_PEER_STAMP): bench/peers/python/requirements.txt
	$(PYTHON) -m venv $(BENCH_PEER_VENV)
	$(BENCH_PEER_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_PEER_VENV)/bin/pip install --quiet -r bench/peers/python/requirements.txt
	touch $@
bench-peer: $(BENCH_PEER_STAMP)

# Cargo decides what is stale; each is a no-op when up to date.
bench-harness:
	cd bench/harness && CARGO_TARGET_DIR=$(BENCH_TARGET) $(BENCH_NICE) cargo build --release --quiet

bench-build: bench-harness
	$(BENCH_NICE) cargo build --release --quiet -p chime-onboard
	$(BENCH_NICE) cargo build --release --quiet -p chime-local
	$(BENCH_NICE) cargo build --release --quiet -p bench-hello
	$(BENCH_NICE) cargo build --release --quiet -p bench-hello-sdk
	mkdir -p $(BENCH_BIN)
	cp $(BENCH_TARGET)/release/hello-tls $(BENCH_BIN)/hello-tls

bench: bench-build $(BENCH_PEER_STAMP)
	$(BENCH_NICE) $(BENCH_HARNESS) full \
		--function $(BENCH_TARGET)/release/chime-onboard \
		--hello $(BENCH_TARGET)/release/hello \
		--hello-tls $(BENCH_BIN)/hello-tls \
		--hello-sdk $(BENCH_TARGET)/release/hello-sdk \
		--hello-tls-variant aws-lc=$(BENCH_BIN)/hello-tls-aws-lc \
		--hello-tls-variant aws-lc-no-jitter=$(BENCH_BIN)/hello-tls-nojitter \
		--chime-local $(BENCH_TARGET)/release/chime-local \
		--python $(BENCH_PEER_VENV)/bin/python --python-dir bench/peers/python \
		--zip target/lambda/chime-onboard/bootstrap.zip \
		--rtt-ms $(RTT_MS) \
		--out bench/results.json --markdown BENCHMARKS.md --log-dir $(BENCH_TARGET)/bench-logs
	@echo "wrote bench/results.json and the table in BENCHMARKS.md"

# The deployed case alone (≈ 10 s of running): the function and the SDK floor in release builds.
bench-deployed: bench-harness
	$(BENCH_NICE) cargo build --release --quiet -p chime-onboard
	$(BENCH_NICE) cargo build --release --quiet -p chime-local
	$(BENCH_NICE) cargo build --release --quiet -p bench-hello-sdk
	$(BENCH_NICE) $(BENCH_HARNESS) deployed \
		--function $(BENCH_TARGET)/release/chime-onboard \
		--hello-sdk $(BENCH_TARGET)/release/hello-sdk \
		--chime-local $(BENCH_TARGET)/release/chime-local \
		--rtt-ms $(RTT_MS) --deployed-runs $(DEPLOYED_RUNS) --deployed-warm $(DEPLOYED_WARM) \
		--out $(BENCH_TARGET)/bench-logs/deployed.json --log-dir $(BENCH_TARGET)/bench-logs

# Ratios only, never absolute times: the guard must pass on any machine.
bench-quick: bench-harness
	$(BENCH_NICE) cargo build --quiet $(BENCH_QUICK_FLAGS) -p chime-onboard
	$(BENCH_NICE) cargo build --quiet $(BENCH_QUICK_FLAGS) -p bench-hello
	$(BENCH_NICE) cargo build --quiet -p chime-local
	$(BENCH_NICE) $(BENCH_HARNESS) quick \
		--function $(BENCH_TARGET)/$(BENCH_QUICK_DIR)/chime-onboard \
		--hello $(BENCH_TARGET)/$(BENCH_QUICK_DIR)/hello \
		--chime-local $(BENCH_TARGET)/debug/chime-local \
		--threshold 3.0 --first-response-threshold 4.0 --cold-runs 15 --log-dir $(BENCH_TARGET)/bench-logs

# Optional TLS stack comparisons for the hello world: aws-lc-rs (the SDK's
# default provider) with and without its jitter entropy source. The no-jitter
# build needs its own target dir: AWS_LC_SYS_NO_JITTER_ENTROPY is read by
# aws-lc-sys's build script. The default (ring) is rebuilt last so
# target/release/hello-tls is the default again.
bench-tls-variants:
	mkdir -p $(BENCH_BIN)
	$(BENCH_NICE) cargo build --release --quiet -p bench-hello --bin hello-tls --no-default-features --features aws-lc
	cp $(BENCH_TARGET)/release/hello-tls $(BENCH_BIN)/hello-tls-aws-lc
	AWS_LC_SYS_NO_JITTER_ENTROPY=1 $(BENCH_NICE) cargo build --release --quiet -p bench-hello --bin hello-tls \
		--no-default-features --features aws-lc --target-dir $(BENCH_TARGET)/bench-nojitter
	cp $(BENCH_TARGET)/bench-nojitter/release/hello-tls $(BENCH_BIN)/hello-tls-nojitter
	$(BENCH_NICE) cargo build --release --quiet -p bench-hello
