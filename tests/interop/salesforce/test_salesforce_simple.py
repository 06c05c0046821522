"""simple-salesforce (a client nobody here wrote) against the Salesforce simulator."""

import datetime
import pathlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sf_sim import Sim


def test_jwt_bearer_login_and_identity(sim, sf):
    assert sf.sf_instance == sim.host_port
    users = sf.query("SELECT Id, Username, Email, Profile.Name FROM User ORDER BY Username")
    names = [u["Username"] for u in users["records"]]
    assert sim.info["integration_user"]["username"] in names
    integration = next(u for u in users["records"] if u["Username"] == sim.info["integration_user"]["username"])
    assert integration["Profile"]["Name"] == "System Administrator"
    assert integration["attributes"]["type"] == "User"
    names = {o["name"]: o["keyPrefix"] for o in sf.describe()["sobjects"]}
    assert names["Contact"] == "003" and names["Event"] == "00U" and names["EventRelation"] == "0RE"
    fields = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert fields["LastName"]["nillable"] is False and fields["Exsync_Id__c"]["externalId"] is True
    assert fields["SystemModstamp"]["createable"] is False


def test_jwt_signed_by_another_key_is_refused(sim, tmp_path):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "other.pem"
    key_file.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(SalesforceAuthenticationFailed) as err:
        Salesforce(
            username=sim.info["integration_user"]["username"],
            consumer_key=sim.info["client_id"],
            privatekey_file=str(key_file),
            domain=sim.domain,
            session=sim.session(),
        )
    assert "invalid_grant" in str(err.value)


def test_jwt_for_wrong_client_id_is_refused(sim):
    with pytest.raises(SalesforceAuthenticationFailed) as err:
        Salesforce(
            username=sim.info["integration_user"]["username"],
            consumer_key="not-the-app",
            privatekey_file=sim.info["private_key_file"],
            domain=sim.domain,
            session=sim.session(),
        )
    assert "invalid_client_id" in str(err.value)


def test_client_credentials_login(sim):
    sf = Salesforce(
        consumer_key=sim.info["client_id"],
        consumer_secret=sim.info["client_secret"],
        domain=sim.domain,
        session=sim.session(),
    )
    me = sf.query("SELECT Id FROM User WHERE Username = '%s'" % sim.info["integration_user"]["username"])
    assert me["totalSize"] == 1
    with pytest.raises(SalesforceAuthenticationFailed):
        Salesforce(consumer_key=sim.info["client_id"], consumer_secret="wrong", domain=sim.domain, session=sim.session())


def test_contact_crud_and_query_all_sees_deleted(sf):
    created = sf.Contact.create({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.test"})
    assert created["success"] and created["id"].startswith("003") and len(created["id"]) == 18
    cid = created["id"]
    got = sf.Contact.get(cid)
    assert got["Name"] == "Ada Lovelace" and got["IsDeleted"] is False
    assert got["CreatedDate"] == got["SystemModstamp"]
    assert sf.Contact.update(cid, {"Title": "Analyst"}) == 204
    again = sf.Contact.get(cid)
    assert again["Title"] == "Analyst"
    assert again["SystemModstamp"] >= got["SystemModstamp"]
    # 15-character ids work too.
    assert sf.Contact.get(cid[:15])["Id"] == cid
    assert sf.Contact.delete(cid) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(cid)
    live = sf.query(f"SELECT Id FROM Contact WHERE Id = '{cid}'")
    assert live["totalSize"] == 0
    everything = sf.query_all(f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{cid}'", include_deleted=True)
    assert everything["records"][0]["IsDeleted"] is True


def test_relationship_fields_and_where_operators(sf):
    account = sf.Account.create({"Name": "Analytical Engines Ltd"})["id"]
    sf.Contact.create({"FirstName": "Charles", "LastName": "Babbage", "AccountId": account, "Email": "cb@engines.test"})
    sf.Contact.create({"FirstName": "Mary", "LastName": "Somerville", "Email": "mary@other.test"})
    q = sf.query(
        "SELECT Id, LastName, Account.Name FROM Contact WHERE (Email LIKE '%engines.test' OR LastName = 'somerville') "
        "AND NOT LastName IN ('Nobody') ORDER BY LastName DESC"
    )
    names = [r["LastName"] for r in q["records"]]
    assert names == ["Somerville", "Babbage"]
    assert q["records"][1]["Account"]["Name"] == "Analytical Engines Ltd"
    assert q["records"][0]["Account"] is None
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT00:00:00Z")
    recent = sf.query(f"SELECT COUNT() FROM Contact WHERE CreatedDate >= {today} AND LastName != null")
    assert recent["totalSize"] >= 2
    assert sf.query("SELECT COUNT() FROM Contact WHERE CreatedDate = LAST_N_DAYS:1")["totalSize"] >= 2
    assert sf.query("SELECT COUNT() FROM Contact WHERE CreatedDate > TODAY")["totalSize"] == 0


def test_soql_errors_have_salesforce_shapes(sf):
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id FROM Contact WHERE")
    assert err.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Nope FROM Contact")
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id FROM Nothing")
    assert err.value.content[0]["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.create({"FirstName": "No last name"})
    assert err.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert err.value.content[0]["fields"] == ["LastName"]


def test_query_paging_with_batch_size(sim, sf):
    marker = "Paging%d" % datetime.datetime.now().timestamp()
    for start in range(0, 450, 200):
        records = [
            {"attributes": {"type": "Contact"}, "LastName": f"{marker}-{i:04d}"} for i in range(start, min(start + 200, 450))
        ]
        results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})
        assert all(r["success"] for r in results)
    soql = f"SELECT Id, LastName FROM Contact WHERE LastName LIKE '{marker}%' ORDER BY LastName"
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert first["totalSize"] == 450 and first["done"] is False and len(first["records"]) == 200
    assert first["nextRecordsUrl"].startswith("/services/data/v")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 200 and second["records"][0]["LastName"] == f"{marker}-0200"
    everything = sf.query_all(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    names = [r["LastName"] for r in everything["records"]]
    assert names == [f"{marker}-{i:04d}" for i in range(450)]
    # Default page size is 2000: one page.
    assert sf.query(soql)["done"] is True


def test_event_crud_timed_all_day_and_series(sf):
    timed = sf.Event.create(
        {"Subject": "Review", "StartDateTime": "2031-03-04T09:00:00Z", "EndDateTime": "2031-03-04T10:30:00Z", "ShowAs": "Free"}
    )["id"]
    assert timed.startswith("00U")
    e = sf.Event.get(timed)
    assert e["DurationInMinutes"] == 90 and e["ActivityDate"] == "2031-03-04" and e["IsAllDayEvent"] is False
    sf.Event.update(timed, {"StartDateTime": "2031-03-04T11:00:00Z"})
    assert sf.Event.get(timed)["EndDateTime"] == "2031-03-04T12:30:00.000+0000"
    all_day = sf.Event.create({"Subject": "Offsite", "IsAllDayEvent": True, "ActivityDate": "2031-03-05", "DurationInMinutes": 2880})["id"]
    a = sf.Event.get(all_day)
    assert a["StartDateTime"] == "2031-03-05T00:00:00.000+0000" and a["EndDateTime"] == "2031-03-06T00:00:00.000+0000"
    series = sf.Event.create(
        {
            "Subject": "Standup",
            "StartDateTime": "2031-03-03T08:00:00Z",
            "DurationInMinutes": 15,
            "IsRecurrence2": True,
            "Recurrence2PatternText": "RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE",
            "Recurrence2PatternTimeZone": "Europe/Berlin",
        }
    )["id"]
    assert sf.Event.get(series)["Recurrence2PatternVersion"] == "1"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Event.create({"Subject": "no end", "StartDateTime": "2031-03-04T09:00:00Z"})
    assert err.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Event.create({"Subject": "x", "StartDateTime": "2031-03-04T09:00:00Z", "DurationInMinutes": 5, "ShowAs": "Sleeping"})
    assert err.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    contact = sf.Contact.create({"LastName": "Invitee", "Email": "invitee@example.test"})["id"]
    rel = sf.EventRelation.create({"EventId": timed, "RelationId": contact})["id"]
    assert rel.startswith("0RE")
    rels = sf.query(f"SELECT Id, Relation.Email, Status FROM EventRelation WHERE EventId = '{timed}'")
    assert rels["records"][0]["Relation"]["Email"] == "invitee@example.test"
    assert rels["records"][0]["Status"] == "New"
    assert sf.Event.delete(timed) == 204
    assert sf.query(f"SELECT Id FROM EventRelation WHERE EventId = '{timed}'")["totalSize"] == 0


def test_upsert_by_external_id(sf):
    key = "ext-%d" % datetime.datetime.now().timestamp()
    assert sf.Contact.upsert(f"Exsync_Id__c/{key}", {"LastName": "First"}) == 201
    assert sf.Contact.upsert(f"Exsync_Id__c/{key}", {"LastName": "Second"}) == 200
    got = sf.Contact.get_by_custom_id("Exsync_Id__c", key)
    assert got["LastName"] == "Second"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.upsert("LastName/x", {"FirstName": "y"})
    # Exsync_Id__c is unique; Legacy_Id__c is not, and a shared value is ambiguous.
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.create({"LastName": "Twin", "Exsync_Id__c": key})
    assert err.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    sf.Contact.create({"LastName": "Twin A", "Legacy_Id__c": key})
    sf.Contact.create({"LastName": "Twin B", "Legacy_Id__c": key})
    with pytest.raises(SalesforceMoreThanOneRecord) as err:
        sf.Contact.upsert(f"Legacy_Id__c/{key}", {"Title": "ambiguous"})
    assert len(err.value.content) == 2 and all("/sobjects/Contact/003" in url for url in err.value.content)
    assert sf.query(f"SELECT COUNT() FROM Contact WHERE Title = 'ambiguous'")["totalSize"] == 0


def test_collections_per_record_results_and_all_or_none(sf):
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "Good One"},
        {"attributes": {"type": "Contact"}, "LastName": "Bad", "Email": "not-an-address"},
        {"attributes": {"type": "Contact"}, "LastName": "Good Two"},
    ]
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": records})
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    good = [results[0]["id"], results[2]["id"]]
    rolled = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})
    assert [r["success"] for r in rolled] == [False, False, False]
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sf.query("SELECT COUNT() FROM Contact WHERE LastName = 'Good Two'")["totalSize"] == 1
    updates = [{"attributes": {"type": "Contact"}, "id": i, "Title": "Updated"} for i in good]
    assert all(r["success"] for r in sf.restful("composite/sobjects", method="PATCH", json={"records": updates}))
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(good + good[:1])})
    assert [r["success"] for r in deleted] == [True, True, False]
    assert deleted[2]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    too_many = [{"attributes": {"type": "Contact"}, "LastName": "x"}] * 201
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.restful("composite/sobjects", method="POST", json={"records": too_many})
    assert err.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_updated_and_deleted(sf):
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    keep = sf.Contact.create({"LastName": "Kept"})["id"]
    gone = sf.Contact.create({"LastName": "Gone"})["id"]
    sf.Contact.delete(gone)
    end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)
    updated = sf.Contact.updated(start, end)
    assert keep in updated["ids"] and gone not in updated["ids"]
    assert "latestDateCovered" in updated
    deleted = sf.Contact.deleted(start, end)
    deleted_ids = [d["id"] for d in deleted["deletedRecords"]]
    assert gone in deleted_ids and keep not in deleted_ids
    assert "earliestDateAvailable" in deleted
    too_old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=16)
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.deleted(too_old, end)
    assert err.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    sf.Contact.updated(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=29), end)
    with pytest.raises(SalesforceMalformedRequest):
        sf.Contact.updated(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=31), end)


def test_expired_session_is_refreshed_by_the_client(sim, sf):
    sf.query("SELECT Id FROM User")
    old = sf.session_id
    assert sim.control("POST", "/expire-tokens")["expired"] >= 1
    assert sf.query("SELECT Id FROM User")["totalSize"] >= 3
    assert sf.session_id != old


def test_limit_header_and_enforced_allowance(sim, sf):
    sf.query("SELECT Id FROM User")
    usage = sf.api_usage["api-usage"]
    assert usage.total == 100000 and usage.used >= 1
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100000
    sim.control("POST", "/limits", {"exhaust": True})
    with pytest.raises(SalesforceRefusedRequest) as err:
        sf.query("SELECT Id FROM User")
    assert err.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    sim.control("POST", "/limits", {"used": 0})
    sf.query("SELECT Id FROM User")


def test_counters_and_seeding(sim, sf):
    sim.control("POST", "/counters/reset")
    seeded = sim.control(
        "POST",
        "/seed",
        {
            "users": [{"username": "carol@exsync-sim.test", "first_name": "Carol", "last_name": "Cole"}],
            "records": [{"attributes": {"type": "Contact"}, "LastName": "Seeded", "SystemModstamp": "2030-01-01T00:00:00Z"}],
        },
    )
    cid = seeded["records"][0]["id"]
    assert sf.Contact.get(cid)["SystemModstamp"] == "2030-01-01T00:00:00.000+0000"
    carol = sf.query("SELECT Id, Profile.Name FROM User WHERE Username = 'carol@exsync-sim.test'")["records"][0]
    assert carol["Profile"]["Name"] == "Standard User"
    counters = sim.control("GET", "/counters")["counters"]
    assert counters.get("GET sobjects/row") == 1 and counters.get("GET query") == 1


def test_state_survives_a_restart(tmp_path):
    first = Sim(tmp_path).start()
    try:
        sf = first.login()
        cid = sf.Contact.create({"LastName": "Durable"})["id"]
    finally:
        first.stop()
    second = Sim(tmp_path).start()
    try:
        assert second.info["client_id"] == first.info["client_id"]
        assert second.login().Contact.get(cid)["LastName"] == "Durable"
    finally:
        second.stop()


def test_control_api_needs_its_token(sim):
    import requests

    r = requests.get(sim.info["control_url"] + "/counters", verify=sim.info["ca_file"], timeout=10)
    assert r.status_code == 401
    r = requests.get(sim.info["instance_url"] + "/services/data/v59.0/limits", verify=sim.info["ca_file"], timeout=10)
    assert r.status_code == 401 and r.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_injected_latency_errors_and_dropped_connections(sim, sf):
    import time

    import requests

    sim.control("POST", "/faults", {"latency_ms": 300})
    t0 = time.monotonic()
    sf.query("SELECT Id FROM Profile")
    assert time.monotonic() - t0 >= 0.3
    sim.control("POST", "/faults", {"fail_next": 1})
    with pytest.raises(Exception) as err:
        sf.query("SELECT Id FROM Profile")
    assert "SERVER_UNAVAILABLE" in str(err.value)
    sim.control("POST", "/faults", {"drop_next": 1})
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.query("SELECT Id FROM Profile")
    assert sf.query("SELECT Id FROM Profile")["totalSize"] >= 2
    counters = sim.control("GET", "/counters")["counters"]
    assert counters["fault.503"] >= 1 and counters["fault.dropped"] >= 1
