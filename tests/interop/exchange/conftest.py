"""Fixtures for driving `exsync-sim exchange` with exchangelib.

The simulator binary comes from EXSYNC_BIN_DIR (default <workspace>/target/debug); nothing is
built here. Every simulator a test starts writes a wire trace, and its teardown validates each
EWS reply body against Microsoft's schema (see tests/interop/ews_schema.py), so an invalid reply
fails the test that provoked it.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
import requests.adapters
from exchangelib import BASIC, IMPERSONATION, Account, Configuration, Credentials
from exchangelib.protocol import BaseProtocol, CachingProtocol

import ews_schema

WORKSPACE = Path(__file__).resolve().parents[3]
BIN_DIR = Path(os.environ.get("EXSYNC_BIN_DIR", WORKSPACE / "target" / "debug"))
SIM_BIN = BIN_DIR / "exsync-sim"

# exchangelib builds its own sessions; route their certificate check to the simulator's CA.
_CA_PATH = {"path": None}


class SimCAAdapter(requests.adapters.HTTPAdapter):
    """Verifies TLS against the CA of the simulator under test (never disables checks)."""

    def cert_verify(self, conn, url, verify, cert):
        ca = _CA_PATH["path"]
        return super().cert_verify(conn, url, ca if ca else verify, cert)


BaseProtocol.HTTP_ADAPTER_CLS = SimCAAdapter


class Sim:
    def __init__(self, proc, data_dir, trace_dir, info):
        self.proc = proc
        self.data_dir = data_dir
        self.trace_dir = trace_dir
        self.info = info

    @property
    def ca(self):
        return self.info["ca_cert"]

    def control(self, method, route, body=None):
        r = requests.request(
            method,
            self.info["control_url"] + route,
            json=body,
            headers={"Authorization": "Bearer " + self.info["control_token"]},
            verify=self.ca,
            timeout=30,
        )
        return r

    def counters(self):
        r = self.control("GET", "/counters")
        r.raise_for_status()
        return r.json()

    def credentials(self):
        sa = self.info["service_account"]
        return Credentials(sa["username"], sa["password"])

    def account(self, address, auth_type=BASIC, access_type=IMPERSONATION):
        config = Configuration(
            service_endpoint=self.info["ews_url"],
            credentials=self.credentials(),
            auth_type=auth_type,
        )
        return Account(address, config=config, autodiscover=False, access_type=access_type)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_sim(data_dir, trace_dir, *extra):
    if not SIM_BIN.exists():
        pytest.fail(f"{SIM_BIN} is missing: build it first (cargo build -p exsync-sim) or set EXSYNC_BIN_DIR")
    data_dir.mkdir(parents=True, exist_ok=True)
    trace_dir.mkdir(parents=True, exist_ok=True)
    sim_json = data_dir / "sim.json"
    if sim_json.exists():
        sim_json.unlink()
    log = open(data_dir / "sim.log", "ab")
    proc = subprocess.Popen(
        [str(SIM_BIN), "exchange", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
         "--trace-dir", str(trace_dir), *extra],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while not sim_json.exists():
        if proc.poll() is not None:
            pytest.fail(f"simulator exited with {proc.returncode}: {(data_dir / 'sim.log').read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("simulator did not write sim.json within 30 s")
        time.sleep(0.05)
    info = json.loads(sim_json.read_text())
    _CA_PATH["path"] = info["ca_cert"]
    # Protocol objects are cached per endpoint and credentials; start each simulator clean.
    CachingProtocol.clear_cache()
    return Sim(proc, data_dir, trace_dir, info)


@pytest.fixture
def sim_factory(tmp_path):
    sims = []

    def make(*extra, data_dir=None):
        d = data_dir or tmp_path / f"sim{len(sims)}"
        s = start_sim(d, tmp_path / f"trace{len(sims)}", *extra)
        sims.append(s)
        return s

    yield make
    for s in sims:
        s.stop()
    if not ews_schema.available():
        if ews_schema.required():
            pytest.fail(ews_schema.missing_message())
        return
    problems = []
    for s in sims:
        _, errs = ews_schema.validate_trace_dir(s.trace_dir)
        problems.extend(errs)
    assert not problems, "simulator replies that fail the EWS schema:\n" + "\n".join(problems[:20])


@pytest.fixture
def sim(sim_factory):
    return sim_factory("--auth", "basic,ntlm")
