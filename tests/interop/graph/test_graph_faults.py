"""What a client nobody here wrote meets when Exchange Online pushes back: the SDK's retry
handler riding out injected 429s and 503s with Retry-After (proved by the simulator's counters),
Exchange's mailbox concurrency limit, the request budget, RBAC for Applications (403
ErrorAccessDenied outside the management scope, changed through the control API, bypassed by a
tenant-wide role), and state that survives a restart."""

import asyncio
import ssl
import time

import httpx
import requests

import pytest
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.contact_folder import ContactFolder
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.event import Event
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from graph_sim import SchemaCheck, Sim, odata_error


def test_retry_handler_rides_out_429_with_retry_after(graph, sim, mailbox):
    before = sim.counters()
    sim.fault(mailbox, 429, count=2, retry_after=1)
    started = time.monotonic()
    folders = graph.run(graph.client.users.by_user_id(mailbox).contact_folders.get())
    elapsed = time.monotonic() - started
    assert folders.value is not None
    after = sim.counters()
    assert after["faults"].get("429", 0) - before["faults"].get("429", 0) == 2
    assert after["mailboxes"].get(mailbox, 0) - before["mailboxes"].get(mailbox, 0) == 3, "two refused, one answered"
    assert elapsed >= 2, f"the SDK waited Retry-After (1 s) twice, took {elapsed:.2f} s"


def test_retry_handler_rides_out_503(graph, sim, mailbox):
    before = sim.counters()
    sim.fault(mailbox, 503, count=1, retry_after=1)
    graph.run(graph.client.users.by_user_id(mailbox).contact_folders.get())
    after = sim.counters()
    assert after["faults"].get("503", 0) - before["faults"].get("503", 0) == 1


def test_retries_exhausted_surface_the_429(graph, sim, mailbox):
    sim.fault(mailbox, 429, count=4, retry_after=1)  # the SDK retries 3 times by default
    with pytest.raises(ODataError) as e:
        graph.run(graph.client.users.by_user_id(mailbox).contact_folders.get())
    assert odata_error(e) == (429, "TooManyRequests")


def test_a_fault_for_one_mailbox_leaves_the_others_alone(graph, sim, mailbox, another_mailbox):
    sim.fault(mailbox, 429, count=1, retry_after=30)
    # Would wait 30 s if the fault leaked onto this mailbox.
    started = time.monotonic()
    graph.run(graph.client.users.by_user_id(another_mailbox).contact_folders.get())
    assert time.monotonic() - started < 10
    sim.control("DELETE", "/faults")


def test_more_than_four_concurrent_requests_per_mailbox_are_application_throttled(graph, sim, mailbox):
    # Each request held 1.2 s, eight at once: Exchange Online lets four through per app and
    # mailbox. Sent with plain httpx, since the SDK's retry handler would hide the 429s.
    sim.control("POST", "/faults", {"mailbox": mailbox, "latency_ms": 1200})
    url = f"{sim.graph_url}/users/{mailbox}/contactFolders"
    headers = {"Authorization": "Bearer " + graph.token()}

    async def eight_at_once():
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=sim.ca), trust_env=False, timeout=30) as c:
            return await asyncio.gather(*[c.get(url, headers=headers) for _ in range(8)])

    try:
        responses = graph.run(eight_at_once())
    finally:
        sim.control("POST", "/faults", {"mailbox": mailbox, "latency_ms": 0})
    for r in responses:
        graph.check.response(r)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 4, statuses
    throttled = [r for r in responses if r.status_code == 429]
    assert throttled, f"8 concurrent requests with 1.2 s latency all passed: {statuses}"
    assert all(r.json()["error"]["code"] == "ApplicationThrottled" for r in throttled)


def test_request_budget_is_429_too_many_requests_with_retry_after(graph, sim, mailbox):
    sim.control("POST", f"/mailboxes/{mailbox}/budget", {"budget": 3, "reset": True})
    try:
        token = graph.token()
        statuses = []
        last = None
        for _ in range(5):
            last = requests.get(
                f"{sim.graph_url}/users/{mailbox}/contactFolders",
                headers={"Authorization": "Bearer " + token},
                verify=sim.ca,
                timeout=30,
            )
            graph.check.response(last)
            statuses.append(last.status_code)
    finally:
        sim.control("POST", f"/mailboxes/{mailbox}/budget", {"budget": 10000, "reset": True})
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429], statuses
    assert last.json()["error"]["code"] == "TooManyRequests"
    assert int(last.headers["Retry-After"]) > 0


def test_out_of_scope_mailbox_is_403_error_access_denied(graph, sim):
    outsider = sim.out_of_scope[0]
    user = graph.client.users.by_user_id(outsider)
    for call in (user.contact_folders.get, user.events.get, user.contacts.get):
        with pytest.raises(ODataError) as e:
            graph.run(call())
        assert odata_error(e) == (403, "ErrorAccessDenied")


def test_scope_changes_through_the_control_api(graph, sim):
    outsider = sim.out_of_scope[-1]
    user = graph.client.users.by_user_id(outsider)
    sim.control("POST", f"/mailboxes/{outsider}/scope", {"in_scope": True})
    try:
        assert graph.run(user.contact_folders.get()).value is not None
    finally:
        sim.control("POST", f"/mailboxes/{outsider}/scope", {"in_scope": False})
    with pytest.raises(ODataError) as e:
        graph.run(user.contact_folders.get())
    assert odata_error(e) == (403, "ErrorAccessDenied")


def test_tenant_wide_role_bypasses_the_scope(sim, graph):
    outsider = sim.out_of_scope[0]
    sim.control("PUT", "/roles", {"roles": ["Contacts.ReadWrite"]})
    g = sim.graph(graph.check)  # a new msal app: a new token, with the role in it
    try:
        assert g.run(g.client.users.by_user_id(outsider).contact_folders.get()).value is not None
    finally:
        sim.control("PUT", "/roles", {"roles": []})
        g.close()


def test_state_survives_a_restart(tmp_path):
    s = Sim(tmp_path / "restart", "--mailboxes", "2", "--out-of-scope", "1").start()
    check = SchemaCheck(s.graph_url)
    try:
        mailbox = s.mailboxes[0]
        identity = {k: s.info[k] for k in ("tenant_id", "client_id", "client_secret")}
        g = s.graph(check)
        user = g.client.users.by_user_id(mailbox)
        folder = g.run(user.contact_folders.post(ContactFolder(display_name="Salesforce_Sync")))
        contacts = user.contact_folders.by_contact_folder_id(folder.id).contacts
        kept = g.run(contacts.post(Contact(given_name="Kept", surname="Across")))
        event = g.run(user.events.post(Event(
            subject="Kept too",
            start=DateTimeTimeZone(date_time="2027-03-01T09:00:00", time_zone="UTC"),
            end=DateTimeTimeZone(date_time="2027-03-01T09:30:00", time_zone="UTC"),
        )))
        page = g.run(contacts.delta.get())
        while page.odata_next_link:
            page = g.run(contacts.delta.with_url(page.odata_next_link).get())
        old_graph_url = s.graph_url
        g.close()

        s.restart()
        assert {k: s.info[k] for k in identity} == identity, "the tenant and app credentials are kept"
        g = s.graph(check)
        user = g.client.users.by_user_id(mailbox)
        contacts = user.contact_folders.by_contact_folder_id(folder.id).contacts
        assert [f.display_name for f in g.run(user.contact_folders.get()).value] == ["Salesforce_Sync"]
        got = g.run(contacts.by_contact_id(kept.id).get())
        assert got.given_name == "Kept" and got.change_key == kept.change_key
        got = g.run(user.events.by_event_id(event.id).get())
        assert got.subject == "Kept too" and got.change_key == event.change_key
        # The delta token issued before the restart still works (on the new port).
        link = page.odata_delta_link.replace(old_graph_url, s.graph_url)
        again = g.run(contacts.delta.with_url(link).get())
        assert again.value == []
        g.run(contacts.post(Contact(given_name="After", surname="Restart")))
        again = g.run(contacts.delta.with_url(link).get())
        assert [c.given_name for c in again.value] == ["After"]
        g.close()
    finally:
        s.stop()
    assert not check.problems, "\n".join(check.problems[:20])


def test_state_survives_a_kill_once_saved(tmp_path):
    """The simulator saves in the background shortly after a write: a SIGKILL a second later
    loses nothing."""
    s = Sim(tmp_path / "killed", "--mailboxes", "1", "--out-of-scope", "0").start()
    check = SchemaCheck(s.graph_url)
    try:
        mailbox = s.mailboxes[0]
        g = s.graph(check)
        user = g.client.users.by_user_id(mailbox)
        folder = g.run(user.contact_folders.post(ContactFolder(display_name="Salesforce_Sync")))
        kept = g.run(user.contact_folders.by_contact_folder_id(folder.id).contacts.post(Contact(given_name="Saved")))
        g.close()
        time.sleep(1)
        s.proc.kill()
        s.proc.wait()
        s.start()
        g = s.graph(check)
        got = g.run(g.client.users.by_user_id(mailbox).contacts.by_contact_id(kept.id).get())
        assert got.given_name == "Saved"
        g.close()
    finally:
        s.stop()
    assert not check.problems, "\n".join(check.problems[:20])
