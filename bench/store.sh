#!/usr/bin/env bash
# The store benchmark (not a test): what committing one mailbox's pairs costs on SQLite and
# on a throwaway PostgreSQL over loopback TCP (needs the Debian package postgresql), apart
# from the rest of a pass: a first sync's batches of new pairs, then every pair updated.
# Prints wall time and CPU per pair and wall time per commit.
#   bench/store.sh [--pairs 20000] [--batch 100]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p exsync-store --example bench_commit
exec "${CARGO_TARGET_DIR:-target}/release/examples/bench_commit" "$@"
