"""exchangelib against the simulator where Exchange's behaviour is something a sync engine
notices: multi-valued restrictions, length limits, emptied addresses, all-day events, calendar
view edges, DeleteItem change keys, folder shapes, renames and moves, id formats."""

import datetime

import pytest
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.folders import Contacts
from exchangelib.items import CalendarItem, Contact

USER = "user1@contoso.test"


def test_filter_on_categories_finds_items_carrying_the_value(sim):
    a = sim.account(USER)
    Contact(folder=a.contacts, given_name="Ada", display_name="Ada", categories=["Red", "Salesforce"]).save()
    Contact(folder=a.contacts, given_name="Bob", display_name="Bob", categories=["Blue"]).save()
    Contact(folder=a.contacts, given_name="Cy", display_name="Cy").save()
    found = list(a.contacts.filter(categories__contains=["Salesforce"]).only("given_name"))
    assert [c.given_name for c in found] == ["Ada"]
    found = list(a.contacts.filter(categories="Blue").only("given_name"))
    assert [c.given_name for c in found] == ["Bob"]
    assert a.contacts.filter(categories="Green").count() == 0


def test_address_with_every_field_deleted_is_gone(sim):
    from exchangelib.indexed_properties import PhysicalAddress

    a = sim.account(USER)
    c = Contact(
        folder=a.contacts,
        given_name="Ada",
        display_name="Ada",
        physical_addresses=[
            PhysicalAddress(label="Business", street="1 Main St", city="Springfield"),
            PhysicalAddress(label="Home", city="Shelbyville"),
        ],
    )
    c.save()
    c.physical_addresses = [PhysicalAddress(label="Home", city="Shelbyville")]
    c.save(update_fields=["physical_addresses"])
    back = a.contacts.get(id=c.id)
    assert [p.label for p in back.physical_addresses] == ["Home"]
    c.physical_addresses = None
    c.save(update_fields=["physical_addresses"])
    assert a.contacts.get(id=c.id).physical_addresses is None


def test_calendar_view_includes_item_ending_at_view_start(sim):
    a = sim.account(USER)
    utc = EWSTimeZone("UTC")
    CalendarItem(
        folder=a.calendar,
        subject="Nine",
        start=EWSDateTime(2026, 3, 2, 9, tzinfo=utc),
        end=EWSDateTime(2026, 3, 2, 10, tzinfo=utc),
    ).save()
    seen = a.calendar.view(
        start=EWSDateTime(2026, 3, 2, 10, tzinfo=utc), end=EWSDateTime(2026, 3, 2, 12, tzinfo=utc)
    )
    assert [i.subject for i in seen] == ["Nine"]
    later = a.calendar.view(
        start=EWSDateTime(2026, 3, 2, 10, 0, 1, tzinfo=utc), end=EWSDateTime(2026, 3, 2, 12, tzinfo=utc)
    )
    assert list(later) == []


def test_long_subject_is_cut_to_255(sim):
    from exchangelib.fields import CharField

    a = sim.account(USER)
    # exchangelib refuses a subject over 255 characters itself; lift its check to see what
    # the server does (Exchange cuts it).
    field = CalendarItem.get_field_by_fieldname("subject")
    old = field.max_length
    field.max_length = 10_000
    try:
        utc = EWSTimeZone("UTC")
        item = CalendarItem(
            folder=a.calendar,
            subject="x" * 300,
            start=EWSDateTime(2026, 3, 2, 9, tzinfo=utc),
            end=EWSDateTime(2026, 3, 2, 10, tzinfo=utc),
        )
        item.save()
        assert a.calendar.get(id=item.id).subject == "x" * 255
    finally:
        field.max_length = old
    assert isinstance(field, CharField)


def test_delete_with_a_stale_change_key_is_refused(sim):
    from exchangelib.errors import ErrorStaleObject

    a = sim.account(USER)
    c = Contact(folder=a.contacts, given_name="Ada", display_name="Ada")
    c.save()
    stale = c.changekey
    c.surname = "Lovelace"
    c.save(update_fields=["surname"])
    fresh = c.changekey
    c.changekey = stale
    with pytest.raises(ErrorStaleObject):
        c.delete()
    c.changekey = fresh
    c.delete()
    assert a.contacts.all().count() == 0


def test_rename_move_and_empty_the_sync_folder(sim):
    a = sim.account(USER)
    f = Contacts(parent=a.contacts, name="Salesforce_Sync")
    f.save()
    Contact(folder=f, given_name="Ada", display_name="Ada").save()
    old_id = f.id
    f.name = "CRM contacts"
    f.save(update_fields=["name"])
    assert f.id == old_id
    a.root.refresh()
    assert (a.contacts / "CRM contacts").id == old_id
    f.move(a.msg_folder_root)
    a.root.refresh()
    assert (a.msg_folder_root / "CRM contacts").id == old_id
    assert f.total_count == 1 or f.all().count() == 1
    f.empty()
    assert f.all().count() == 0



def test_all_day_event_is_snapped_to_midnight_in_its_zone(sim):
    a = sim.account(USER)
    berlin = EWSTimeZone("Europe/Berlin")
    item = CalendarItem(
        folder=a.calendar,
        subject="Holiday",
        is_all_day=True,
        start=EWSDateTime(2026, 6, 6, 15, tzinfo=berlin),
        end=EWSDateTime(2026, 6, 6, 17, tzinfo=berlin),
    )
    item.save()
    back = a.calendar.get(id=item.id)
    assert back.is_all_day
    # exchangelib hands an all-day item's times back as dates in the event's zone, the end as
    # the last day it covers (the server's end is the midnight after it).
    start, end = back.start, back.end
    if isinstance(start, datetime.datetime):
        start, end = start.astimezone(berlin), end.astimezone(berlin)
        assert (start.hour, start.minute, end.hour, end.minute) == (0, 0, 0, 0)
        start, end = start.date(), end.date()
    assert (start, end) == (datetime.date(2026, 6, 6), datetime.date(2026, 6, 6))
    raw = a.calendar.filter(subject="Holiday").only("start", "end")
    assert raw.count() == 1


def test_mailbox_zone_shows_which_all_day_items_are_whole_days_there(sim):
    r = sim.control("PUT", "/mailboxes/time_zone", {"mailbox": USER, "time_zone": "Europe/Berlin"})
    assert r.status_code == 200, r.text
    assert sim.control("PUT", "/mailboxes/time_zone", {"time_zone": "Mars/Olympus"}).status_code == 400
    a = sim.account(USER)
    day = datetime.date(2026, 6, 6)
    for subject, zone in (("Made in Berlin", "Europe/Berlin"), ("Made in UTC", "UTC")):
        tz = EWSTimeZone(zone)
        CalendarItem(
            folder=a.calendar,
            subject=subject,
            is_all_day=True,
            start=EWSDateTime(2026, 6, 6, tzinfo=tz),
            end=EWSDateTime(2026, 6, 7, tzinfo=tz),
        ).save()
    # Both read back all-day on their day, each in its own zone...
    for subject in ("Made in Berlin", "Made in UTC"):
        back = a.calendar.get(subject=subject)
        assert back.is_all_day and back.start == day, (subject, back.start)
    # ...but only the one made in Berlin is whole days to the owner in Berlin: the other shows
    # from 02:00 to 02:00, across two days.
    view = sim.control("POST", "/calendar/view", {"mailbox": USER}).json()
    assert view["time_zone"] == "Europe/Berlin"
    seen = {i["subject"]: (i["start"], i["whole_days"]) for i in view["items"]}
    assert seen["Made in Berlin"] == ("2026-06-06T00:00:00", True)
    assert seen["Made in UTC"] == ("2026-06-06T02:00:00", False)


def test_ids_have_exchange_shape_and_convert(sim):
    import base64

    from exchangelib.properties import ENTRY_ID, EWS_ID, HEX_ENTRY_ID, AlternateId

    a = sim.account(USER)
    c = Contact(folder=a.contacts, given_name="Ada", display_name="Ada")
    c.save()
    assert 140 <= len(c.id) <= 170 and len(c.changekey) == 40
    base64.b64decode(c.id, validate=True)
    for fmt in (ENTRY_ID, HEX_ENTRY_ID):
        (alt,) = a.protocol.convert_ids([AlternateId(id=c.id, format=EWS_ID, mailbox=USER)], destination_format=fmt)
        assert alt.format == fmt
        (back,) = a.protocol.convert_ids([AlternateId(id=alt.id, format=fmt, mailbox=USER)], destination_format=EWS_ID)
        assert back.id == c.id


def test_server_knows_the_common_windows_zones(sim):
    a = sim.account(USER)
    zones = {tz.id for tz in a.protocol.get_timezones(return_full_timezone_data=False)}
    assert {"Tokyo Standard Time", "Romance Standard Time", "AUS Eastern Standard Time"} <= zones


def test_recurring_master_is_not_flagged_recurring_for_its_organizer(sim):
    from exchangelib.recurrence import DailyPattern, Recurrence

    a = sim.account(USER)
    utc = EWSTimeZone("UTC")
    master = CalendarItem(
        folder=a.calendar,
        subject="Daily",
        start=EWSDateTime(2026, 3, 2, 9, tzinfo=utc),
        end=EWSDateTime(2026, 3, 2, 10, tzinfo=utc),
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=datetime.date(2026, 3, 2), number=3),
    )
    master.save()
    back = a.calendar.get(id=master.id)
    assert back.type == "RecurringMaster" and back.is_recurring is False
