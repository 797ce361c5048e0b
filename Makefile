# roomscan's two everyday commands: `make run` (set up, then serve the app) and `make test`.
.PHONY: setup run test bench

setup:
	scripts/setup.sh

run: setup
	.venv/bin/roomscan serve

test:
	scripts/test.sh

bench: setup
	.venv/bin/python benchmarks/bench_detect.py
	.venv/bin/python benchmarks/bench_search.py --listings 100000
