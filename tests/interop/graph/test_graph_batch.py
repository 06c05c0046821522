"""`$batch` against the simulator: 20 creates through msgraph-core's BatchRequestContent and
BatchRequestBuilder, and a sequential batch with `dependsOn` ending in a 424. msgraph-core
1.5.2 writes `depends_on` (snake case) where Graph reads `dependsOn` (its open PR #996), so
the sequential batch is posted raw, through the same httpx client and middleware."""

from msgraph.generated.models.contact import Contact
from msgraph.generated.models.contact_folder import ContactFolder
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

BATCH_MAX = 20


def folder(graph, mailbox):
    return graph.run(
        graph.client.users.by_user_id(mailbox).contact_folders.post(ContactFolder(display_name="Salesforce_Sync"))
    ).id


def folder_contacts(graph, mailbox, folder_id):
    builder = graph.client.users.by_user_id(mailbox).contact_folders.by_contact_folder_id(folder_id).contacts
    items, page = [], graph.run(builder.get())
    while True:
        items.extend(page.value)
        if not page.odata_next_link:
            return items
        page = graph.run(builder.with_url(page.odata_next_link).get())


def test_twenty_creates_through_the_sdk_batch(graph, mailbox):
    fid = folder(graph, mailbox)
    builder = graph.client.users.by_user_id(mailbox).contact_folders.by_contact_folder_id(fid).contacts
    content = BatchRequestContent()
    for n in range(BATCH_MAX):
        info = builder.to_post_request_information(Contact(given_name=f"Batch{n}", surname="Contact"))
        content.add_request(str(n + 1), BatchRequestItem(request_information=info, id=str(n + 1)))
    answer = graph.run(graph.client.batch.post(batch_request_content=content))
    statuses = {rid: r.status for rid, r in answer.responses.items()}
    assert statuses == {str(n + 1): 201 for n in range(BATCH_MAX)}
    names = sorted(c.given_name for c in folder_contacts(graph, mailbox, fid))
    assert names == sorted(f"Batch{n}" for n in range(BATCH_MAX))


def test_depends_on_runs_in_order_and_a_failed_dependency_is_424(graph, mailbox):
    fid = folder(graph, mailbox)
    base = f"/users/{mailbox}/contactFolders/{fid}/contacts"
    # A well-formed id of a contact that no longer exists (a made-up id would be 400 malformed).
    contacts = graph.client.users.by_user_id(mailbox).contact_folders.by_contact_folder_id(fid).contacts
    gone = graph.run(contacts.post(Contact(given_name="Gone"))).id
    graph.run(contacts.by_contact_id(gone).delete())
    json_headers = {"Content-Type": "application/json"}
    batch = {
        "requests": [
            {"id": "1", "method": "POST", "url": base, "headers": json_headers,
             "body": {"givenName": "First", "surname": "InChain"}},
            {"id": "2", "dependsOn": ["1"], "method": "GET", "url": base + "?$select=givenName"},
            {"id": "3", "dependsOn": ["2"], "method": "PATCH", "url": f"/users/{mailbox}/contacts/{gone}",
             "headers": json_headers, "body": {"jobTitle": "Nobody"}},
            {"id": "4", "dependsOn": ["3"], "method": "POST", "url": base, "headers": json_headers,
             "body": {"givenName": "Never", "surname": "Created"}},
        ]
    }
    r = graph.raw("POST", "/$batch", batch)
    assert r.status_code == 200, r.text
    by_id = {item["id"]: item for item in r.json()["responses"]}
    assert by_id["1"]["status"] == 201 and by_id["1"]["body"]["givenName"] == "First"
    assert by_id["2"]["status"] == 200
    assert [c["givenName"] for c in by_id["2"]["body"]["value"]] == ["First"], "2 ran after 1"
    assert by_id["3"]["status"] == 404
    assert by_id["4"]["status"] == 424
    assert by_id["4"]["body"]["error"]["code"]
    assert [c.given_name for c in folder_contacts(graph, mailbox, fid)] == ["First"], "4 never ran"


def test_batch_limits(graph, mailbox):
    url = f"/users/{mailbox}/contactFolders"
    too_many = {"requests": [{"id": str(n), "method": "GET", "url": url} for n in range(BATCH_MAX + 1)]}
    r = graph.raw("POST", "/$batch", too_many)
    assert r.status_code == 400, r.text
    twice = {"requests": [{"id": "1", "method": "GET", "url": url}, {"id": "1", "method": "GET", "url": url}]}
    r = graph.raw("POST", "/$batch", twice)
    assert r.status_code == 400, r.text
    absolute = {"requests": [{"id": "1", "method": "GET", "url": graph.sim.graph_url + url}]}
    r = graph.raw("POST", "/$batch", absolute)
    assert r.status_code == 400 or r.json()["responses"][0]["status"] == 400, r.text


def test_batch_mixing_sequential_and_parallel_is_400(graph, mailbox):
    """Graph: "Batch should be either fully sequential or fully parallel" (two chains side by
    side are neither)."""
    url = f"/users/{mailbox}/contactFolders"
    mixed = {
        "requests": [
            {"id": "1", "method": "GET", "url": url},
            {"id": "2", "method": "GET", "url": url, "dependsOn": ["1"]},
            {"id": "3", "method": "GET", "url": url},
            {"id": "4", "method": "GET", "url": url, "dependsOn": ["3"]},
        ]
    }
    r = graph.raw("POST", "/$batch", mixed)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"]


def test_batch_items_for_an_out_of_scope_mailbox_are_403_inside_a_200(graph, sim, mailbox):
    outsider = sim.out_of_scope[0]
    batch = {
        "requests": [
            {"id": "in", "method": "GET", "url": f"/users/{mailbox}/contactFolders"},
            {"id": "out", "method": "GET", "url": f"/users/{outsider}/contactFolders"},
        ]
    }
    r = graph.raw("POST", "/$batch", batch)
    assert r.status_code == 200, r.text
    by_id = {item["id"]: item for item in r.json()["responses"]}
    assert by_id["in"]["status"] == 200
    assert by_id["out"]["status"] == 403
    assert by_id["out"]["body"]["error"]["code"] == "ErrorAccessDenied"
