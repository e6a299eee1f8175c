# Developer entry points. `make test` is what CI runs (see .ci/run).

CARGO ?= cargo
# Where cargo puts its builds: CARGO_TARGET_DIR if set, else ./target.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# Extra arguments for `make run`, e.g. `make run ARGS="--cores 2"`.
ARGS ?=
# Use cargo-nextest when it is installed: it runs each test in its own process, with the
# timeouts and serial integration-test group of .config/nextest.toml.
HAVE_NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: run build test bench fmt lint

run:
	$(CARGO) build --release
	$(TARGET_DIR)/release/shardlog serve $(ARGS)

build:
	$(CARGO) build --all-targets

# Unit, integration and binary tests; then doc tests (nextest does not run them) and one
# pass over each benchmark in criterion's test mode, so that benches cannot rot.
test:
ifeq ($(HAVE_NEXTEST),yes)
	$(CARGO) nextest run
else
	$(CARGO) test --lib --bins --tests
endif
	$(CARGO) test --doc
	$(CARGO) test --benches

bench:
	$(CARGO) bench

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
