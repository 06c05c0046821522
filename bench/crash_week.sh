#!/usr/bin/env bash
# An operator's worst week (a scenario, not a test): `exsync sync` is SIGKILLed at random
# moments while people edit and delete contacts on both sides, then two clean passes run and
# it prints what became of that work (edits lost, deletes undone, duplicates, missing contacts,
# convergence). Exits non-zero if any of people's work was lost, so it can gate.
#   bench/crash_week.sh [--users 3] [--contacts 1000] [--events 200] [--kills 8] [--seed N]
# The seed defaults to one from the clock and is printed; pass it again to replay the kills
# and the people's choices.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p exsync --bins
cargo build --release -q -p exsync-lab --example crash_week
exec target/release/examples/crash_week "$@"
