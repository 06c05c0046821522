"""Basic and NTLM (with and without Extended Protection) against the simulator."""

import pytest
import requests
from exchangelib import BASIC, NTLM, Account, Configuration, Credentials, IMPERSONATION
from exchangelib.errors import UnauthorizedError
from exchangelib.folders import Contacts
from exchangelib.items import Contact
from requests_ntlm import HttpNtlmAuth

CONVERT_ID = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
    '<s:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></s:Header>'
    '<s:Body><m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>user1</m:UnresolvedEntry>'
    "</m:ResolveNames></s:Body></s:Envelope>"
)


def post(sim, auth, **kw):
    with requests.Session() as s:
        return s.post(
            sim.info["ews_url"],
            data=CONVERT_ID,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            auth=auth,
            verify=sim.ca,
            timeout=30,
            **kw,
        )


def test_unauthenticated_request_gets_401_with_offered_schemes(sim_factory):
    sim = sim_factory("--auth", "basic,ntlm")
    r = post(sim, None)
    assert r.status_code == 401
    offered = r.raw.headers.getlist("WWW-Authenticate")
    assert "NTLM" in offered
    assert any(v.startswith("Basic realm=") for v in offered)
    sa = sim.info["service_account"]
    assert post(sim, (sa["upn"], "wrong-password")).status_code == 401
    ok = post(sim, (sa["upn"], sa["password"]))
    assert ok.status_code == 200
    assert b"user1@contoso.test" in ok.content


def test_exchangelib_sniffs_basic_and_rejects_bad_password(sim_factory):
    sim = sim_factory("--auth", "basic")
    sa = sim.info["service_account"]
    config = Configuration(service_endpoint=sim.info["ews_url"], credentials=Credentials(sa["username"], sa["password"]))
    acc = Account("user1@contoso.test", config=config, autodiscover=False, access_type=IMPERSONATION)
    assert acc.protocol.auth_type == BASIC
    assert acc.contacts.name == "Contacts"
    bad = Configuration(
        service_endpoint=sim.info["ews_url"],
        credentials=Credentials(sa["username"], "not-the-password"),
        auth_type=BASIC,
    )
    with pytest.raises(UnauthorizedError):
        Account("user1@contoso.test", config=bad, autodiscover=False, access_type=IMPERSONATION).contacts.refresh()


@pytest.mark.parametrize("extended_protection", [False, True])
def test_exchangelib_over_ntlm(sim_factory, extended_protection):
    extra = ["--auth", "ntlm"] + (["--extended-protection"] if extended_protection else [])
    sim = sim_factory(*extra)
    acc = sim.account("user1@contoso.test", auth_type=NTLM)
    assert acc.contacts.name == "Contacts"
    # A real mailbox keeps system folders under Contacts, hidden ones among them.
    system = {(f.name, f.folder_class) for f in acc.contacts.children}
    assert system == {
        ("Recipient Cache", "IPF.Contact.RecipientCache"),
        ("PeopleCentricConversation Buddies", "IPF.Contact.MOC.QuickContacts"),
        ("Companies", "IPF.Contact.Company"),
        ("Organizational Contacts", "IPF.Contact.OrganizationalContacts"),
        ("GAL Contacts", "IPF.Contact.GalContacts"),
    }
    folder = Contacts(parent=acc.contacts, name="Salesforce_Sync")
    folder.save()
    Contact(folder=folder, given_name="Ada", surname="Lovelace", display_name="Ada Lovelace").save()
    assert [c.surname for c in folder.all()] == ["Lovelace"]
    assert [kind for kind, _ in folder.sync_items()] == ["create"]
    # One handshake per connection: far fewer 401s than requests.
    status = sim.counters()["http_status"]
    assert status["200"] > status.get("401", 0)


def test_extended_protection_refuses_ntlm_without_channel_binding(sim_factory):
    sim = sim_factory("--auth", "ntlm", "--extended-protection")
    sa = sim.info["service_account"]
    assert post(sim, HttpNtlmAuth(sa["username"], sa["password"], send_cbt=False)).status_code == 401
    assert post(sim, HttpNtlmAuth(sa["username"], sa["password"], send_cbt=True)).status_code == 200
    assert post(sim, HttpNtlmAuth(sa["username"], "wrong", send_cbt=True)).status_code == 401
