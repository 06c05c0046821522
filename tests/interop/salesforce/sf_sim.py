"""The built `exsync-sim salesforce` run on a free port in a temporary directory (a module of
its own, so its name cannot collide with another folder's conftest in one pytest run).

The binary comes from $EXSYNC_BIN_DIR (default <workspace>/target/debug); nothing is built
here. TLS is verified against the simulator's own CA (never disabled).
"""

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest
import requests
from simple_salesforce import Salesforce

WORKSPACE = pathlib.Path(__file__).resolve().parents[3]


def _binary() -> pathlib.Path:
    bin_dir = pathlib.Path(os.environ.get("EXSYNC_BIN_DIR", WORKSPACE / "target" / "debug"))
    path = bin_dir / "exsync-sim"
    if not path.exists():
        pytest.fail(f"{path} not found: build it first (cargo build -p exsync-sim) or set EXSYNC_BIN_DIR")
    return path


class Sim:
    """A running simulator and what sim.json says about it."""

    def __init__(self, data_dir: pathlib.Path):
        self.data_dir = data_dir
        self.proc = None
        self.info = {}

    def start(self):
        sim_json = self.data_dir / "sim.json"
        if sim_json.exists():
            sim_json.unlink()
        log = open(self.data_dir / "sim.log", "ab")
        self.proc = subprocess.Popen(
            [str(_binary()), "salesforce", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
            stdout=log,
            stderr=log,
        )
        deadline = time.time() + 120  # an unoptimised build generates its RSA key slowly
        while not sim_json.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {self.proc.returncode}: {(self.data_dir / 'sim.log').read_text()}")
            if time.time() > deadline:
                raise RuntimeError("simulator did not write sim.json in time")
            time.sleep(0.1)
        self.info = json.loads(sim_json.read_text())
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def host_port(self) -> str:
        return self.info["instance_url"].removeprefix("https://")

    @property
    def domain(self) -> str:
        # simple-salesforce builds https://{domain}.salesforce.com/services/oauth2/token; with
        # this domain that is https://HOST:PORT/login.salesforce.com/services/oauth2/token,
        # which the simulator serves (any path ending in /services/oauth2/token), and the
        # assertion's aud https://HOST:PORT/login.salesforce.com is one it accepts.
        return f"{self.host_port}/login"

    def session(self) -> requests.Session:
        s = requests.Session()
        s.verify = self.info["ca_file"]
        # Otherwise REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment would replace
        # the simulator's CA for every request made through this session.
        s.trust_env = False
        return s

    def control(self, method: str, path: str, body=None):
        r = requests.request(
            method,
            self.info["control_url"] + path,
            json=body,
            headers={"Authorization": "Bearer " + self.info["control_token"]},
            verify=self.info["ca_file"],
            timeout=30,
        )
        r.raise_for_status()
        return r.json()

    def login(self, username=None) -> Salesforce:
        return Salesforce(
            username=username or self.info["integration_user"]["username"],
            consumer_key=self.info["client_id"],
            privatekey_file=self.info["private_key_file"],
            domain=self.domain,
            session=self.session(),
            version=self.info["api_version"],
        )
