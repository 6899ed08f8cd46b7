"""Replays through Twilio's signature scheme: a captured signed form, re-split or repeated, runs nothing.

Twilio signs the URL followed by each name and value glued together with no separator, so the
same signed bytes can be cut into other fields. Every hostile form here is checked to carry a
signature Twilio's own validator accepts, so what refuses it is the form check, not the HMAC.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from inbound import audit
from outbox import queue
from tests.support.phones import ADMIN, TOKEN, reply_text, sign

SMS = "http://localhost/sms"
STATUS = "http://localhost/sms/status"


def inbound_form(body: str = "help", sid: str | None = None) -> dict[str, str]:
    """An inbound SMS as Twilio posts it, with the fields it adds besides the ones we read."""
    sid = sid or "SM" + uuid.uuid4().hex
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "03049",
        "SmsSid": sid,
        "FromState": "NH",
        "SmsStatus": "received",
        "FromCity": "NASHUA",
        "Body": body,
        "FromCountry": "US",
        "To": "+15005550006",
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "From": ADMIN,
        "ApiVersion": "2010-04-01",
    }


def signed_string(url: str, pairs: list[tuple[str, str]]) -> str:
    """What Twilio's HMAC covers for these pairs (the validator's own concatenation)."""
    names = sorted({name for name, _ in pairs})
    return url + "".join(
        name + value for name in names for value in sorted({v for n, v in pairs if n == name})
    )


def replay(client, url: str, original: dict[str, str], pairs: list[tuple[str, str]]):
    """POST `pairs` carrying the signature Twilio made for `original`, after proving it still validates."""
    assert signed_string(url, pairs) == signed_string(url, list(original.items())), "not a real collision"
    signature = sign(url, original)
    assert RequestValidator(TOKEN).validate(url, MultiDict(pairs), signature)
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    return client.post(path, data=MultiDict(pairs), headers={"X-Twilio-Signature": signature})


def messages(app) -> list:
    with app.extensions["operator"].engine.connect() as conn:
        return conn.execute(select(audit.messages)).all()


def without(form: dict[str, str], *names: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in form.items() if k not in names]


def resplit_sid_into_the_name(form):
    """The MessageSid value moved into the field name: `MessageSidSM...=`."""
    pairs = without(form, "MessageSid")
    return pairs + [("MessageSid" + form["MessageSid"], "")]


def resplit_sid_partly(form):
    """A new, shorter MessageSid: two characters of it moved into the name."""
    pairs = without(form, "MessageSid")
    return pairs + [("MessageSidSM", form["MessageSid"][2:])]


def sid_swallows_the_next_field(form):
    """MessageSid's value takes in the name and value that follow it."""
    pairs = without(form, "MessageSid", "NumMedia")
    return pairs + [("MessageSid", form["MessageSid"] + "NumMedia0")]


def all_sids_swallowed(form):
    """Every sid field swallowed by the value before it, so no MessageSid is left to deduplicate on."""
    sid = form["MessageSid"]
    swallowed = ("MessageSid", "NumMedia", "NumSegments", "SmsMessageSid", "SmsSid", "SmsStatus")
    tail = "".join(name + form[name] for name in swallowed)
    return without(form, "FromZip", *swallowed) + [("FromZip", form["FromZip"] + tail)] if sid else []


def body_split_into_a_repeated_field(form):
    """`Body=help&Body=zzz` signs like one Body `helpBodyzzz`."""
    pairs = without(form, "Body")
    return pairs + [("Body", "help"), ("Body", "zzz")]


def value_swallows_the_from_field(form):
    """The Body takes in `From+1555...`, leaving no sender."""
    pairs = without(form, "Body", "From")
    return pairs + [("Body", form["Body"] + "From" + form["From"])]


HOSTILE = [
    resplit_sid_into_the_name,
    resplit_sid_partly,
    sid_swallows_the_next_field,
    all_sids_swallowed,
    value_swallows_the_from_field,
]


@pytest.mark.parametrize("attack", HOSTILE)
def test_a_captured_message_re_split_through_the_signature_runs_nothing(app, client, attack):
    first = inbound_form("ack")
    response = replay(client, SMS, first, attack(first))
    assert response.status_code == 400
    assert reply_text(response.data) is None
    assert messages(app) == []


def test_repeated_fields_are_refused_even_when_the_signature_matches(app, client):
    first = inbound_form("helpBodyzzz")
    response = replay(client, SMS, first, body_split_into_a_repeated_field(first))
    assert response.status_code == 400
    assert messages(app) == []


def test_after_the_genuine_message_every_replay_of_it_is_refused_or_a_duplicate(app, client):
    first = inbound_form("help")
    genuine = client.post("/sms", data=first, headers={"X-Twilio-Signature": sign(SMS, first)})
    assert reply_text(genuine.data).startswith("Commands:")
    for attack in HOSTILE:
        assert replay(client, SMS, first, attack(first)).status_code == 400
    again = client.post("/sms", data=first, headers={"X-Twilio-Signature": sign(SMS, first)})
    assert reply_text(again.data) == reply_text(genuine.data)
    assert [r.outcome for r in messages(app)] == ["ok", "duplicate"]


@pytest.mark.parametrize(
    "sid",
    [
        "",
        "SM123",
        "XX" + "a" * 32,
        "SM" + "g" * 32,
        "SM" + "a" * 33,
        "SM" + "a" * 31,
        " SM" + "a" * 32,
        "SM" + "a" * 32 + "\n",
    ],
)
def test_a_signed_message_without_a_well_formed_message_sid_is_refused(app, client, sid):
    params = inbound_form()
    params.update(MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    response = client.post("/sms", data=params, headers={"X-Twilio-Signature": sign(SMS, params)})
    assert response.status_code == 400
    assert messages(app) == []


def test_sms_sid_and_message_sid_must_agree(app, client):
    params = inbound_form()
    params["SmsSid"] = "SM" + uuid.uuid4().hex
    assert (
        client.post("/sms", data=params, headers={"X-Twilio-Signature": sign(SMS, params)}).status_code == 400
    )


@pytest.mark.parametrize(
    "extra",
    [{"Extra": "1"}, {"": "x"}, {"body": "help"}, {"MediaUrl": "https://x"}, {"NumMedia": "0 "}],
    ids=["unknown", "empty-name", "wrong-case", "unnumbered-media", "padded-count"],
)
def test_a_signed_form_with_a_field_twilio_does_not_send_is_refused(app, client, extra):
    params = {**inbound_form(), **extra}
    response = client.post("/sms", data=params, headers={"X-Twilio-Signature": sign(SMS, params)})
    assert response.status_code == 400
    assert messages(app) == []


def test_a_multipart_body_is_refused(app, client):
    params = inbound_form()
    response = client.post(
        "/sms",
        data=params,
        content_type="multipart/form-data",
        headers={"X-Twilio-Signature": sign(SMS, params)},
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "fields",
    [
        {
            "NumMedia": "2",
            "MediaUrl0": "https://api.twilio.com/m/1",
            "MediaContentType0": "image/jpeg",
            "MediaUrl1": "https://api.twilio.com/m/2",
            "MediaContentType1": "image/png",
        },
        {"MessagingServiceSid": "MG" + "2" * 32, "OptOutType": ""},
        {
            "ProfileName": "Sam Ops",
            "WaId": "15555550100",
            "Forwarded": "true",
            "FrequentlyForwarded": "false",
            "ButtonText": "Ack",
            "ButtonPayload": "ack",
            "ReferralNumMedia": "0",
            "MessageType": "text",
        },
        {"Latitude": "37.78", "Longitude": "-122.39", "Address": "1 Main St", "Label": "office"},
        {"AddOns": '{"status":"successful","results":{}}', "ChannelMetadata": "{}"},
    ],
    ids=["mms", "messaging-service", "whatsapp", "location", "add-ons"],
)
def test_legitimate_twilio_fields_are_accepted(app, client, fields):
    params = {**inbound_form("help"), **fields}
    if "MediaUrl0" in fields:
        params["MessageSid"] = params["SmsSid"] = params["SmsMessageSid"] = "MM" + uuid.uuid4().hex
    response = client.post("/sms", data=params, headers={"X-Twilio-Signature": sign(SMS, params)})
    assert response.status_code == 200
    assert reply_text(response.data).startswith("Commands:")


@pytest.fixture
def sent(services):
    with services.engine.begin() as conn:
        outbox_id = queue.enqueue(conn, ADMIN, "ALERT #1: cpu", "alert", services.settings)
        sid = "SM" + "a" * 32
        conn.execute(
            update(queue.outbox)
            .where(queue.outbox.c.id == outbox_id)
            .values(status="sent", provider_sid=sid, delivery_status="queued")
        )
    return sid


def status_form(sid: str, status: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "1" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": ADMIN,
    }


def delivery_status(services) -> str:
    with services.engine.connect() as conn:
        return conn.execute(select(queue.outbox.c.delivery_status)).scalar_one()


def test_a_status_report_re_split_through_the_signature_changes_nothing(client, services, sent):
    first = status_form("SM" + "b" * 32, "failed")
    first["ErrorCode"] = "30007"
    # Moving the sid's characters between name and value: the signature holds, the sid does not.
    pairs = without(first, "MessageSid", "SmsSid") + [("MessageSidSM", "b" * 32), ("SmsSid", first["SmsSid"])]
    assert replay(client, STATUS, first, pairs).status_code == 400
    # `MessageStatus=delivered&MessageStatus=failed` signs like one `deliveredMessageStatusfailed`.
    merged = {**status_form(sent, "queued"), "MessageStatus": "deliveredMessageStatusfailed"}
    repeated = without(merged, "MessageStatus") + [
        ("MessageStatus", "delivered"),
        ("MessageStatus", "failed"),
    ]
    assert replay(client, STATUS, merged, repeated).status_code == 400
    assert delivery_status(services) == "queued"


@pytest.mark.parametrize(
    "change",
    [{"MessageSid": "SM1"}, {"Extra": "1"}, {"MessageSid": ""}, {"ErrorCode": "3000x"}],
    ids=["short-sid", "unknown-field", "no-sid", "bad-error-code"],
)
def test_a_signed_status_report_twilio_would_not_send_is_refused(client, services, sent, change):
    params = {**status_form(sent, "failed"), **change}
    if "MessageSid" in change:
        params["SmsSid"] = change["MessageSid"]
    response = client.post("/sms/status", data=params, headers={"X-Twilio-Signature": sign(STATUS, params)})
    assert response.status_code == 400
    assert delivery_status(services) == "queued"


def test_a_status_report_with_every_documented_field_is_recorded(client, services, sent):
    params = {
        **status_form(sent, "undelivered"),
        # An alphanumeric sender id, as texts from a Messaging Service may carry.
        "From": "Acme Ops",
        "ErrorCode": "30003",
        "ErrorMessage": "Unreachable destination handset",
        "RawDlrDoneDate": "2612021200",
        "MessagingServiceSid": "MG" + "2" * 32,
        "ChannelInstallSid": "XE" + "3" * 32,
        "ChannelPrefix": "sms",
        "ChannelToAddress": "+1555555XXXX",
        "ChannelStatusMessage": "Unreachable",
        "StructuredMessage": "false",
        "EventType": "UNDELIVERED",
    }
    response = client.post("/sms/status", data=params, headers={"X-Twilio-Signature": sign(STATUS, params)})
    assert response.status_code == 204
    assert delivery_status(services) == "undelivered"
