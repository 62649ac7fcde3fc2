# Developer tasks; CI uses .ci/run, which calls the same commands.
PY ?= python3

.PHONY: dev core test rust-test bench lint

dev:            ## editable install (builds the Rust core in release mode)
	$(PY) -m pip install -q -e '.[test]'

core:           ## rebuild only the Rust extension in place (fast loop)
	cargo build --release -p dockyard-core
	cp target/release/lib_core.so python/dockyard/_core.abi3.so

rust-test:
	cargo test -p dockyard-core --no-default-features

test: rust-test
	$(PY) -m pytest -q tests

bench:
	$(PY) bench/run.py
