"""Autodiscover (SOAP through exchangelib, POX and the plain-HTTP redirect through requests).

The simulated domain (contoso.test) is not in DNS, so the client side maps its names to the
simulator's loopback port, the way /etc/hosts and a port forward would.
"""

import pytest
import requests
import urllib3.util.connection
from exchangelib import IMPERSONATION, Account
from exchangelib.autodiscover import clear_cache
from exchangelib.autodiscover.discovery import Autodiscovery

POX_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
    "<Request><EMailAddress>{email}</EMailAddress>"
    "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
    "</AcceptableResponseSchema></Request></Autodiscover>"
)


@pytest.fixture
def contoso_dns(monkeypatch):
    """Maps *.contoso.test (any port, 443 included) to the simulator's HTTPS port."""
    target = {}
    real = urllib3.util.connection.create_connection

    def create_connection(address, *args, **kwargs):
        host, port = address
        if host == "contoso.test" or host.endswith(".contoso.test"):
            if port in (443, target["port"]):
                return real(("127.0.0.1", target["port"]), *args, **kwargs)
            return real(("127.0.0.1", port), *args, **kwargs)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    # exchangelib checks that a host has an A record before using it; the names above have none.
    monkeypatch.setattr(Autodiscovery, "_ensure_valid_hostname", lambda self, url: None)
    clear_cache()
    yield target
    clear_cache()


def test_exchangelib_autodiscovers_the_ews_url_and_version(sim_factory, contoso_dns):
    sim = sim_factory("--auth", "basic")
    contoso_dns["port"] = sim.info["port"]
    acc = Account(
        "user1@contoso.test",
        credentials=sim.credentials(),
        autodiscover=True,
        access_type=IMPERSONATION,
    )
    assert acc.protocol.service_endpoint == sim.info["ews_url_by_name"]
    assert acc.version.api_version == "Exchange2016"
    assert acc.contacts.name == "Contacts"
    hosts = sim.counters()["authorization_headers_per_host"]
    assert set(hosts) <= {"contoso.test", "autodiscover.contoso.test", "mail.contoso.test"}
    assert hosts.get("mail.contoso.test", 0) > 0


def test_redirect_address_is_followed_by_exchangelib(sim_factory, contoso_dns):
    sim = sim_factory("--auth", "basic")
    contoso_dns["port"] = sim.info["port"]
    r = sim.control("POST", "/autodiscover", {"mailbox": "user2@contoso.test", "redirect_addr": "user1@contoso.test"})
    assert r.status_code == 200
    acc = Account("user2@contoso.test", credentials=sim.credentials(), autodiscover=True, access_type=IMPERSONATION)
    assert acc.primary_smtp_address == "user1@contoso.test"


def test_pox_settings_and_redirects(sim_factory):
    sim = sim_factory("--auth", "basic", "--http-listen", "127.0.0.1:0")
    sa = sim.info["service_account"]
    url = f"https://127.0.0.1:{sim.info['port']}/autodiscover/autodiscover.xml"

    def pox(email):
        r = requests.post(url, data=POX_REQUEST.format(email=email), auth=(sa["upn"], sa["password"]),
                          verify=sim.ca, timeout=30, headers={"Content-Type": "text/xml"})
        assert r.status_code == 200
        return r.text

    assert f"<EwsUrl>{sim.info['ews_url_by_name']}</EwsUrl>" in pox("user1@contoso.test")
    assert "<ErrorCode>500</ErrorCode>" in pox("nobody@contoso.test")
    sim.control("POST", "/autodiscover", {"mailbox": "user1@contoso.test", "redirect_addr": "user1@fabrikam.example"})
    assert "<RedirectAddr>user1@fabrikam.example</RedirectAddr>" in pox("user1@contoso.test")
    sim.control("POST", "/autodiscover", {"mailbox": "user1@contoso.test",
                                          "redirect_url": "https://autodiscover.fabrikam.example/autodiscover/autodiscover.xml"})
    assert "<Action>redirectUrl</Action>" in pox("user1@contoso.test")

    # Unauthenticated plain-HTTP GET: a 302 to the https endpoint, and nothing else there.
    plain = f"http://127.0.0.1:{sim.info['http_port']}/autodiscover/autodiscover.xml"
    r = requests.get(plain, allow_redirects=False, timeout=30)
    assert r.status_code == 302
    assert r.headers["Location"] == f"https://autodiscover.contoso.test:{sim.info['port']}/autodiscover/autodiscover.xml"
    sim.control("POST", "/autodiscover", {"http_redirect": "https://autodiscover.evil.example/autodiscover/autodiscover.xml"})
    r = requests.get(plain, allow_redirects=False, timeout=30)
    assert r.headers["Location"].startswith("https://autodiscover.evil.example/")
    assert requests.post(plain, data="x", timeout=30).status_code == 404
    # A client that sends credentials over plain HTTP is caught by the counters.
    assert sim.counters()["authorization_headers_plain_http"] == {}
    requests.get(plain, auth=("someone", "secret"), allow_redirects=False, timeout=30)
    assert sim.counters()["authorization_headers_plain_http"] == {"127.0.0.1": 1}


def test_authorization_headers_are_counted_per_host(sim_factory):
    sim = sim_factory("--auth", "basic")
    sa = sim.info["service_account"]
    url = sim.info["ews_url"]
    for host in ("evil.example", "evil.example", "mail.contoso.test"):
        requests.post(url, data="<x/>", auth=(sa["upn"], sa["password"]), verify=sim.ca, timeout=30,
                      headers={"Host": host, "Content-Type": "text/xml"})
    requests.post(url, data="<x/>", verify=sim.ca, timeout=30, headers={"Host": "anon.example"})
    hosts = sim.counters()["authorization_headers_per_host"]
    assert hosts == {"evil.example": 2, "mail.contoso.test": 1}


def test_a_remote_mailbox_is_not_found_over_ews_and_redirects_to_its_routing_address(sim_factory):
    """A mailbox moved to Exchange Online: exchangelib impersonating it gets
    ErrorNonExistentMailbox, and Autodiscover answers with its targetAddress."""
    from exchangelib.errors import ErrorNonExistentMailbox

    sim = sim_factory("--auth", "basic")
    sa = sim.info["service_account"]
    url = f"https://127.0.0.1:{sim.info['port']}/autodiscover/autodiscover.xml"
    target = "user1@contoso.mail.onmicrosoft.com"
    r = sim.control("POST", "/autodiscover", {"mailbox": "user1@contoso.test", "redirect_addr": target, "remote": True})
    assert r.status_code == 200
    with pytest.raises(ErrorNonExistentMailbox):
        sim.account("user1@contoso.test").contacts.refresh()
    pox = requests.post(url, data=POX_REQUEST.format(email="user1@contoso.test"), auth=(sa["upn"], sa["password"]),
                        verify=sim.ca, timeout=30, headers={"Content-Type": "text/xml"})
    assert f"<RedirectAddr>{target}</RedirectAddr>" in pox.text
    # The others are untouched, and the move can be undone.
    assert sim.account("user2@contoso.test").contacts.name == "Contacts"
    sim.control("POST", "/autodiscover", {"mailbox": "user1@contoso.test", "remote": False})
    assert sim.account("user1@contoso.test").contacts.name == "Contacts"
