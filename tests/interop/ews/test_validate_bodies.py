"""The schema validator the Rust tests rely on accepts a valid EWS request and rejects an
invalid one (so a passing Rust schema test means something)."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "validate_bodies.py")

ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" '
    'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">'
    '<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/>'
    "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>ann@contoso.test"
    "</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation></soap:Header>"
    "<soap:Body>{body}</soap:Body></soap:Envelope>"
)

SYNC = (
    "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
    '<m:SyncFolderId><t:FolderId Id="AAMk"/></m:SyncFolderId>'
    "<m:MaxChangesReturned>{n}</m:MaxChangesReturned></m:SyncFolderItems>"
)


def run(tmp_path, body):
    (tmp_path / "000000-SyncFolderItems.xml").write_text(ENVELOPE.format(body=body))
    # Responses are not validated by this script.
    (tmp_path / "000000-SyncFolderItems.response.xml").write_text("<not-checked/>")
    return subprocess.run([sys.executable, SCRIPT, str(tmp_path)], capture_output=True, text=True)


def test_accepts_a_valid_request(tmp_path):
    result = run(tmp_path, SYNC.format(n=512))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked 3 elements, 0 invalid" in result.stdout


def test_rejects_an_invalid_request(tmp_path):
    result = run(tmp_path, SYNC.format(n=513))
    assert result.returncode == 1
    assert "MaxChangesReturned" in result.stdout
