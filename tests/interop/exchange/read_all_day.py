"""Reads one calendar item through exchangelib and prints what exchangelib makes of it, as
JSON: whether it is all-day, its first and last day, and the zone those days are in.

Run by `crates/exsync-ews/tests/all_day_exchangelib.rs` on an all-day event exsync's EWS
client wrote, so a client nobody here wrote judges what exsync sends:
    read_all_day.py EWS_URL CA_FILE USERNAME PASSWORD MAILBOX SUBJECT
"""

import json
import sys

import requests.adapters
from exchangelib import BASIC, IMPERSONATION, Account, Configuration, Credentials
from exchangelib.protocol import BaseProtocol


def main(ews_url, ca_file, username, password, mailbox, subject):
    class SimCA(requests.adapters.HTTPAdapter):
        """Verifies TLS against the simulator's CA (never disables checks)."""

        def cert_verify(self, conn, url, verify, cert):
            return super().cert_verify(conn, url, ca_file, cert)

    BaseProtocol.HTTP_ADAPTER_CLS = SimCA
    config = Configuration(
        service_endpoint=ews_url, credentials=Credentials(username, password), auth_type=BASIC
    )
    account = Account(mailbox, config=config, autodiscover=False, access_type=IMPERSONATION)
    item = account.calendar.get(subject=subject)
    zone = item._start_timezone
    print(
        json.dumps(
            {
                "is_all_day": item.is_all_day,
                # exchangelib gives an all-day item's days in its own zone, the end as the
                # last day it covers.
                "first_day": item.start.isoformat(),
                "last_day": item.end.isoformat(),
                "zone": zone.key if zone is not None else None,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:7])
