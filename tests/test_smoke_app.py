from tests.conftest import STRANGER


def test_it_answers_status_with_the_system_line(phone):
    assert phone.text("status").startswith("sys ")


def test_it_answers_strangers_with_an_empty_response(phone):
    assert phone.text("status", number=STRANGER) is None


def test_it_rejects_a_forged_signature(client):
    response = client.post(
        "/sms", data={"From": "+15555550100", "Body": "status"}, headers={"X-Twilio-Signature": "forged"}
    )
    assert response.status_code == 403
