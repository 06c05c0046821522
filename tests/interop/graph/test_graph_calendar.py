"""msgraph-sdk against the simulator's calendar: a weekly series with one occurrence moved and
one cancelled, read back through /instances, calendarView, calendarView delta (before and after
the changes) and the master's exceptionOccurrences and cancelledOccurrences."""

import datetime as dt

import pytest
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.day_of_week import DayOfWeek
from msgraph.generated.models.event import Event
from msgraph.generated.models.event_type import EventType
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.patterned_recurrence import PatternedRecurrence
from msgraph.generated.models.recurrence_pattern import RecurrencePattern
from msgraph.generated.models.recurrence_pattern_type import RecurrencePatternType
from msgraph.generated.models.recurrence_range import RecurrenceRange
from msgraph.generated.models.recurrence_range_type import RecurrenceRangeType
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import CalendarViewRequestBuilder
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder
from msgraph.generated.users.item.events.item.event_item_request_builder import EventItemRequestBuilder
from msgraph.generated.users.item.events.item.instances.instances_request_builder import InstancesRequestBuilder

from graph_sim import cfg, odata_error

CRM_ID = "String {6d1c3b4e-9f7a-4c1e-8a55-2f0e7c9b1d42} Name CrmId"
OCCURRENCES = 6


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(dtz: DateTimeTimeZone) -> dt.datetime:
    """A dateTimeTimeZone in UTC (what the simulator answers without Prefer: outlook.timezone)."""
    assert dtz.time_zone in ("UTC", "Etc/UTC", "Coordinated Universal Time"), dtz.time_zone
    return dt.datetime.fromisoformat(dtz.date_time.split(".")[0]).replace(tzinfo=dt.timezone.utc)


@pytest.fixture
def series(graph, mailbox):
    """A weekly Monday 10:00–10:30 UTC series of six, starting two Mondays from now."""
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today + dt.timedelta(days=(7 - today.weekday()) % 7 + 7, hours=10)
    master = graph.run(
        graph.client.users.by_user_id(mailbox).events.post(
            Event(
                subject="Weekly pipeline review",
                body=ItemBody(content_type=BodyType.Text, content="Opportunities closing this quarter"),
                start=DateTimeTimeZone(date_time=first.strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
                end=DateTimeTimeZone(
                    date_time=(first + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"
                ),
                recurrence=PatternedRecurrence(
                    pattern=RecurrencePattern(
                        type=RecurrencePatternType.Weekly, interval=1, days_of_week=[DayOfWeek.Monday]
                    ),
                    range=RecurrenceRange(
                        type=RecurrenceRangeType.Numbered,
                        start_date=first.date(),
                        number_of_occurrences=OCCURRENCES,
                    ),
                ),
                single_value_extended_properties=[
                    SingleValueLegacyExtendedProperty(id=CRM_ID, value="00U000000000001AAA")
                ],
            )
        )
    )
    assert master.type == EventType.SeriesMaster
    window = (first - dt.timedelta(days=1), first + dt.timedelta(days=7 * OCCURRENCES))
    return master, first, window


def instances(graph, mailbox, master_id, window):
    q = InstancesRequestBuilder.InstancesRequestBuilderGetQueryParameters(
        start_date_time=iso(window[0]), end_date_time=iso(window[1])
    )
    page = graph.run(graph.client.users.by_user_id(mailbox).events.by_event_id(master_id).instances.get(cfg(q)))
    return sorted(page.value, key=lambda e: parse(e.start))


def delta_round(graph, mailbox, window=None, link=None, page_size=3):
    builder = graph.client.users.by_user_id(mailbox).calendar_view.delta
    config = cfg(
        None if link else DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            start_date_time=iso(window[0]), end_date_time=iso(window[1])
        ),
        headers={"Prefer": f"odata.maxpagesize={page_size}"},
    )
    request = builder.with_url(link) if link else builder
    entries = []
    while True:
        page = graph.run(request.get(config))
        assert len(page.value or []) <= page_size
        entries.extend(page.value or [])
        if page.odata_next_link:
            request, config = builder.with_url(page.odata_next_link), cfg(headers={"Prefer": f"odata.maxpagesize={page_size}"})
            continue
        assert page.odata_delta_link
        return entries, page.odata_delta_link


def removed(e):
    return (e.additional_data or {}).get("@removed")


def move_and_cancel(graph, mailbox, occurrences):
    """Moves the second occurrence a day later at 14:00 and cancels the fourth."""
    moved, cancelled = occurrences[1], occurrences[3]
    new_start = parse(moved.start) + dt.timedelta(days=1, hours=4)
    events = graph.client.users.by_user_id(mailbox).events
    graph.run(
        events.by_event_id(moved.id).patch(
            Event(
                start=DateTimeTimeZone(date_time=new_start.strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
                end=DateTimeTimeZone(
                    date_time=(new_start + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"
                ),
            )
        )
    )
    graph.run(events.by_event_id(cancelled.id).delete())
    return moved, cancelled, new_start


def test_series_instances(graph, mailbox, series):
    master, first, window = series
    occ = instances(graph, mailbox, master.id, window)
    assert len(occ) == OCCURRENCES
    assert [parse(o.start) for o in occ] == [first + dt.timedelta(weeks=i) for i in range(OCCURRENCES)]
    assert all(o.type == EventType.Occurrence and o.series_master_id == master.id for o in occ)
    assert len({o.id for o in occ}) == OCCURRENCES


def test_moved_and_cancelled_occurrences_through_calendar_view_delta_and_the_master(graph, mailbox, series):
    master, first, window = series
    before, link = delta_round(graph, mailbox, window)
    live = [e for e in before if not removed(e)]
    assert len(live) == OCCURRENCES, "calendarView delta expands the series"
    assert all(e.type == EventType.Occurrence and e.series_master_id == master.id for e in live)
    assert not any(e.type == EventType.SeriesMaster for e in before), "the master never shows in a view"
    # Occurrences in delta carry only their ids and times; the rest is the master's.
    assert all(e.subject is None and e.start and e.end for e in live)

    moved, cancelled, new_start = move_and_cancel(graph, mailbox, instances(graph, mailbox, master.id, window))

    # Incremental round: the moved occurrence as an exception, the cancelled one removed.
    changes, _ = delta_round(graph, mailbox, link=link)
    exceptions = [e for e in changes if not removed(e) and e.type == EventType.Exception]
    assert len(exceptions) == 1 and parse(exceptions[0].start) == new_start
    assert exceptions[0].series_master_id == master.id
    assert cancelled.id in [e.id for e in changes if removed(e)]

    # A fresh initial round sees the series as it now is.
    after, _ = delta_round(graph, mailbox, window)
    live = [e for e in after if not removed(e)]
    assert len(live) == OCCURRENCES - 1
    assert cancelled.id not in [e.id for e in live]
    starts = sorted(parse(e.start) for e in live)
    expected = sorted(
        [first + dt.timedelta(weeks=i) for i in range(OCCURRENCES) if i not in (1, 3)] + [new_start]
    )
    assert starts == expected
    assert [e.type for e in live].count(EventType.Exception) == 1

    # The master with its exceptions and cancellations, as a sync reads it back.
    q = EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(
        select=["subject", "start", "end", "type", "recurrence", "cancelledOccurrences"],
        expand=["exceptionOccurrences"],
    )
    got = graph.run(graph.client.users.by_user_id(mailbox).events.by_event_id(master.id).get(cfg(q)))
    assert got.type == EventType.SeriesMaster and got.subject == "Weekly pipeline review"
    assert got.recurrence.pattern.type == RecurrencePatternType.Weekly
    [exception] = got.exception_occurrences
    assert exception.type == EventType.Exception and parse(exception.start) == new_start
    assert exception.series_master_id == master.id
    assert len(got.cancelled_occurrences) == 1


def test_calendar_view_has_full_occurrences(graph, mailbox, series):
    master, first, window = series
    move_and_cancel(graph, mailbox, instances(graph, mailbox, master.id, window))
    q = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
        start_date_time=iso(window[0]), end_date_time=iso(window[1])
    )
    page = graph.run(graph.client.users.by_user_id(mailbox).calendar_view.get(cfg(q)))
    assert len(page.value) == OCCURRENCES - 1
    assert all(e.subject == "Weekly pipeline review" for e in page.value)
    assert sorted(e.type for e in page.value) == sorted([EventType.Occurrence] * 4 + [EventType.Exception])


def test_calendar_view_delta_needs_its_window(graph, mailbox):
    with pytest.raises(ODataError) as e:
        graph.run(graph.client.users.by_user_id(mailbox).calendar_view.delta.get())
    assert odata_error(e)[0] == 400


def test_event_extended_property_expand_and_filter(graph, mailbox, series):
    master, _, _ = series
    events = graph.client.users.by_user_id(mailbox).events
    expand = f"singleValueExtendedProperties($filter=id eq '{CRM_ID}')"
    got = graph.run(events.by_event_id(master.id).get(
        cfg(EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(expand=[expand]))
    ))
    [prop] = got.single_value_extended_properties
    assert prop.value == "00U000000000001AAA"
    found = graph.run(events.get(cfg(EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
        filter=f"singleValueExtendedProperties/Any(ep: ep/id eq '{CRM_ID}' and ep/value eq '00U000000000001AAA')"
    ))))
    assert [e.id for e in found.value] == [master.id]


def test_primary_calendar(graph, mailbox):
    cal = graph.run(graph.client.users.by_user_id(mailbox).calendar.get())
    assert cal.id and cal.name


def test_calendar_view_in_the_preferred_time_zone(graph, mailbox, series):
    """`Prefer: outlook.timezone` moves start and end into that zone (UTC-8 in winter)."""
    master, first, window = series
    q = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
        start_date_time=iso(window[0]), end_date_time=iso(window[1])
    )
    page = graph.run(graph.client.users.by_user_id(mailbox).calendar_view.get(
        cfg(q, headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'})
    ))
    [e, *_] = sorted(page.value, key=lambda e: e.start.date_time)
    assert e.start.time_zone == "Pacific Standard Time"
    local = first - dt.timedelta(hours=8)
    assert e.start.date_time.startswith(local.strftime("%Y-%m-%dT%H:%M:%S")), e.start.date_time


def test_calendar_view_delta_reports_changes_outside_its_window_as_removed(graph, mailbox):
    """Graph's documented quirk: an event added outside the window, or moved out of it, comes
    back under @removed (a sync filters those by date, it does not delete blindly)."""
    events = graph.client.users.by_user_id(mailbox).events

    def event(day, subject):
        start = dt.datetime(2027, 1, 1, 10, tzinfo=dt.timezone.utc) + dt.timedelta(days=day)
        return graph.run(events.post(Event(
            subject=subject,
            start=DateTimeTimeZone(date_time=start.strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
            end=DateTimeTimeZone(date_time=(start + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
        )))

    window = (dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    inside = event(9, "Inside")
    before, link = delta_round(graph, mailbox, window)
    assert [(e.id, e.subject, e.type) for e in before] == [(inside.id, "Inside", EventType.SingleInstance)]

    outside = event(60, "Outside")
    later = dt.datetime(2027, 4, 10, 10, tzinfo=dt.timezone.utc)
    graph.run(events.by_event_id(inside.id).patch(Event(
        start=DateTimeTimeZone(date_time=later.strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
        end=DateTimeTimeZone(date_time=(later + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
    )))
    changes, _ = delta_round(graph, mailbox, link=link)
    assert {e.id for e in changes} == {inside.id, outside.id}
    assert all(removed(e) for e in changes)
