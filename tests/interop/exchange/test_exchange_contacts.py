"""exchangelib against the simulator: impersonation, folders, contacts, sync, extended properties."""

import pytest
from exchangelib import ExtendedProperty
from exchangelib.errors import (
    ErrorFolderExists,
    ErrorImpersonateUserDenied,
    ErrorIrresolvableConflict,
    ErrorNonExistentMailbox,
)
from exchangelib.folders import Contacts
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.items import Contact

FOLDER = "Salesforce_Sync"


def sync_folder(account):
    f = Contacts(parent=account.contacts, name=FOLDER)
    f.save()
    return f


def contact(folder, given, surname, email=None):
    return Contact(
        folder=folder,
        given_name=given,
        surname=surname,
        display_name=f"{given} {surname}",
        company_name="Contoso",
        email_addresses=[EmailAddress(label="EmailAddress1", email=email)] if email else None,
    )


def test_impersonates_two_mailboxes_separately(sim):
    a = sim.account("user1@contoso.test")
    b = sim.account("user2@contoso.test")
    fa, fb = sync_folder(a), sync_folder(b)
    contact(fa, "Ada", "Lovelace", "ada@example.com").save()
    contact(fb, "Alan", "Turing").save()
    contact(fb, "Grace", "Hopper").save()
    assert sorted(c.surname for c in fa.all()) == ["Lovelace"]
    assert sorted(c.surname for c in fb.all()) == ["Hopper", "Turing"]
    # The folder exists once per mailbox; a second create in the same parent is refused.
    with pytest.raises(ErrorFolderExists):
        Contacts(parent=a.contacts, name=FOLDER).save()
    per_mailbox = sim.counters()["requests_per_mailbox"]
    assert per_mailbox["user1@contoso.test"] > 0 and per_mailbox["user2@contoso.test"] > 0


def test_contacts_create_list_update_delete(sim):
    acc = sim.account("user1@contoso.test")
    f = sync_folder(acc)
    c1 = contact(f, "Ada", "Lovelace", "ada@example.com")
    c1.phone_numbers = [PhoneNumber(label="BusinessPhone", phone_number="+44 20 7946 0000")]
    c1.physical_addresses = [PhysicalAddress(label="Business", street="1 Analytical Way", city="London")]
    c1.save()
    c2 = contact(f, "Alan", "Turing", "alan@example.com")
    c2.save()
    listed = {c.surname: c for c in f.all()}
    assert set(listed) == {"Lovelace", "Turing"}
    got = listed["Lovelace"]
    assert got.given_name == "Ada"
    assert got.company_name == "Contoso"
    assert [e.email for e in got.email_addresses] == ["ada@example.com"]
    assert got.phone_numbers[0].phone_number == "+44 20 7946 0000"
    assert got.physical_addresses[0].city == "London"

    old_key = got.changekey
    got.given_name = "Augusta Ada"
    got.email_addresses = [EmailAddress(label="EmailAddress1", email="countess@example.com")]
    got.save(update_fields=["given_name", "email_addresses"])
    assert got.changekey != old_key
    fresh = f.get(id=got.id)
    assert fresh.given_name == "Augusta Ada"
    assert [e.email for e in fresh.email_addresses] == ["countess@example.com"]
    assert fresh.changekey == got.changekey

    assert [c.surname for c in f.filter(surname="Turing")] == ["Turing"]
    c2.delete()
    assert [c.surname for c in f.all()] == ["Lovelace"]


def test_stale_change_key_conflicts_under_never_overwrite(sim):
    acc = sim.account("user1@contoso.test")
    f = sync_folder(acc)
    c = contact(f, "Ada", "Lovelace")
    c.save()
    stale = f.get(id=c.id)
    c.company_name = "Analytical Engines"
    c.save(update_fields=["company_name"])
    stale.company_name = "Difference Engines"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["company_name"], conflict_resolution="NeverOverwrite")
    # AlwaysOverwrite wins regardless of the stale key.
    stale.save(update_fields=["company_name"], conflict_resolution="AlwaysOverwrite")
    assert f.get(id=c.id).company_name == "Difference Engines"


def test_sync_items_reports_creates_updates_and_deletes(sim):
    acc = sim.account("user2@contoso.test")
    f = sync_folder(acc)
    first = [contact(f, "P", f"Person{i}") for i in range(5)]
    for c in first:
        c.save()
    changes = list(f.sync_items(max_changes_returned=2))
    assert [kind for kind, _ in changes] == ["create"] * 5
    assert f.item_sync_state
    assert list(f.sync_items()) == []

    first[0].given_name = "Q"
    first[0].save(update_fields=["given_name"])
    deleted_id = first[1].id
    first[1].delete()
    new = contact(f, "New", "Person")
    new.save()
    changes = list(f.sync_items())
    kinds = sorted(kind for kind, _ in changes)
    assert kinds == ["create", "delete", "update"]
    by_kind = {kind: x for kind, x in changes}
    assert by_kind["update"].given_name == "Q"
    assert by_kind["create"].surname == "Person"
    assert by_kind["delete"].id == deleted_id


class CrmId(ExtendedProperty):
    property_set_id = "b3a4f1d2-6c1e-4c55-9a4e-0e5f3c2a1b7d"
    property_name = "CrmId"
    property_type = "String"


@pytest.fixture
def crm_id_field():
    Contact.register("crm_id", CrmId)
    yield
    Contact.deregister("crm_id")


def test_extended_property_round_trip_and_restriction(sim, crm_id_field):
    acc = sim.account("user1@contoso.test")
    f = sync_folder(acc)
    c = contact(f, "Ada", "Lovelace")
    c.crm_id = "0035g00000AbCdE"
    c.save()
    contact(f, "Alan", "Turing").save()
    found = list(f.filter(crm_id="0035g00000AbCdE"))
    assert [x.surname for x in found] == ["Lovelace"]
    assert found[0].crm_id == "0035g00000AbCdE"
    found[0].crm_id = "0035g00000ZZZZZ"
    found[0].save(update_fields=["crm_id"])
    assert list(f.filter(crm_id="0035g00000AbCdE")) == []
    assert f.get(id=c.id).crm_id == "0035g00000ZZZZZ"


def test_impersonation_denied_and_unknown_mailbox(sim):
    denied = sim.account("user3@contoso.test")
    with pytest.raises(ErrorImpersonateUserDenied):
        denied.contacts.refresh()
    unknown = sim.account("nobody@contoso.test")
    with pytest.raises(ErrorNonExistentMailbox):
        unknown.contacts.refresh()
    # Granting the right through the control API takes effect at once.
    r = sim.control("POST", "/impersonation", {"mailbox": "user3@contoso.test", "allowed": True})
    assert r.status_code == 200
    assert sim.account("user3@contoso.test").contacts.name == "Contacts"


def test_auto_resolve_merges_disjoint_changes_and_refuses_overlapping_ones(sim):
    acc = sim.account("user2@contoso.test")
    f = sync_folder(acc)
    c = contact(f, "Ada", "Lovelace")
    c.save()
    stale = f.get(id=c.id)
    c.company_name = "Analytical Engines"
    c.save(update_fields=["company_name"])
    # A stale key touching another property is merged...
    stale.job_title = "Countess"
    stale.save(update_fields=["job_title"], conflict_resolution="AutoResolve")
    merged = f.get(id=c.id)
    assert (merged.company_name, merged.job_title) == ("Analytical Engines", "Countess")
    # ...but one touching the property that changed is a conflict.
    stale2 = f.get(id=c.id)
    merged.company_name = "Difference Engines"
    merged.save(update_fields=["company_name"])
    stale2.company_name = "Something Else"
    with pytest.raises(ErrorIrresolvableConflict):
        stale2.save(update_fields=["company_name"], conflict_resolution="AutoResolve")
