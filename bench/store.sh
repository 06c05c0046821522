#!/usr/bin/env bash
# The store benchmark (not a test): what a pass's calls to the store cost on SQLite and on a
# throwaway PostgreSQL over loopback TCP (needs the Debian package postgresql), apart from the
# rest of the pass: a first sync's batches of new pairs, the look-ups of a pass that reads
# every item, then every pair updated and every pair removed. Prints wall time and CPU per
# pair and wall time per call.
#   bench/store.sh [--pairs 20000] [--batch 100] [--ids-in-order]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p exsync-store --example bench_commit
exec "${CARGO_TARGET_DIR:-target}/release/examples/bench_commit" "$@"
