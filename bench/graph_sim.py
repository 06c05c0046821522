#!/usr/bin/env python3
"""Throughput of `exsync-sim graph`: contact creates through `$batch` (20 per batch) and
contacts delta pages.

Not a test. Run from the workspace root after building the simulator:
    .venv/bin/python bench/graph_sim.py [--release] [--contacts 2000] [--mailboxes 4] [--page-size 100]
It starts the simulator on a temporary directory (port 0), takes an app-only token with msal
(the client secret), and drives each mailbox from its own thread over one keep-alive HTTPS
connection, the way a sync worker would (Exchange Online allows 4 concurrent requests per app
and mailbox; one per mailbox here never meets that limit). `--release` builds and uses
target/release (cargo is a no-op when it is up to date).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

WORKSPACE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WORKSPACE / "tests" / "interop" / "graph"))
sys.path.insert(0, str(WORKSPACE / "tests" / "interop"))

from graph_sim import GRAPH_SCOPE, Sim  # noqa: E402

BATCH = 20


def session(sim, token):
    s = requests.Session()
    s.verify = sim.ca
    s.trust_env = False
    s.headers["Authorization"] = "Bearer " + token
    return s


def create_folder(s, sim, mailbox):
    r = s.post(f"{sim.graph_url}/users/{mailbox}/contactFolders", json={"displayName": "Salesforce_Sync"}, timeout=60)
    r.raise_for_status()
    return r.json()["id"]


def batch_creates(s, sim, mailbox, folder, count, counts):
    url = f"/users/{mailbox}/contactFolders/{folder}/contacts"
    for start in range(0, count, BATCH):
        requests_ = [
            {
                "id": str(i + 1),
                "method": "POST",
                "url": url,
                "headers": {"Content-Type": "application/json"},
                "body": {
                    "givenName": f"Given{start + i}",
                    "surname": f"Surname{start + i}",
                    "emailAddresses": [{"address": f"p{start + i}@example.com"}],
                    "singleValueExtendedProperties": [
                        {"id": "String {6d1c3b4e-9f7a-4c1e-8a55-2f0e7c9b1d42} Name CrmId", "value": f"003{start + i:012d}"}
                    ],
                },
            }
            for i in range(min(BATCH, count - start))
        ]
        r = s.post(f"{sim.graph_url}/$batch", json={"requests": requests_}, timeout=60)
        r.raise_for_status()
        bad = [x for x in r.json()["responses"] if x["status"] != 201]
        if bad:
            raise SystemExit(f"batch item failed: {bad[0]}")
        counts["batches"] += 1
        counts["items"] += len(requests_)


def delta_pages(s, sim, mailbox, folder, page_size, counts):
    url = f"{sim.graph_url}/users/{mailbox}/contactFolders/{folder}/contacts/delta"
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    while url:
        r = s.get(url, headers=headers, timeout=60)
        r.raise_for_status()
        body = r.json()
        counts["pages"] += 1
        counts["items"] += len(body["value"])
        url = body.get("@odata.nextLink")


def in_parallel(work, mailboxes):
    counts = [{"batches": 0, "pages": 0, "items": 0} for _ in mailboxes]
    threads = [threading.Thread(target=work, args=(m, c)) for m, c in zip(mailboxes, counts)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    return total, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", action="store_true", help="build and run target/release/exsync-sim")
    ap.add_argument("--contacts", type=int, default=2000, help="contacts per mailbox")
    ap.add_argument("--mailboxes", type=int, default=4, help="mailboxes driven in parallel")
    ap.add_argument("--page-size", type=int, default=100, help="Prefer: odata.maxpagesize for delta")
    args = ap.parse_args()

    if args.release:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "exsync-sim"], cwd=WORKSPACE, check=True)
        os.environ["EXSYNC_BIN_DIR"] = str(WORKSPACE / "target" / "release")
    with tempfile.TemporaryDirectory() as data_dir:
        sim = Sim(Path(data_dir), "--mailboxes", str(args.mailboxes)).start()
        try:
            result = sim.msal_app().acquire_token_for_client(scopes=[GRAPH_SCOPE])
            token = result["access_token"]
            mailboxes = sim.mailboxes[: args.mailboxes]
            for m in mailboxes:
                # Exchange Online's budget (10,000 requests per 10 minutes) would throttle a
                # long run; the bench measures the simulator, not the throttle.
                sim.control("POST", f"/mailboxes/{m}/budget", {"budget": 1_000_000_000, "reset": True})
            sessions = {m: session(sim, token) for m in mailboxes}
            folders = {m: create_folder(sessions[m], sim, m) for m in mailboxes}
            build = "release" if args.release else os.environ.get("EXSYNC_BIN_DIR", "target/debug")
            print(f"exsync-sim graph ({build}), {len(mailboxes)} mailboxes in parallel, one connection each")

            total, elapsed = in_parallel(
                lambda m, c: batch_creates(sessions[m], sim, m, folders[m], args.contacts, c), mailboxes
            )
            print(
                f"$batch creates: {total['items']} contacts in {total['batches']} batches of {BATCH}, "
                f"{elapsed:.2f} s: {total['batches'] / elapsed:.0f} batches/s, {total['items'] / elapsed:.0f} contacts/s"
            )

            total, elapsed = in_parallel(
                lambda m, c: delta_pages(sessions[m], sim, m, folders[m], args.page_size, c), mailboxes
            )
            print(
                f"contacts delta: {total['pages']} pages of up to {args.page_size} ({total['items']} contacts), "
                f"{elapsed:.2f} s: {total['pages'] / elapsed:.0f} pages/s, {total['items'] / elapsed:.0f} contacts/s"
            )
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
