"""The request validator the Rust tests rely on accepts a valid EWS request and rejects an
invalid one (so a passing Rust schema test means something)."""

import subprocess
import sys
from pathlib import Path

from ews_schema import need_schema

SCRIPT = Path(__file__).resolve().parents[1] / "ews_schema.py"

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
    # Responses are not validated in this mode.
    (tmp_path / "000000-SyncFolderItems.response.xml").write_text("<not-checked/>")
    return subprocess.run(
        [sys.executable, str(SCRIPT), "requests", str(tmp_path)], capture_output=True, text=True
    )


def test_accepts_a_valid_request(tmp_path):
    need_schema()
    result = run(tmp_path, SYNC.format(n=512))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked 1 envelopes, 0 problems" in result.stdout


def test_rejects_an_invalid_request(tmp_path):
    need_schema()
    result = run(tmp_path, SYNC.format(n=513))
    assert result.returncode == 1
    assert "MaxChangesReturned" in result.stdout


def test_an_empty_folder_is_a_failure_not_a_pass(tmp_path):
    need_schema()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "requests", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "checked 0 envelopes" in result.stdout


def test_a_missing_schema_is_reported_as_skipped(tmp_path):
    env = {"EXSYNC_EWS_SCHEMA": str(tmp_path / "nowhere"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "requests", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 3
    assert result.stdout.startswith("SKIPPED: EWS schema not found")
