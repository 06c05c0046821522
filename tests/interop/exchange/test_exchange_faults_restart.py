"""Injected faults, throttling, and state surviving a restart of the simulator."""

import concurrent.futures
import time

import lxml.etree
import pytest
import requests
from exchangelib import BASIC, IMPERSONATION, Account, Configuration, FaultTolerance
from exchangelib.errors import ErrorInternalServerError, ErrorServerBusy, ErrorTimeoutExpired
from exchangelib.folders import Contacts
from exchangelib.protocol import CachingProtocol
from exchangelib.items import Contact

RESOLVE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
    '<s:Header><t:RequestServerVersion Version="Exchange2013_SP1"/>'
    "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>user1@contoso.test</t:PrimarySmtpAddress>"
    "</t:ConnectingSID></t:ExchangeImpersonation></s:Header>"
    '<s:Body><m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>'
    '<m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:GetFolder></s:Body></s:Envelope>'
)


def raw(sim):
    sa = sim.info["service_account"]
    return requests.post(sim.info["ews_url"], data=RESOLVE, auth=(sa["upn"], sa["password"]), verify=sim.ca,
                         timeout=30, headers={"Content-Type": "text/xml; charset=utf-8"})


def tolerant_account(sim, address):
    config = Configuration(
        service_endpoint=sim.info["ews_url"],
        credentials=sim.credentials(),
        auth_type=BASIC,
        retry_policy=FaultTolerance(max_wait=30),
    )
    return Account(address, config=config, autodiscover=False, access_type=IMPERSONATION)


def test_server_busy_503_and_dropped_connection_are_retried_by_exchangelib(sim):
    acc = tolerant_account(sim, "user1@contoso.test")
    assert acc.contacts.name == "Contacts"
    for fault in (
        {"server_busy": {"count": 1, "value": 200}},
        {"http_503": {"count": 1, "value": 1}},
    ):
        assert sim.control("PUT", "/faults", dict(fault, operations=["GetFolder"])).status_code == 200
        before = sim.counters()["faults_injected"]
        acc.contacts.refresh()
        assert sim.counters()["faults_injected"] == before + 1, fault
    # A dropped connection surfaces in exchangelib as a timeout; the next request is served.
    sim.control("PUT", "/faults", {"drop_connection": {"count": 1}})
    with pytest.raises((ErrorTimeoutExpired, requests.exceptions.ConnectionError)):
        acc.contacts.refresh()
    acc.contacts.refresh()
    # Without retries the client sees the error and its back-off hint.
    sim.control("PUT", "/faults", {"server_busy": {"count": 1, "value": 297749}, "operations": ["GetFolder"]})
    CachingProtocol.clear_cache()  # the tolerant policy above is cached with the protocol
    with pytest.raises(ErrorServerBusy) as e:
        sim.account("user1@contoso.test").contacts.refresh()
    assert e.value.back_off == pytest.approx(297.749)


def test_error_rate_malformed_reply_and_latency(sim):
    sim.control("PUT", "/faults", {"error_rate": {"GetFolder": 1.0}})
    with pytest.raises(ErrorInternalServerError):
        sim.account("user1@contoso.test").contacts.refresh()
    sim.control("PUT", "/faults", {"malformed_reply": {"count": 1}})
    r = raw(sim)
    assert r.status_code == 200
    with pytest.raises(Exception):
        lxml.etree.fromstring(r.content)
    assert raw(sim).status_code == 200 and b"NoError" in raw(sim).content
    sim.control("PUT", "/faults", {"latency_ms": 400})
    t = time.monotonic()
    raw(sim)
    assert time.monotonic() - t >= 0.4
    assert sim.control("DELETE", "/faults").json()["latency_ms"] == 0
    assert sim.control("PUT", "/faults", {"nonsense": 1}).status_code == 400


def test_concurrency_budget_answers_server_busy(sim):
    assert sim.control("PUT", "/throttle", {"max_concurrency": 2, "back_off_ms": 750}).status_code == 200
    sim.control("PUT", "/faults", {"latency_ms": 500})
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: raw(sim), range(6)))
    busy = [r for r in replies if r.status_code == 500]
    ok = [r for r in replies if r.status_code == 200]
    assert len(ok) >= 1 and len(busy) >= 1
    for r in busy:
        assert b"ErrorServerBusy" in r.content
        assert b'<t:Value Name="BackOffMilliseconds">750</t:Value>' in r.content
    assert sim.counters()["throttled"] == len(busy)


def test_state_survives_restart(sim_factory, tmp_path):
    data = tmp_path / "persist"
    first = sim_factory("--auth", "basic", data_dir=data)
    acc = first.account("user1@contoso.test")
    f = Contacts(parent=acc.contacts, name="Salesforce_Sync")
    f.save()
    c = Contact(folder=f, given_name="Ada", surname="Lovelace", display_name="Ada Lovelace")
    c.save()
    list(f.sync_items())
    state = f.item_sync_state
    ca = (data / "ca.pem").read_text()
    first.stop()

    second = sim_factory("--auth", "basic", data_dir=data)
    assert (data / "ca.pem").read_text() == ca
    assert second.info["service_account"] == first.info["service_account"]
    acc2 = second.account("user1@contoso.test")
    f2 = acc2.contacts / "Salesforce_Sync"
    got = f2.get(id=c.id)
    assert (got.given_name, got.changekey) == ("Ada", c.changekey)
    f2.item_sync_state = state
    assert list(f2.sync_items()) == []
    got.delete()
    assert [kind for kind, _ in f2.sync_items()] == ["delete"]
