#!/usr/bin/env bash
# The workers benchmark (not a test): one `exsync run` worker against three on a throwaway
# PostgreSQL (needs the Debian package postgresql), with fresh simulators each time: users
# finished per second in a first sync and the ratio, then a no-change pass's EWS requests and
# CRM calls, also over 1,000 users. Defaults: 48 users × 100 contacts × 50 events.
#   bench/workers.sh [--users 48] [--contacts 100] [--events 50] [--idle-users 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p exsync --bins
cargo build --release -q -p exsync-lab --example bench_workers
exec "${CARGO_TARGET_DIR:-target}/release/examples/bench_workers" "$@"
