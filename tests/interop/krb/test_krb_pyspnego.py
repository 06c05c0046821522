"""pyspnego, an independent SPNEGO implementation (on MIT's GSSAPI through python-gssapi), as the
client of `exsync-sim exchange --auth negotiate`: tickets from a throwaway MIT KDC
(`exsync-sim kdc`) for a keytab and for a password, a real EWS request answered, the server's
mutual-authentication token checked, and under Extended Protection the TLS channel binding
required. What it proves: the simulator's Negotiate is the one a real client speaks, so exsync's
client tests against the simulator stand for a real Exchange.
"""

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

WORKSPACE = Path(__file__).resolve().parents[3]
BIN_DIR = Path(os.environ.get("EXSYNC_BIN_DIR", WORKSPACE / "target" / "debug"))
SIM_BIN = BIN_DIR / "exsync-sim"
MAIL_HOST = "mail.contoso.test"
# One reply is a few kilobytes; anything far larger is a broken server.
MAX_REPLY = 1 << 20

try:
    import gssapi  # noqa: F401  (pyspnego's Kerberos needs it)
    import krb5  # pyspnego logs in with a password or a keytab through it
    import spnego
    from spnego.channel_bindings import GssChannelBindings
except ImportError as e:  # pragma: no cover - the reason is reported below
    IMPORT_ERROR = e
else:
    IMPORT_ERROR = None


def _skip_or_fail(reason):
    if os.environ.get("EXSYNC_REQUIRE_KERBEROS") == "1":
        pytest.fail(f"Kerberos is required (EXSYNC_REQUIRE_KERBEROS=1): {reason}")
    pytest.skip(reason)


class Process:
    """A simulator process (`exsync-sim <kind>`) and its sim.json."""

    def __init__(self, data_dir, *args):
        if not SIM_BIN.exists():
            pytest.fail(f"{SIM_BIN} is missing: build it (cargo build -p exsync-sim) or set EXSYNC_BIN_DIR")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "process.log"
        sim_json = data_dir / "sim.json"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(SIM_BIN), *args, "--data-dir", str(data_dir)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while not sim_json.exists():
            if self.proc.poll() is not None:
                self.info = None
                return
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{args[0]} did not write sim.json within 30 s: {self.log()}")
            time.sleep(0.05)
        self.info = json.loads(sim_json.read_text())

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    if IMPORT_ERROR is not None:
        _skip_or_fail(f"pyspnego's Kerberos is unavailable ({IMPORT_ERROR}); pip install -r tests/interop/requirements.txt")
    p = Process(tmp_path_factory.mktemp("kdc"), "kdc", "--service-host", MAIL_HOST)
    if p.info is None:
        reason = p.log().strip()
        if "not installed" in reason:
            _skip_or_fail(reason)
        pytest.fail(f"exsync-sim kdc failed: {reason}")
    # MIT's library reads these when pyspnego first creates a context; one KDC for the module,
    # and the environment as it was for the tests after it.
    saved = {k: os.environ.get(k) for k in ("KRB5_CONFIG", "KRB5CCNAME")}
    os.environ["KRB5_CONFIG"] = p.info["krb5_conf"]
    os.environ["KRB5CCNAME"] = "MEMORY:exsync-interop"
    yield p.info
    p.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def exchange(kdc, tmp_path_factory):
    started = []

    def start(*extra):
        p = Process(
            tmp_path_factory.mktemp("exchange"),
            "exchange", "--listen", "127.0.0.1:0", "--auth", "negotiate",
            "--keytab", kdc["service_keytab"], *extra,
        )
        if p.info is None:
            pytest.fail(f"exsync-sim exchange failed: {p.log()}")
        started.append(p)
        return p.info

    yield start
    for p in started:
        p.stop()


def get_calendar_body(mailbox):
    return f"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
    xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header>
    <t:RequestServerVersion Version="Exchange2016"/>
    <t:ExchangeImpersonation><t:ConnectingSID>
      <t:PrimarySmtpAddress>{mailbox}</t:PrimarySmtpAddress>
    </t:ConnectingSID></t:ExchangeImpersonation>
  </soap:Header>
  <soap:Body>
    <m:GetFolder>
      <m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>
      <m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds>
    </m:GetFolder>
  </soap:Body>
</soap:Envelope>""".encode()


def negotiate_token(value):
    scheme, _, token = (value or "").partition(" ")
    return base64.b64decode(token) if scheme.lower() == "negotiate" and token else None


def ews_request(sim, credential, *, bind_channel):
    """One GetFolder over a TLS connection to the simulator by its mail host name, authenticated
    by pyspnego; returns (status, body, whether the server proved itself)."""
    ctx = ssl.create_default_context(cafile=sim["ca_cert"])
    raw = socket.create_connection(("127.0.0.1", sim["port"]), timeout=30)
    tls = ctx.wrap_socket(raw, server_hostname=MAIL_HOST)
    bindings = None
    if bind_channel:
        # tls-server-end-point (RFC 5929): the SHA-256 of the server's certificate.
        cert = tls.getpeercert(binary_form=True)
        bindings = GssChannelBindings(
            application_data=b"tls-server-end-point:" + hashlib.sha256(cert).digest()
        )
    client = spnego.client(
        credential, hostname=MAIL_HOST, service="HTTP", channel_bindings=bindings,
        protocol="negotiate",
    )
    token = client.step()
    conn = http.client.HTTPSConnection(MAIL_HOST, sim["port"], context=ctx, timeout=30)
    conn.sock = tls
    try:
        conn.request(
            "POST", "/EWS/Exchange.asmx", body=get_calendar_body(sim["impersonation_allowed"][0]),
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "Authorization": "Negotiate " + base64.b64encode(token).decode(),
            },
        )
        reply = conn.getresponse()
        body = reply.read(MAX_REPLY + 1)
        assert len(body) <= MAX_REPLY, "the reply is larger than any GetFolder answer"
        proof = negotiate_token(reply.getheader("WWW-Authenticate"))
    finally:
        conn.close()
    proved = False
    if reply.status == 200 and proof is not None:
        client.step(proof)
        proved = client.complete
    return reply.status, body.decode("utf-8", "replace"), proved


def assert_calendar(status, body, proved):
    assert status == 200, body
    assert 'ResponseClass="Success"' in body, body
    assert "CalendarFolder" in body, body
    assert proved, "the server's mutual-authentication token was missing or did not verify"


def test_pyspnego_with_a_keytab_reads_a_calendar(kdc, exchange):
    sim = exchange()
    keytab = spnego.KerberosKeytab(keytab=kdc["client_keytab"], principal=kdc["user_principal"])
    assert_calendar(*ews_request(sim, keytab, bind_channel=False))


def test_pyspnego_with_a_password_reads_a_calendar(kdc, exchange):
    sim = exchange()
    password = spnego.Password(username=kdc["user_principal"], password=kdc["password"])
    assert_calendar(*ews_request(sim, password, bind_channel=False))


def test_a_wrong_password_gets_no_ticket(kdc, exchange):
    exchange()
    wrong = spnego.Password(username=kdc["user_principal"], password="not-" + kdc["password"])
    # Kerberos alone: under Negotiate, pyspnego would fall back to NTLM with a password.
    # The KDC refuses the pre-authentication (MIT: "Decrypt integrity check failed").
    refused = (spnego.exceptions.SpnegoError, krb5.Krb5Error)
    with pytest.raises(refused, match="(?i)integrity|pre-?auth|password"):
        spnego.client(wrong, hostname=MAIL_HOST, service="HTTP", protocol="kerberos").step()


def test_extended_protection_takes_the_channel_binding_and_refuses_its_absence(kdc, exchange):
    sim = exchange("--extended-protection")
    keytab = spnego.KerberosKeytab(keytab=kdc["client_keytab"], principal=kdc["user_principal"])
    assert_calendar(*ews_request(sim, keytab, bind_channel=True))
    status, body, _ = ews_request(sim, keytab, bind_channel=False)
    assert status == 401, body
