"""exchangelib against the simulator: calendar items, recurring series, occurrences, views."""

import datetime

import pytest
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorCalendarOccurrenceIsDeletedFromRecurrence
from exchangelib.items import CalendarItem
from exchangelib.recurrence import NumberedPattern, Recurrence, WeeklyPattern
from exchangelib.fields import MONDAY

UTC = EWSTimeZone("UTC")


def at(day, hour):
    return EWSDateTime(2026, 3, day, hour, 0, tzinfo=UTC)


def test_weekly_series_with_modified_and_deleted_occurrence(sim):
    acc = sim.account("user1@contoso.test")
    cal = acc.calendar
    master = CalendarItem(
        folder=cal,
        subject="Weekly pipeline review",
        start=at(2, 9),  # Monday 2 March 2026
        end=at(2, 10),
        location="Room 1",
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[MONDAY]),
            boundary=NumberedPattern(start=datetime.date(2026, 3, 2), number=6),
        ),
        sensitivity="Private",
    )
    master.save()
    master = cal.get(id=master.id)
    assert master.type == "RecurringMaster"
    assert master.first_occurrence.start == at(2, 9)
    assert master.last_occurrence.start == EWSDateTime(2026, 4, 6, 9, 0, tzinfo=UTC)
    assert master.sensitivity == "Private"

    third = master.occurrence(index=3)
    third.refresh()
    assert third.type == "Occurrence"
    assert third.start == at(16, 9)
    third.subject = "Moved review"
    third.start = at(16, 14)
    third.end = at(16, 15)
    third.save(update_fields=["subject", "start", "end"])

    fourth = master.occurrence(index=4)
    fourth.refresh()
    fourth.delete()
    with pytest.raises(ErrorCalendarOccurrenceIsDeletedFromRecurrence):
        master.occurrence(index=4).refresh()

    master.refresh()
    assert [o.start for o in master.modified_occurrences] == [at(16, 14)]
    assert [o.start for o in master.deleted_occurrences] == [at(23, 9)]

    view = list(cal.view(start=at(1, 0), end=EWSDateTime(2026, 4, 1, tzinfo=UTC)))
    assert [(v.subject, v.start) for v in view] == [
        ("Weekly pipeline review", at(2, 9)),
        ("Weekly pipeline review", at(9, 9)),
        ("Moved review", at(16, 14)),
        ("Weekly pipeline review", at(30, 9)),
    ]
    assert [v.type for v in view] == ["Occurrence", "Occurrence", "Exception", "Occurrence"]

    # A new pattern drops the old exceptions.
    master.recurrence = Recurrence(
        pattern=WeeklyPattern(interval=1, weekdays=[MONDAY]),
        boundary=NumberedPattern(start=datetime.date(2026, 3, 2), number=2),
    )
    master.save(update_fields=["recurrence"])
    master.refresh()
    assert master.modified_occurrences is None and master.deleted_occurrences is None
    assert master.last_occurrence.start == at(9, 9)


def test_single_all_day_and_attendees_and_view_window(sim):
    acc = sim.account("user2@contoso.test")
    cal = acc.calendar
    allday = CalendarItem(
        folder=cal,
        subject="Offsite",
        start=EWSDateTime(2026, 5, 4, 0, 0, tzinfo=UTC),
        end=EWSDateTime(2026, 5, 5, 0, 0, tzinfo=UTC),
        is_all_day=True,
    )
    allday.save()
    meeting = CalendarItem(
        folder=cal,
        subject="Customer call",
        start=EWSDateTime(2026, 5, 6, 15, 0, tzinfo=UTC),
        end=EWSDateTime(2026, 5, 6, 16, 0, tzinfo=UTC),
        required_attendees=["ada@example.com", "alan@example.com"],
    )
    meeting.save()
    got = cal.get(id=meeting.id)
    assert sorted(a.mailbox.email_address for a in got.required_attendees) == [
        "ada@example.com",
        "alan@example.com",
    ]
    assert cal.get(id=allday.id).is_all_day is True
    may4 = list(cal.view(start=EWSDateTime(2026, 5, 4, tzinfo=UTC), end=EWSDateTime(2026, 5, 5, tzinfo=UTC)))
    assert [v.subject for v in may4] == ["Offsite"]
    both = list(cal.view(start=EWSDateTime(2026, 5, 1, tzinfo=UTC), end=EWSDateTime(2026, 6, 1, tzinfo=UTC)))
    assert [v.subject for v in both] == ["Offsite", "Customer call"]


def test_series_in_a_local_zone_keeps_wall_clock_time_across_dst(sim):
    berlin = EWSTimeZone("Europe/Berlin")
    acc = sim.account("user1@contoso.test")
    master = CalendarItem(
        folder=acc.calendar,
        subject="Stand-up",
        start=EWSDateTime(2026, 3, 23, 9, 0, tzinfo=berlin),
        end=EWSDateTime(2026, 3, 23, 9, 15, tzinfo=berlin),
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[MONDAY]),
            boundary=NumberedPattern(start=datetime.date(2026, 3, 23), number=3),
        ),
    )
    master.save()
    view = acc.calendar.view(start=EWSDateTime(2026, 3, 20, tzinfo=UTC), end=EWSDateTime(2026, 4, 20, tzinfo=UTC))
    local = [v.start.astimezone(berlin) for v in view]
    assert [(t.day, t.hour, t.minute) for t in local] == [(23, 9, 0), (30, 9, 0), (6, 9, 0)]
