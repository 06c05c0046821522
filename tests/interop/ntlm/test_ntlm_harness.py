"""Checks the NTLM test harness itself with a known-good client (requests-ntlm on pyspnego).

The Rust tests trust ntlm_server.py to be a strict Extended Protection acceptor: a 200 for our
initiator only means something if a correct client gets 200 and a wrong one 401 from it too.
"""

import os
import subprocess
import sys

import pytest
import requests
from requests_ntlm import HttpNtlmAuth

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture()
def server(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "ntlm_server.py"), str(tmp_path), "CONTOSO", "svc-sync", "Passw0rd!"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("PORT "), line
        yield f"https://localhost:{line.split()[1]}/EWS/Exchange.asmx", str(tmp_path / "server.pem")
    finally:
        proc.kill()
        proc.wait()


def test_requests_ntlm_with_channel_binding_gets_200(server):
    url, ca = server
    with requests.Session() as session:
        response = session.post(url, auth=HttpNtlmAuth("CONTOSO\\svc-sync", "Passw0rd!"), verify=ca)
    assert response.status_code == 200, response.text
    assert response.text == "hello CONTOSO\\svc-sync"


def test_wrong_password_gets_401(server):
    url, ca = server
    with requests.Session() as session:
        response = session.post(url, auth=HttpNtlmAuth("CONTOSO\\svc-sync", "wrong"), verify=ca)
    assert response.status_code == 401


def test_without_credentials_the_server_offers_ntlm(server):
    url, ca = server
    response = requests.post(url, verify=ca)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "NTLM"
