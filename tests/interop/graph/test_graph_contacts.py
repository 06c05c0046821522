"""msgraph-sdk against the simulator's contacts: the sync folder, contacts CRUD, the folder's
contacts delta (paged, before and after changes, deletions as @removed, an expired token),
singleValueExtendedProperties (inline write, $expand, $filter) and If-Match."""

import pytest
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.contact_folder import ContactFolder
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.physical_address import PhysicalAddress
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.contact_folders.item.contacts.contacts_request_builder import ContactsRequestBuilder
from msgraph.generated.users.item.contact_folders.item.contacts.item.contact_item_request_builder import (
    ContactItemRequestBuilder,
)

from graph_sim import cfg, odata_error

CRM_ID = "String {6d1c3b4e-9f7a-4c1e-8a55-2f0e7c9b1d42} Name CrmId"
SYNC_FOLDER = "Salesforce_Sync"


def sync_folder(graph, mailbox) -> str:
    created = graph.run(
        graph.client.users.by_user_id(mailbox).contact_folders.post(ContactFolder(display_name=SYNC_FOLDER))
    )
    assert created.id and created.display_name == SYNC_FOLDER
    return created.id


def contacts(graph, mailbox, folder):
    return graph.client.users.by_user_id(mailbox).contact_folders.by_contact_folder_id(folder).contacts


def new_contact(graph, mailbox, folder, n, **extra) -> Contact:
    c = Contact(
        given_name=f"Ada{n}",
        surname="Lovelace",
        email_addresses=[EmailAddress(address=f"ada{n}@example.org", name=f"Ada{n} Lovelace")],
        business_phones=[f"+44 20 7946 {n:04d}"],
        **extra,
    )
    return graph.run(contacts(graph, mailbox, folder).post(c))


def delta_round(graph, builder, page_size=None, link=None):
    """Follows nextLinks to the deltaLink: (entries, deltaLink, pages)."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else None
    entries, pages = [], []
    request = builder.delta.with_url(link) if link else builder.delta
    while True:
        page = graph.run(request.get(cfg(headers=headers)))
        pages.append(page.value or [])
        entries.extend(page.value or [])
        if page.odata_next_link:
            assert not page.odata_delta_link
            request = builder.delta.with_url(page.odata_next_link)
            continue
        assert page.odata_delta_link, "a delta round must end with an @odata.deltaLink"
        return entries, page.odata_delta_link, pages


def removed(entry):
    return (entry.additional_data or {}).get("@removed")


def test_sync_folder_is_created_under_contacts_and_listed(graph, mailbox):
    user = graph.client.users.by_user_id(mailbox)
    folder = sync_folder(graph, mailbox)
    listed = graph.run(user.contact_folders.get())
    assert SYNC_FOLDER in [f.display_name for f in listed.value]
    got = graph.run(user.contact_folders.by_contact_folder_id(folder).get())
    assert got.id == folder and got.display_name == SYNC_FOLDER and got.parent_folder_id
    child = graph.run(
        user.contact_folders.by_contact_folder_id(folder).child_folders.post(ContactFolder(display_name="Archive"))
    )
    assert child.parent_folder_id == folder
    children = graph.run(user.contact_folders.by_contact_folder_id(folder).child_folders.get())
    assert [c.display_name for c in children.value] == ["Archive"]


def test_sync_folder_twice_is_a_conflict(graph, mailbox):
    sync_folder(graph, mailbox)
    with pytest.raises(ODataError) as e:
        sync_folder(graph, mailbox)
    assert odata_error(e)[0] == 409


def test_contact_crud(graph, mailbox):
    folder = sync_folder(graph, mailbox)
    created = new_contact(
        graph, mailbox, folder, 1,
        job_title="Analyst",
        home_address=PhysicalAddress(street="12 St James's Square", city="London", postal_code="SW1Y 4JH"),
    )
    assert created.id and created.parent_folder_id == folder
    assert created.given_name == "Ada1" and created.email_addresses[0].address == "ada1@example.org"
    assert created.display_name, "Exchange fills displayName from the name parts"
    assert created.change_key and created.created_date_time and created.last_modified_date_time
    assert created.additional_data.get("@odata.etag")

    item = contacts(graph, mailbox, folder).by_contact_id(created.id)
    got = graph.run(item.get())
    assert got.home_address.city == "London" and got.business_phones == ["+44 20 7946 0001"]
    # The same contact through the mailbox-wide collection.
    same = graph.run(graph.client.users.by_user_id(mailbox).contacts.by_contact_id(created.id).get())
    assert same.id == created.id

    patched = graph.run(item.patch(Contact(job_title="Director", mobile_phone="+44 7700 900123")))
    assert patched.job_title == "Director" and patched.mobile_phone == "+44 7700 900123"
    assert patched.given_name == "Ada1", "PATCH leaves other properties alone"
    assert patched.change_key != created.change_key

    listed = graph.run(contacts(graph, mailbox, folder).get())
    assert [c.id for c in listed.value] == [created.id]

    graph.run(item.delete())
    with pytest.raises(ODataError) as e:
        graph.run(item.get())
    assert odata_error(e) == (404, "ErrorItemNotFound")


def test_contacts_delta_paged_before_and_after_changes(graph, mailbox):
    folder = sync_folder(graph, mailbox)
    made = [new_contact(graph, mailbox, folder, n) for n in range(5)]
    builder = contacts(graph, mailbox, folder)

    entries, link, pages = delta_round(graph, builder, page_size=2)
    assert sorted(e.id for e in entries if not removed(e)) == sorted(c.id for c in made)
    assert len(pages) >= 3 and all(len(p) <= 2 for p in pages), [len(p) for p in pages]
    assert {e.given_name for e in entries} == {f"Ada{n}" for n in range(5)}

    graph.run(builder.by_contact_id(made[0].id).patch(Contact(job_title="Engineer")))
    graph.run(builder.by_contact_id(made[1].id).delete())
    added = new_contact(graph, mailbox, folder, 9)

    entries, link2, _ = delta_round(graph, builder, page_size=2, link=link)
    by_id = {}
    for e in entries:
        by_id.setdefault(e.id, []).append(e)
    assert set(by_id) == {made[0].id, made[1].id, added.id}, "only what changed comes back"
    assert any(e.job_title == "Engineer" for e in by_id[made[0].id])
    assert removed(by_id[made[1].id][-1]) == {"reason": "deleted"}
    assert not removed(by_id[added.id][-1]) and by_id[added.id][-1].given_name == "Ada9"

    entries, _, _ = delta_round(graph, builder, link=link2)
    assert entries == [], "nothing changed since the last deltaLink"


def test_contacts_delta_select(graph, mailbox):
    folder = sync_folder(graph, mailbox)
    new_contact(graph, mailbox, folder, 1, job_title="Analyst")
    builder = contacts(graph, mailbox, folder)
    from msgraph.generated.users.item.contact_folders.item.contacts.delta.delta_request_builder import (
        DeltaRequestBuilder,
    )

    page = graph.run(
        builder.delta.get(cfg(DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=["givenName"])))
    )
    [entry] = page.value
    assert entry.id and entry.given_name == "Ada1"
    assert entry.job_title is None and entry.surname is None, "$select limits the properties"


def test_expired_delta_token_is_410_sync_state_not_found(graph, sim, mailbox):
    folder = sync_folder(graph, mailbox)
    new_contact(graph, mailbox, folder, 1)
    builder = contacts(graph, mailbox, folder)
    _, link, _ = delta_round(graph, builder)
    sim.expire_delta_tokens(mailbox)
    with pytest.raises(ODataError) as e:
        graph.run(builder.delta.with_url(link).get())
    assert odata_error(e) == (410, "syncStateNotFound")
    # Starting over works.
    entries, _, _ = delta_round(graph, builder)
    assert len(entries) == 1


def test_stale_etag_is_412(graph, mailbox):
    folder = sync_folder(graph, mailbox)
    created = new_contact(graph, mailbox, folder, 1)
    item = contacts(graph, mailbox, folder).by_contact_id(created.id)
    etag = created.additional_data["@odata.etag"]
    updated = graph.run(item.patch(Contact(job_title="One"), cfg(headers={"If-Match": etag})))
    assert updated.additional_data["@odata.etag"] != etag
    with pytest.raises(ODataError) as e:
        graph.run(item.patch(Contact(job_title="Two"), cfg(headers={"If-Match": etag})))
    assert odata_error(e)[0] == 412
    assert graph.run(item.get()).job_title == "One", "the refused PATCH changed nothing"


def test_extended_property_write_expand_and_filter(graph, mailbox):
    folder = sync_folder(graph, mailbox)
    tagged = new_contact(
        graph, mailbox, folder, 1,
        single_value_extended_properties=[SingleValueLegacyExtendedProperty(id=CRM_ID, value="003000000000001AAA")],
    )
    new_contact(
        graph, mailbox, folder, 2,
        single_value_extended_properties=[SingleValueLegacyExtendedProperty(id=CRM_ID, value="003000000000002AAA")],
    )
    untagged = new_contact(graph, mailbox, folder, 3)
    builder = contacts(graph, mailbox, folder)
    expand = f"singleValueExtendedProperties($filter=id eq '{CRM_ID}')"

    got = graph.run(
        builder.by_contact_id(tagged.id).get(
            cfg(ContactItemRequestBuilder.ContactItemRequestBuilderGetQueryParameters(expand=[expand]))
        )
    )
    [prop] = got.single_value_extended_properties
    assert prop.id.lower() == CRM_ID.lower() and prop.value == "003000000000001AAA"

    plain = graph.run(builder.by_contact_id(untagged.id).get(
        cfg(ContactItemRequestBuilder.ContactItemRequestBuilderGetQueryParameters(expand=[expand]))
    ))
    assert not plain.single_value_extended_properties

    found = graph.run(
        builder.get(
            cfg(
                ContactsRequestBuilder.ContactsRequestBuilderGetQueryParameters(
                    filter=f"singleValueExtendedProperties/Any(ep: ep/id eq '{CRM_ID}' and ep/value eq '003000000000001AAA')"
                )
            )
        )
    )
    assert [c.id for c in found.value] == [tagged.id]

    # A PATCH replaces the value, and the filter follows.
    graph.run(builder.by_contact_id(tagged.id).patch(Contact(
        single_value_extended_properties=[SingleValueLegacyExtendedProperty(id=CRM_ID, value="003000000000009AAA")]
    )))
    found = graph.run(builder.get(cfg(ContactsRequestBuilder.ContactsRequestBuilderGetQueryParameters(
        filter=f"singleValueExtendedProperties/Any(ep: ep/id eq '{CRM_ID}' and ep/value eq '003000000000009AAA')"
    ))))
    assert [c.id for c in found.value] == [tagged.id]


def test_page_iterator_follows_next_links(graph, mailbox):
    """msgraph-core's PageIterator walks a folder listing page by page ($top=10)."""
    from msgraph_core.tasks.page_iterator import PageIterator

    folder = sync_folder(graph, mailbox)
    made = {new_contact(graph, mailbox, folder, n).id for n in range(25)}
    builder = contacts(graph, mailbox, folder)
    first = graph.run(builder.get(cfg(ContactsRequestBuilder.ContactsRequestBuilderGetQueryParameters(top=10))))
    assert len(first.value) == 10 and first.odata_next_link
    seen = []

    def collect(item):
        seen.append(item.id)
        return True

    graph.run(PageIterator(first, graph.adapter).iterate(collect))
    assert len(seen) == 25 and set(seen) == made
