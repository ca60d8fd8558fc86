# Pulsing developer entry points. Needs GNU make, Rust (cargo) and Python 3.10+; everything else
# (maturin, pytest, ...) is installed into .venv by `make venv`.
#
#   make demo    the distributed counter as two OS processes: Rust (examples/distributed_counter.rs),
#                then Python (examples/python/distributed_counter.py), each over HTTP then QUIC
#   make test    fmt-check, clippy, cargo-test, py-test, py-lint, in this order; stops at the first
#                failure
#   make bench   run the local benchmarks (examples/bench.rs)

CARGO ?= cargo
PYTHON ?= python3

VENV := .venv
VENV_STAMP := $(VENV)/.stamp
PY_DEPS := 'maturin>=1.9.4,<2' pytest pytest-timeout msgpack 'mypy>=1.10' 'ruff>=0.6'

# `$(call ensure,fmt,rustfmt)`: checks that `cargo fmt` works; if not, installs the rustup component
# `rustfmt` when rustup is there, else fails saying what is missing.
ensure = $(CARGO) $(1) --version >/dev/null 2>&1 \
	|| { command -v rustup >/dev/null 2>&1 && rustup component add $(2); } \
	|| { echo "cargo $(1) is missing: install the Rust component '$(2)'" >&2; exit 1; }

# `test` runs its steps one after another, never in parallel, even under `make -j`.
.NOTPARALLEL:

.PHONY: help demo test tools fmt-check clippy cargo-test venv py-build py-test py-lint bench clean

help:
	@echo "make demo    distributed counter across two OS processes (Rust, then Python; HTTP, then QUIC)"
	@echo "make test    fmt-check, clippy, cargo-test, py-test, py-lint"
	@echo "make bench   local benchmarks (JSON lines)"
	@echo "make venv    create .venv with maturin, pytest, pytest-timeout, msgpack, mypy, ruff"
	@echo "make clean   remove target/, .venv and Python build leftovers"

# Each counter runs over HTTP, then over QUIC; the Rust one is built once, with the facade's `quic`
# feature, for both runs.
demo: py-build
	@echo "== Rust: distributed counter, seed + joining node as two OS processes, over HTTP =="
	$(CARGO) run --release --features quic --example distributed_counter -- --transport http
	@echo "== Rust: the same over QUIC =="
	$(CARGO) run --release --features quic --example distributed_counter -- --transport quic
	@echo "== Python: the remote actors guide's distributed counter, two OS processes, over HTTP =="
	$(VENV)/bin/python examples/python/distributed_counter.py --transport http
	@echo "== Python: the same over QUIC (SystemConfig...with_transport(\"quic\")) =="
	$(VENV)/bin/python examples/python/distributed_counter.py --transport quic

test: tools fmt-check clippy cargo-test py-test py-lint

# The wire-conformance tests drive curl; install it where it is missing (Debian, as root).
tools:
	@command -v curl >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q curl; }

fmt-check:
	@$(call ensure,fmt,rustfmt)
	$(CARGO) fmt --all -- --check

clippy:
	@$(call ensure,clippy,clippy)
	$(CARGO) clippy --workspace --all-targets --features pulsing/quic -- -D warnings

cargo-test:
	$(CARGO) test --workspace --all-targets --features pulsing/quic
	$(CARGO) test --workspace --doc --features pulsing/quic

venv: $(VENV_STAMP)

# The stamp is written only after every install succeeded, so a failed install is retried next time;
# a change of PY_DEPS (this Makefile) installs again.
$(VENV_STAMP): Makefile
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "$(PYTHON) is older than Python 3.10" >&2; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check $(PY_DEPS)
	touch $@

py-build: venv
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/maturin develop -m pulsing-py/Cargo.toml

# pytest exits 5 when it collects no tests; like any non-zero exit, that fails the target.
# test_rust_refs.py talks to the Rust reference node, built here.
py-test: py-build
	$(CARGO) build --example echo_node
	$(VENV)/bin/pytest pulsing-py/tests -q

# The Python package's own code: ruff (lint and format) and mypy --strict (config in pyproject.toml).
py-lint: venv
	cd pulsing-py && ../$(VENV)/bin/ruff check python && ../$(VENV)/bin/ruff format --check python
	cd pulsing-py && ../$(VENV)/bin/mypy

bench:
	$(CARGO) run --release --example bench -- --scenario local
	$(CARGO) run --release --example bench -- --scenario remote --transport http
	$(CARGO) run --release --example cluster_sim -- --nodes 256 --loss 0.1
	$(MAKE) py-build
	$(VENV)/bin/python examples/python/bench.py

clean:
	$(CARGO) clean
	rm -rf $(VENV) .pytest_cache pulsing-py/.pytest_cache
	rm -f pulsing-py/python/pulsing/*.so
	find pulsing-py -name __pycache__ -type d -prune -exec rm -rf {} +
