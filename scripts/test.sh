#!/usr/bin/env bash
# Run the whole test suite the way CI does: set up, start a throwaway PostgreSQL on loopback, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export ROOMSCAN_TEST_POSTGRES_URL="${ROOMSCAN_TEST_POSTGRES_URL:-$(scripts/postgres.sh start)}"
export ROOMSCAN_CHROMIUM="${ROOMSCAN_CHROMIUM:-$(command -v chromium || true)}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# Tests must never reach the network for weights: the sandbox has none, and a user's CI should not need it.
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
