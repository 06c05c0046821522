"""Paging, hierarchy sync and the helper operations exchangelib uses."""

from exchangelib.folders import Contacts
from exchangelib.items import Contact


def test_find_item_pages_beyond_one_page_and_bulk_create(sim):
    acc = sim.account("user1@contoso.test")
    f = Contacts(parent=acc.contacts, name="Salesforce_Sync")
    f.save()
    items = [Contact(folder=f, given_name="P", surname=f"S{i:03d}", display_name=f"P S{i:03d}") for i in range(130)]
    results = acc.bulk_create(folder=f, items=items)
    assert len(results) == 130 and all(r.id for r in results)
    assert f.all().count() == 130
    surnames = sorted(c.surname for c in f.all().only("surname"))
    assert surnames == [f"S{i:03d}" for i in range(130)]
    find_items = sim.counters()["requests_per_operation"]["FindItem"]
    assert find_items >= 2  # exchangelib pages 100 at a time
    acc.bulk_delete(results[:30])
    assert f.all().count() == 100


def test_sync_hierarchy_reports_new_folders(sim):
    acc = sim.account("user2@contoso.test")
    root = acc.msg_folder_root
    initial = list(root.sync_hierarchy())
    names = {f.name for kind, f in initial if kind == "create"}
    assert {"Inbox", "Calendar", "Contacts"} <= names
    new = Contacts(parent=acc.contacts, name="Salesforce_Sync")
    new.save()
    later = list(root.sync_hierarchy())
    assert [(kind, f.name) for kind, f in later if kind == "create"] == [("create", "Salesforce_Sync")]
    new_id = new.id
    new.delete()
    gone = list(root.sync_hierarchy())
    assert [(kind, f.id) for kind, f in gone] == [("delete", new_id)]


def test_resolve_names_and_time_zones(sim):
    acc = sim.account("user1@contoso.test")
    # Protocol-level services read the version from the configuration, which only the
    # account's own requests fill in.
    acc.protocol.config.version = acc.version
    resolved = acc.protocol.resolve_names(["user2"])
    assert [m.email_address for m in resolved] == ["user2@contoso.test"]
    zones = {tz.id for tz in acc.protocol.get_timezones(return_full_timezone_data=False)}
    assert "W. Europe Standard Time" in zones
