"""The CSDL validator (tests/interop/graph_schema.py) itself: it reads Graph's types with their
inheritance, accepts what Graph serves, and rejects a wrong property name, a wrong type and an
unknown enum value; and the simulator's entities reach it (the check is not silently idle)."""

import copy

import pytest

import graph_schema
from graph_sim import SchemaCheck, type_for_path

CONTACT = {
    "@odata.etag": 'W/"EQAAABYAAAA="',
    "id": "AAMkAGI2TAAA=",
    "createdDateTime": "2026-12-01T10:00:00Z",
    "lastModifiedDateTime": "2026-12-01T10:00:00.1234567Z",
    "changeKey": "EQAAABYAAAA=",
    "categories": [],
    "parentFolderId": "AAMkAGI2AAEOAAA=",
    "birthday": None,
    "givenName": "Ada",
    "surname": "Lovelace",
    "displayName": "Ada Lovelace",
    "emailAddresses": [{"name": "Ada Lovelace", "address": "ada@example.org"}],
    "businessPhones": ["+44 20 7946 0001"],
    "homeAddress": {"street": "12 St James's Square", "city": "London", "postalCode": "SW1Y 4JH"},
    "singleValueExtendedProperties": [
        {"id": "String {6d1c3b4e-9f7a-4c1e-8a55-2f0e7c9b1d42} Name CrmId", "value": "003000000000001AAA"}
    ],
}

EVENT = {
    "@odata.type": "#microsoft.graph.event",
    "id": "AAMkAGI2TBBB=",
    "subject": "Weekly pipeline review",
    "type": "seriesMaster",
    "showAs": "busy",
    "sensitivity": "normal",
    "isAllDay": False,
    "reminderMinutesBeforeStart": 15,
    "start": {"dateTime": "2026-12-14T10:00:00.0000000", "timeZone": "UTC"},
    "end": {"dateTime": "2026-12-14T10:30:00.0000000", "timeZone": "UTC"},
    "recurrence": {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
        "range": {"type": "numbered", "startDate": "2026-12-14", "numberOfOccurrences": 6},
    },
    "cancelledOccurrences": ["OID.AAMkAGI2TBBB=.2026-12-28"],
    "exceptionOccurrences": [
        {"id": "AAMkAGI2TCCC=", "type": "exception", "seriesMasterId": "AAMkAGI2TBBB=",
         "start": {"dateTime": "2026-12-22T14:00:00.0000000", "timeZone": "UTC"}}
    ],
}


@pytest.fixture(scope="module")
def schema():
    graph_schema.need_schema()
    return graph_schema.schema()


def test_types_are_read_with_their_inheritance(schema):
    props = schema.properties("contact")
    assert {"id", "changeKey", "categories", "givenName", "emailAddresses"} <= set(props)
    assert props["emailAddresses"].collection and props["emailAddresses"].type == "microsoft.graph.emailAddress"
    assert props["singleValueExtendedProperties"].navigation
    assert schema.is_derived("event", "outlookItem") and schema.is_derived("contactFolder", "entity")
    assert {"singleInstance", "occurrence", "exception", "seriesMaster"} == set(
        schema.enums["microsoft.graph.eventType"].members
    )
    assert "parentFolderId" in schema.properties("contactFolder")


def test_what_graph_serves_is_valid(schema):
    assert schema.validate(CONTACT, "contact") == []
    assert schema.validate(EVENT, "event") == []
    assert schema.validate_collection({"@odata.context": "x", "@odata.nextLink": "y", "value": [CONTACT]}, "contact") == []
    assert schema.validate({"id": "AAMk=", "@removed": {"reason": "deleted"}}, "contact") == []
    assert schema.validate({"id": "AAMk=", "displayName": "Contacts", "parentFolderId": "AQ=", "displayName@odata.type": "#String"}, "contactFolder") == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(givenname="Ada"), "has no property 'givenname'"),
        (lambda c: c.update(emailAddress=[]), "has no property 'emailAddress'"),
        (lambda c: c["emailAddresses"][0].update(mail="x@y"), "emailAddress has no property 'mail'"),
        (lambda c: c.update(businessPhones="+44 20 7946 0001"), "expected an array"),
        (lambda c: c.update(givenName=7), "Edm.String expects a string"),
        (lambda c: c.update(birthday="1815-12-10"), "not a valid Edm.DateTimeOffset"),
        (lambda c: c.update(id=None), "null is not allowed"),
        (lambda c: c.update(homeAddress="London"), "expected an object"),
        (lambda c: c.update({"@removed": {"reason": "gone"}}), "@removed"),
    ],
)
def test_contact_mistakes_are_caught(schema, mutate, expected):
    bad = copy.deepcopy(CONTACT)
    mutate(bad)
    problems = schema.validate(bad, "contact")
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda e: e.update(type="recurring"), "'recurring' is not a member of eventType"),
        (lambda e: e.update(showAs="Busy"), "'Busy' is not a member of freeBusyStatus"),
        (lambda e: e["recurrence"]["pattern"].update(daysOfWeek=["mon"]), "'mon' is not a member of dayOfWeek"),
        (lambda e: e["recurrence"]["range"].update(startDate="2026-12-14T00:00:00Z"), "not a valid Edm.Date"),
        (lambda e: e.update(isAllDay="false"), "Edm.Boolean expects true or false"),
        (lambda e: e.update(reminderMinutesBeforeStart=1.5), "Edm.Int32 expects an integer"),
        (lambda e: e.update(cancelledOccurrences=None), "null is not allowed"),
        (lambda e: e["exceptionOccurrences"][0].update(subjet="x"), "event has no property 'subjet'"),
        (lambda e: e.update({"@odata.type": "#microsoft.graph.contact"}), "is not a microsoft.graph.event"),
        (lambda e: e["start"].update(zone="UTC"), "dateTimeTimeZone has no property 'zone'"),
    ],
)
def test_event_mistakes_are_caught(schema, mutate, expected):
    bad = copy.deepcopy(EVENT)
    mutate(bad)
    problems = schema.validate(bad, "event")
    assert any(expected in p for p in problems), problems


def test_error_bodies_are_checked():
    assert graph_schema.validate_error({"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}}) == []
    assert graph_schema.validate_error({"error": "denied"})
    assert graph_schema.validate_error({"error": {"code": "", "message": "x"}})


def test_urls_map_to_the_types_they_serve():
    assert type_for_path("/users/a@b/contactFolders/AAM=/contacts/delta") == "contact"
    assert type_for_path("/users/a@b/contactFolders/AAM=/childFolders") == "contactFolder"
    assert type_for_path("/users/a@b/calendarView/delta") == "event"
    assert type_for_path("/users/a@b/calendarView/delta()") == "event"
    assert type_for_path("/users/a@b/events/AAM=/instances") == "event"
    assert type_for_path("/users/a@b/calendar") == "calendar"
    assert type_for_path("/users/a@b") == "user"
    assert type_for_path("/subscriptions") is None
    assert type_for_path("/users/a@b/mailFolders/inbox/messages") is None
    assert type_for_path("/users/a@b/contacts/AAM=/photo") is None


def test_the_check_flags_a_bad_answer_and_an_unknown_url(schema):
    check = SchemaCheck("https://127.0.0.1:1/v1.0")
    bad = b'{"id": "x", "givenname": "Ada"}'
    check.check("GET", "https://127.0.0.1:1/v1.0/users/a/contacts/x", 200, "application/json", bad, b"")
    check.check("GET", "https://127.0.0.1:1/v1.0/users/a/mailFolders", 200, "application/json", b'{"value": []}', b"")
    check.check("GET", "https://127.0.0.1:1/v1.0/users/a/contacts/x", 200, "application/json", b"{not json", b"")
    batch_req = b'{"requests": [{"id": "1", "method": "GET", "url": "/users/a/contacts/x"}]}'
    batch_ans = b'{"responses": [{"id": "1", "status": 200, "body": {"id": "x", "surName": "L"}}]}'
    check.check("POST", "https://127.0.0.1:1/v1.0/$batch", 200, "application/json", batch_ans, batch_req)
    problems = check.take_problems()
    assert any("no property 'givenname'" in p for p in problems), problems
    assert any("no schema type is known" in p for p in problems), problems
    assert any("not JSON" in p for p in problems), problems
    assert any("item 1" in p and "no property 'surName'" in p for p in problems), problems


def test_the_simulator_entities_reach_the_check(graph, mailbox):
    """Folder, contact, event and calendar answers of the simulator itself are validated."""
    graph_schema.need_schema()
    from msgraph.generated.models.contact import Contact
    from msgraph.generated.models.contact_folder import ContactFolder
    from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
    from msgraph.generated.models.event import Event

    before = dict(graph.check.validated)
    user = graph.client.users.by_user_id(mailbox)
    folder = graph.run(user.contact_folders.post(ContactFolder(display_name="Salesforce_Sync")))
    graph.run(user.contact_folders.by_contact_folder_id(folder.id).contacts.post(Contact(given_name="Ada")))
    graph.run(user.events.post(Event(
        subject="Call",
        start=DateTimeTimeZone(date_time="2027-01-04T09:00:00", time_zone="UTC"),
        end=DateTimeTimeZone(date_time="2027-01-04T09:30:00", time_zone="UTC"),
    )))
    graph.run(user.calendar.get())
    graph.run(user.events.get())
    after = graph.check.validated
    for type_name in ("contactFolder", "contact", "event", "calendar"):
        assert after.get(type_name, 0) > before.get(type_name, 0), (type_name, before, after)
