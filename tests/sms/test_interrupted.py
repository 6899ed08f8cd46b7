"""A message whose worker died, and a retry that arrives while the first delivery still runs."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, update

from inbound import audit, pipeline
from incidents import records
from incidents.sources import Source
from tests.support.apps import app_with, from_file, with_settings
from tests.support.fakes.custom_api import FakeCustomApi
from tests.support.phones import Phone
from worker.loop import Worker


def messages(app) -> list:
    with app.extensions["operator"].engine.connect() as conn:
        return conn.execute(select(audit.messages).order_by(audit.messages.c.id)).all()


def died_while_processing(app, sid: str, body: str, seconds_ago: float) -> None:
    """The row a worker leaves when it is killed between storing a message and answering it."""
    engine = app.extensions["operator"].engine
    with engine.begin() as conn:
        row_id = audit.start(conn, "+15555550100", audit.Outcome.PROCESSING, sid=sid, body=body)
        conn.execute(
            update(audit.messages)
            .where(audit.messages.c.id == row_id)
            .values(received_at=audit.messages.c.received_at - seconds_ago)
        )


def test_a_retry_of_a_message_whose_worker_died_is_answered_plainly_and_runs_nothing(app, phone):
    services = app.extensions["operator"]
    with services.engine.begin() as conn:
        alert, _ = records.fire(conn, Source.ALERTMANAGER, "fp-1", "HighCPU", summary="cpu")
    sid = "SM" + uuid.uuid4().hex
    body = f"ack {alert.id}"
    died_while_processing(app, sid, body, seconds_ago=pipeline.STALE_AFTER + 5)
    assert phone.text(body, sid=sid) == pipeline.INTERRUPTED
    # Every later retry gets the same answer, and nothing was acked behind the phone's back.
    assert phone.text(body, sid=sid) == pipeline.INTERRUPTED
    with services.engine.connect() as conn:
        assert records.get(conn, alert.id).acked_at is None
    first = messages(app)[0]
    assert (first.outcome, first.command, first.reply) == ("error", "interrupted", pipeline.INTERRUPTED)
    assert [r.outcome for r in messages(app)[1:]] == ["duplicate", "duplicate"]


@dataclass
class GatedApi(FakeCustomApi):
    """A custom API that answers only once the test opens the gate."""

    gate: threading.Event = field(default_factory=threading.Event)

    def answer(self, request):
        self.gate.wait(30)
        return super().answer(request)


def test_a_retry_while_the_first_still_runs_waits_for_its_answer(settings, tmp_path):
    config = tmp_path / "operator.yml"
    config.write_text("api:\n  orders:\n    path: /stats/orders\n    fields: {queue: queue.depth}\n")
    with GatedApi().start() as fake:
        custom = with_settings(
            settings, custom_api_url=fake.url, custom_api_token=fake.token, **from_file(config)
        )
        with app_with(custom) as app:
            sid = "SM" + uuid.uuid4().hex
            answers: dict[str, str | None] = {}

            def text(name: str) -> None:
                answers[name] = Phone(app.test_client()).text("api orders", sid=sid)

            first = threading.Thread(target=text, args=("first",))
            retry = threading.Thread(target=text, args=("retry",))
            first.start()
            wait_until(lambda: fake.requests, "the first delivery to reach the API")
            retry.start()
            wait_until(lambda: any(r.outcome == "duplicate" for r in messages(app)), "the retry to arrive")
            fake.gate.set()
            first.join(30)
            retry.join(30)
    assert answers["first"] and answers["first"].startswith("api orders ok")
    assert answers["retry"] == answers["first"]
    assert len(fake.requests) == 1


def wait_until(condition, what: str) -> None:
    deadline = threading.Event()
    for _ in range(300):
        if condition():
            return
        deadline.wait(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_message_left_processing_by_a_request_that_died_is_closed_by_the_worker(app):
    """A request stored its text, then lost its store (or its process) before answering: the
    worker closes the row as interrupted once no request could still be running it, so the
    message log never shows a text as processing forever; a text still being answered is left alone."""
    died_while_processing(app, "SM" + uuid.uuid4().hex, "status", seconds_ago=pipeline.STALE_AFTER + 5)
    died_while_processing(app, "SM" + uuid.uuid4().hex, "help", seconds_ago=1)
    worker = Worker(app.extensions["operator"])
    worker.leading = True
    worker.run_jobs(time.time())
    old, recent = messages(app)
    assert (old.outcome, old.command, old.reply) == ("error", "interrupted", pipeline.INTERRUPTED)
    assert recent.outcome == "processing"
