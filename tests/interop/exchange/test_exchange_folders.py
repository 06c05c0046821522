"""exchangelib's own folder operations against the simulator, done to the sync folder as a user's
Outlook or a script would: rename, move, empty, delete (into Deleted Items, softly, for good),
and the system folders Exchange keeps under Contacts. Each asserts what Exchange does: a folder
keeps its id through a rename, a move and a delete into Deleted Items; distinguished folders
cannot be moved or deleted."""

import pytest
from exchangelib.errors import (
    ErrorDeleteDistinguishedFolder,
    ErrorFolderExists,
    ErrorFolderNotFound,
    ErrorItemNotFound,
    ErrorMoveCopyFailed,
    ErrorMoveDistinguishedFolder,
)
from exchangelib.folders import (
    CompanyContacts,
    Contacts,
    FolderCollection,
    GALContacts,
    OrganizationalContacts,
    QuickContacts,
    RecipientCache,
)
from exchangelib.items import Contact

FOLDER = "Salesforce_Sync"


def sync_folder(account, contacts=0):
    f = Contacts(parent=account.contacts, name=FOLDER)
    f.save()
    for i in range(contacts):
        Contact(folder=f, given_name="P", surname=f"S{i}", display_name=f"P S{i}").save()
    return f


def fetch(account, folder_id):
    """The folder with this id as the server has it now (GetFolder, past exchangelib's cache),
    or the error the server answered."""
    [got] = list(FolderCollection(account=account, folders=[Contacts(root=account.root, id=folder_id)]).get_folders())
    return got


def names_under(folder):
    folder.account.root.clear_cache()
    return sorted(c.name for c in folder.children)


def hierarchy_changes(account):
    return [(kind, getattr(f, "name", None) or getattr(f, "id", f)) for kind, f in account.msg_folder_root.sync_hierarchy()]


def test_a_rename_keeps_the_folder_its_id_and_its_contacts(sim):
    acc = sim.account("user1@contoso.test")
    f = sync_folder(acc, contacts=2)
    folder_id, key = f.id, f.changekey
    hierarchy_changes(acc)

    # exchangelib's save() sends the name with the class and a delete of the permission set,
    # as it does against Exchange.
    f.name = "My CRM contacts"
    f.save()
    assert f.id == folder_id
    assert f.changekey != key, "a rename is a new version of the folder"
    now = fetch(acc, folder_id)
    assert now.name == "My CRM contacts"
    assert now.folder_class == "IPF.Contact"
    assert now.all().count() == 2
    assert "My CRM contacts" in names_under(acc.contacts)
    assert FOLDER not in names_under(acc.contacts)
    assert hierarchy_changes(acc) == [("update", "My CRM contacts")]

    # A sibling's name is taken, whatever its case.
    other = Contacts(parent=acc.contacts, name="Other")
    other.save()
    other.name = "my crm CONTACTS"
    with pytest.raises(ErrorFolderExists):
        other.save()


def test_a_move_keeps_the_folder_its_id_and_its_contacts(sim):
    acc = sim.account("user1@contoso.test")
    f = sync_folder(acc, contacts=2)
    folder_id = f.id
    hierarchy_changes(acc)

    top = acc.msg_folder_root
    f.move(top)
    now = fetch(acc, folder_id)
    assert now.parent_folder_id.id == top.id
    assert now.name == FOLDER
    assert now.all().count() == 2
    assert FOLDER in names_under(top)
    assert FOLDER not in names_under(acc.contacts)
    assert hierarchy_changes(acc) == [("update", FOLDER)]

    # Not into a folder of its own, and a distinguished folder not at all.
    sub = Contacts(parent=f, name="Sub")
    sub.save()
    with pytest.raises(ErrorMoveCopyFailed):
        f.move(sub)
    with pytest.raises(ErrorMoveDistinguishedFolder):
        acc.contacts.move(top)


def test_empty_deletes_the_contacts_and_subfolders_only_when_asked(sim):
    acc = sim.account("user1@contoso.test")
    f = sync_folder(acc, contacts=3)
    folder_id = f.id
    list(f.sync_items())
    sub = Contacts(parent=f, name="Sub")
    sub.save()
    Contact(folder=sub, given_name="P", surname="Below", display_name="P Below").save()

    f.empty()
    assert f.all().count() == 0
    assert [kind for kind, _ in f.sync_items()] == ["delete"] * 3
    # The folder itself stays, and so does its subfolder with what it holds.
    assert fetch(acc, folder_id).name == FOLDER
    assert names_under(f) == ["Sub"]
    assert sub.all().count() == 1

    f.empty(delete_sub_folders=True)
    assert names_under(f) == []
    assert isinstance(fetch(acc, sub.id), (ErrorItemNotFound, ErrorFolderNotFound))


def test_delete_into_deleted_items_keeps_the_folder_softly_or_for_good_it_is_gone(sim):
    acc = sim.account("user1@contoso.test")
    f = sync_folder(acc, contacts=2)
    folder_id = f.id
    hierarchy_changes(acc)

    # Outlook's delete: the folder moves into Deleted Items with its contacts and keeps its id.
    f.delete(delete_type="MoveToDeletedItems")
    now = fetch(acc, folder_id)
    assert now.parent_folder_id.id == acc.trash.id
    assert now.name == FOLDER
    assert now.all().count() == 2
    assert FOLDER not in names_under(acc.contacts)
    assert hierarchy_changes(acc) == [("update", FOLDER)], "it is still in the mailbox's tree"

    for how in ("SoftDelete", "HardDelete"):
        g = Contacts(parent=acc.contacts, name=how)
        g.save()
        gone_id = g.id
        Contact(folder=g, given_name="P", surname="Q", display_name="P Q").save()
        hierarchy_changes(acc)
        g.delete(delete_type=how)
        assert how not in names_under(acc.contacts)
        assert isinstance(fetch(acc, gone_id), (ErrorItemNotFound, ErrorFolderNotFound)), how
        assert hierarchy_changes(acc) == [("delete", gone_id)], how

    with pytest.raises(ErrorDeleteDistinguishedFolder):
        acc.contacts.delete()


# The folders Exchange 2016/2019 keep under Contacts, with their classes; exchangelib knows each
# by its class.
SYSTEM = {
    "Recipient Cache": ("IPF.Contact.RecipientCache", RecipientCache),
    "PeopleCentricConversation Buddies": ("IPF.Contact.MOC.QuickContacts", QuickContacts),
    "Companies": ("IPF.Contact.Company", CompanyContacts),
    "Organizational Contacts": ("IPF.Contact.OrganizationalContacts", OrganizationalContacts),
    "GAL Contacts": ("IPF.Contact.GalContacts", GALContacts),
}


def test_walking_contacts_finds_the_system_folders_beside_the_sync_folder(sim):
    acc = sim.account("user1@contoso.test")
    sync_folder(acc, contacts=1)
    acc.root.clear_cache()
    found = {f.name: f for f in acc.contacts.walk()}
    assert set(found) == set(SYSTEM) | {FOLDER}
    for name, (folder_class, cls) in SYSTEM.items():
        f = found[name]
        assert f.folder_class == folder_class, name
        assert type(f) is cls, name
        assert f.parent_folder_id.id == acc.contacts.id, name
        assert f.all().count() == 0, name
    assert type(found[FOLDER]) is Contacts
    assert found[FOLDER].all().count() == 1
    # Recipient Cache is distinguished: it cannot be deleted.
    with pytest.raises(ErrorDeleteDistinguishedFolder):
        found["Recipient Cache"].delete()
