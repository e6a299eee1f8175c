# Developer entry points. `make test` is what CI runs (see .ci/run).

CARGO ?= cargo
# Where cargo puts its builds: CARGO_TARGET_DIR if set, else ./target.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# Extra arguments for `make run`, e.g. `make run ARGS="--cores 2"`.
ARGS ?=
# Use cargo-nextest when it is installed: it runs each test in its own process, with the
# timeouts and serial integration-test group of .config/nextest.toml.
HAVE_NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: run build test test-steps bench fmt lint

run:
	$(CARGO) build --release
	$(TARGET_DIR)/release/shardlog serve $(ARGS)

build:
	$(CARGO) build --all-targets

# The tests that lack something they need (a tool, the venv, ../shared/logql) and are not
# under CI append one line each to this file (src/testing/environment.rs): Rust's harness
# reports them `ok`, so `make test` prints the list at the end, where it cannot be missed.
TEST_SKIPS := $(abspath $(TARGET_DIR))/test-skips.txt
export SHARDLOG_TEST_SKIPS := $(TEST_SKIPS)

# `make test`: the steps below, then the loud list of skipped tests, even after a failure;
# its exit status is that of the steps.
test:
	@mkdir -p '$(dir $(TEST_SKIPS))' && rm -f '$(TEST_SKIPS)'
	@status=0; $(MAKE) --no-print-directory test-steps || status=$$?; \
	if [ -s '$(TEST_SKIPS)' ]; then \
		n=$$(sort -u '$(TEST_SKIPS)' | wc -l); \
		echo; \
		echo '################################################################################'; \
		if [ "$$n" = 1 ]; then what='1 test was'; else what="$$n tests were"; fi; \
		echo "## $$what SKIPPED: they checked nothing, although the runner above"; \
		echo '## counts them as passed. Install what they name (see the README) to run them.'; \
		sort -u '$(TEST_SKIPS)' | sed 's/^/##   SKIPPED /'; \
		echo '################################################################################'; \
	fi; \
	exit $$status

# Doc tests (nextest does not run them) and one pass over each benchmark in criterion's
# test mode (so that benches cannot rot); then the unit tests; then the integration tests
# in tests/, which start the real server, on their own: unit tests of the WAL and the
# parsers load the disk and both cores, and a server under test sharing the machine with
# them would measure that load instead of itself. The integration run comes last so that
# its summary closes the output (before the list of skipped tests).
test-steps:
	$(CARGO) test --doc
	$(CARGO) test --benches
ifeq ($(HAVE_NEXTEST),yes)
	$(CARGO) nextest run -E 'not kind(test)'
	$(CARGO) nextest run -E 'kind(test)'
else
	$(CARGO) test --lib --bins
	$(CARGO) test --test '*' -- --test-threads=1
endif

bench:
	$(CARGO) bench

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# A default harness session sized for a 2-core machine, under 3 minutes in all: Loki push
# (JSON, 1,000-line batches), syslog TCP (RFC 5424, octet counting) and queries while
# ingesting, each against a freshly spawned release server on loopback, verified for loss.
# The three reports go into one directory, printed at the end.
ifndef BENCH_REPORT_DIR
BENCH_REPORT_DIR := $(TARGET_DIR)/bench-report/$(shell date -u +%Y%m%dt%H%M%S)
endif
.PHONY: bench-report
bench-report:
	$(CARGO) build --release
	$(TARGET_DIR)/release/shardlog bench push --spawn --encoding json --duration 20s --out $(BENCH_REPORT_DIR)/push
	$(TARGET_DIR)/release/shardlog bench syslog-tcp --spawn --duration 20s --out $(BENCH_REPORT_DIR)/syslog-tcp
	$(TARGET_DIR)/release/shardlog bench query --spawn --duration 15s --out $(BENCH_REPORT_DIR)/query
	@echo
	@echo "bench reports in $(BENCH_REPORT_DIR):"
	@for s in push syslog-tcp query; do echo "  $(BENCH_REPORT_DIR)/$$s/report.md"; done

# The soak: a release server under mixed load (Loki push JSON and protobuf, small and large
# batches, syslog TCP, queries), with sealing, compaction and retention running all the
# time and the server killed (kill -9) or stopped (SIGTERM) every 20-60 s, then every
# acknowledged line checked once. Fails on any crash, loss, duplicate or error while ready.
# `make soak SOAK_DURATION=30m`; more flags (e.g. `--seed N`, `--rate N`) in SOAK_ARGS.
SOAK_DURATION ?= 10m
SOAK_ARGS ?=
.PHONY: soak
soak:
	$(CARGO) build --release
	$(TARGET_DIR)/release/shardlog soak --duration $(SOAK_DURATION) $(SOAK_ARGS)
