# Developer tasks; CI uses .ci/run, which calls the same commands.
PY ?= python3

.PHONY: dev core test rust-test bench lint demo

dev:            ## editable install (builds the Rust core in release mode)
	$(PY) -m pip install -q -e '.[test]'

core:           ## rebuild only the Rust extension in place (fast loop)
	cargo build --release -p dockyard-core
	# a new inode: overwriting the mapped library in place crashes running daemons
	cp target/release/lib_core.so python/dockyard/.core.so.tmp && mv -f python/dockyard/.core.so.tmp python/dockyard/_core.abi3.so

rust-test:
	cargo test --release -p dockyard-archive -p dockyard-union -p dockyard-runtime -p dockyard-shim -p dockyard-network

test: rust-test  ## the whole suite (as root): cargo tests, then pytest
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 tests

demo:           ## start a daemon, import busybox-static as an image, list it
	bash .ci/demo

bench:
	$(PY) bench/run.py
