#!/usr/bin/env bash
# The sync benchmark (not a test): prints items per second, EWS requests and CRM calls per
# synced item, peak RSS, and CPU (exsync's, per item and per user, apart from the
# simulators') for an initial sync, an echo pass, a no-change pass and a pass after 1% changed
# on each side, and the seeding time. Defaults: 50 users × 500 contacts × 500 events.
#   bench/sync.sh [--users 50] [--contacts 500] [--events 500] [--latency-ms 0] [--graph | --hybrid]
#                  [--per-user-concurrency N] [--contacts-only] [--import]
# --graph: every mailbox in Exchange Online, served by the Graph simulator; --hybrid: half of them.
# --contacts-only: events are not synced; --import: the mailboxes are synced once before the CRM
# is seeded, so its records arrive as a bulk load. Each pass also prints its EWS requests by
# operation.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p exsync --bins
cargo build --release -q -p exsync-lab --examples
exec target/release/examples/bench_sync "$@"
