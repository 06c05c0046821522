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
