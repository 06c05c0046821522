#!/usr/bin/env python3
"""Throughput of `exsync-sim exchange`: CreateItem of 100 contacts and SyncFolderItems.

Not a test. Run from the workspace root after building the simulator:
    .venv/bin/python bench/sim_exchange.py [--bin-dir target/debug] [--rounds 3]
It starts the simulator on a temporary directory (port 0), talks Basic over one keep-alive
HTTPS connection (what a sync worker does), and prints requests per second.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

WORKSPACE = Path(__file__).resolve().parents[1]

ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
    '<s:Header><t:RequestServerVersion Version="Exchange2013_SP1"/>'
    "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{mailbox}</t:PrimarySmtpAddress>"
    "</t:ConnectingSID></t:ExchangeImpersonation></s:Header><s:Body>{body}</s:Body></s:Envelope>"
)
CREATE = (
    '<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/></m:SavedItemFolderId>'
    "<m:Items>{items}</m:Items></m:CreateItem>"
)
CONTACT = (
    "<t:Contact><t:GivenName>Given{i}</t:GivenName><t:Surname>Surname{i}</t:Surname>"
    '<t:EmailAddresses><t:Entry Key="EmailAddress1">p{i}@example.com</t:Entry></t:EmailAddresses>'
    "<t:ExtendedProperty><t:ExtendedFieldURI PropertySetId=\"b3a4f1d2-6c1e-4c55-9a4e-0e5f3c2a1b7d\" "
    'PropertyName="CrmId" PropertyType="String"/><t:Value>003{i:012d}</t:Value></t:ExtendedProperty></t:Contact>'
)
SYNC = (
    "<m:SyncFolderItems><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>"
    '<m:SyncFolderId><t:DistinguishedFolderId Id="contacts"/></m:SyncFolderId>{state}'
    "<m:MaxChangesReturned>{max}</m:MaxChangesReturned></m:SyncFolderItems>"
)


def start(bin_dir, data_dir):
    proc = subprocess.Popen(
        [str(Path(bin_dir) / "exsync-sim"), "exchange", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
         "--auth", "basic", "--mailboxes", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    sim_json = Path(data_dir) / "sim.json"
    deadline = time.monotonic() + 30
    while not sim_json.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("simulator did not start")
        time.sleep(0.05)
    return proc, json.loads(sim_json.read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.environ.get("EXSYNC_BIN_DIR", WORKSPACE / "target" / "debug"))
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        proc, info = start(args.bin_dir, d)
        try:
            s = requests.Session()
            sa = info["service_account"]
            s.auth = (sa["upn"], sa["password"])
            # Per request: a session-level verify loses to REQUESTS_CA_BUNDLE in requests.
            ca = info["ca_cert"]
            s.headers["Content-Type"] = "text/xml; charset=utf-8"
            url = info["ews_url"]
            mailbox = "user1@contoso.test"

            def call(body):
                r = s.post(url, data=ENVELOPE.format(mailbox=mailbox, body=body), verify=ca)
                if r.status_code != 200 or 'ResponseClass="Error"' in r.text:
                    raise SystemExit(f"unexpected reply {r.status_code}: {r.text[:300]}")
                return r.text

            call(SYNC.format(state="", max=1))  # warm up TLS + auth
            n = 0
            t = time.perf_counter()
            for _ in range(args.rounds):
                for i in range(100):
                    call(CREATE.format(items=CONTACT.format(i=n)))
                    n += 1
            dt = time.perf_counter() - t
            print(f"CreateItem, 1 contact per request: {args.rounds * 100 / dt:8.1f} requests/s "
                  f"({args.rounds} x 100 contacts, {dt:.2f} s)")

            t = time.perf_counter()
            for _ in range(args.rounds):
                call(CREATE.format(items="".join(CONTACT.format(i=n + i) for i in range(100))))
                n += 100
            dt = time.perf_counter() - t
            print(f"CreateItem, 100 contacts per request: {args.rounds / dt:8.1f} requests/s "
                  f"({args.rounds * 100 / dt:.0f} contacts/s)")

            for page in (10, 100, 512):
                requests_made = 0
                items = 0
                t = time.perf_counter()
                for _ in range(args.rounds):
                    state = ""
                    while True:
                        text = call(SYNC.format(state=state, max=page))
                        requests_made += 1
                        items += text.count("<t:Create>")
                        m = re.search(r"<m:SyncState>([^<]*)</m:SyncState>", text)
                        state = f"<m:SyncState>{m.group(1)}</m:SyncState>"
                        if "<m:IncludesLastItemInRange>true" in text:
                            break
                dt = time.perf_counter() - t
                print(f"SyncFolderItems, MaxChangesReturned={page:3d}: {requests_made / dt:8.1f} requests/s "
                      f"({items / dt:.0f} items/s over {n} contacts)")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
