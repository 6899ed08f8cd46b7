"""Sending the outbox: atomic claims with a lease, shared pacing, retries, storm control, digests.

Claims: a sender marks due rows `sending` with `claimed_by` and `claimed_until` in one transaction
(PostgreSQL `FOR UPDATE SKIP LOCKED`; on SQLite the store's `BEGIN IMMEDIATE` makes it the only
writer), so two senders never take the same row. A sender killed mid-batch leaves its rows
`sending`; once `claimed_until` passes, any sender takes them again. The one duplicate this
allows: a sender that dies after Twilio accepted a text but before it recorded that.

Pacing is a shared schedule in the `sms_pacing` table: each text reserves `segments / SMS_RATE`
seconds after the last reservation, whichever process or host makes it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from prometheus_client import Counter
from sqlalchemy import Column, Connection, Engine, Float, Row, String, Table, case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from config import Settings
from core import db
from outbox import calls, queue
from outbox.backends import Accepted, Backend, SendError, classify, status_callback_url
from outbox.queue import Delivery, Kind, outbox
from rate_limiter import RateLimiter
from security import mask

logger = logging.getLogger(__name__)

pacing = Table(
    "sms_pacing",
    db.metadata,
    Column("key", String(64), primary_key=True),
    Column("next_at", Float, nullable=False),
)

SMS_OPTED_OUT = Counter(
    "operator_sms_opted_out_total", "Sends refused with 21610: the recipient replied STOP (this process)"
)

# Texts about an alert that are dropped when the alert changed while they waited (see _stale).
STALE_KINDS = frozenset({Kind.RECOVERY, Kind.REMINDER, Kind.ESCALATION, Kind.CALL})
# A call that ends in one of these never reached its person.
UNPLACED = (Delivery.FAILED, Delivery.DROPPED, Delivery.FOLDED)


class AlertView(Protocol):
    """What the sender asks about the alert behind a text (incidents answers; the worker wires it)."""

    def stale(self, conn: Connection, alert_id: int, kind: str, now: float) -> str | None:
        """Why a text of `kind` about this alert should no longer go out, or None."""

    def firing_names(self, conn: Connection, alert_ids: list[int]) -> list[str]:
        """The names of those alerts that still fire, in the order given, each once."""


RETRY_BASE = 2.0
RETRY_CAP = 300.0
PACING_KEY = "outbound"
# Twilio limits calls per second (CPS) apart from messages: calls keep their own schedule.
CALL_PACING_KEY = "calls"


def reserve_slot(engine: Engine, seconds: float, now: float | None = None, key: str = PACING_KEY) -> float:
    """Book `seconds` of the shared sending schedule `key`; returns when this send may go."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        query = select(pacing.c.next_at).where(pacing.c.key == key).with_for_update()
        row = conn.execute(query).first()
        if row is None:
            _insert_ignore(conn, key, now)
            row = conn.execute(query).one()  # there now: ours, or a racing sender's
        start = max(now, row.next_at)
        conn.execute(update(pacing).where(pacing.c.key == key).values(next_at=start + seconds))
    return start


def _insert_ignore(conn: Connection, key: str, now: float) -> None:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(pacing).values(key=key, next_at=now).on_conflict_do_nothing())


class Sender:
    """Claims due outbox rows and sends them; safe to run in many processes and hosts at once."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        backend: Backend,
        storm: RateLimiter,
        alerts: AlertView,
        worker_id: str,
        lease: float = 60.0,
        retry_base: float = RETRY_BASE,
        retry_cap: float = RETRY_CAP,
    ):
        self.engine, self.settings, self.backend, self.storm = engine, settings, backend, storm
        self.alerts = alerts
        self.worker_id, self.lease = worker_id, lease
        self.retry_base, self.retry_cap = retry_base, retry_cap
        # Small enough that a claimed batch is sent well inside its lease at SMS_RATE.
        self.batch = max(1, min(50, int(settings.sms_rate * lease / 4)))
        self.callback = status_callback_url(settings)

    def step(self, stop: threading.Event | None = None) -> int:
        """Send one batch of due texts and any digests whose window opened; returns rows handled."""
        stop = stop or threading.Event()
        self.send_digests()
        rows = self.claim()
        for index, row in enumerate(rows):
            if stop.is_set():
                self.release([r.id for r in rows[index:]])
                break
            self.process(row, stop)
        return len(rows)

    def claim(self, now: float | None = None) -> list[Any]:
        """Atomically take up to one batch of due rows (queued, or abandoned past their lease)."""
        now = time.time() if now is None else now
        o = outbox.c
        due = ((o.status == Delivery.QUEUED) & (o.not_before <= now)) | (
            (o.status == Delivery.SENDING) & (o.claimed_until < now)
        )
        with self.engine.begin() as conn:
            ids = conn.scalars(
                select(o.id)
                .where(due)
                # Replies to a person's own command go first: they are waiting for them.
                .order_by(case((o.kind == Kind.REPLY, 0), else_=1), o.not_before, o.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            if not ids:
                return []
            conn.execute(
                update(outbox)
                .where(o.id.in_(ids))
                .values(status=Delivery.SENDING, claimed_by=self.worker_id, claimed_until=now + self.lease)
            )
            return list(conn.execute(select(outbox).where(o.id.in_(ids)).order_by(o.id)).all())

    def release(self, ids: list[int]) -> None:
        """Hand unsent claimed rows back to the queue (clean shutdown)."""
        if not ids:
            return
        o = outbox.c
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(o.id.in_(ids), o.claimed_by == self.worker_id, o.status == Delivery.SENDING)
                .values(status=Delivery.QUEUED, claimed_by=None, claimed_until=None)
            )

    def process(self, row: Any, stop: threading.Event) -> None:
        """Check, pace and send one claimed row, then record the outcome."""
        verdict = self._precheck(row)
        if verdict != "send":
            return
        if row.kind == Kind.CALL:
            start = reserve_slot(self.engine, 1 / self.settings.call_rate, key=CALL_PACING_KEY)
        else:
            start = reserve_slot(self.engine, row.segments / self.settings.sms_rate)
        if stop.wait(max(0.0, start - time.time())):
            self.release([row.id])
            return
        try:
            accepted = self._hand_over(row)
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes
            failure = exc if isinstance(exc, SendError) else classify(exc)
            if failure.code == "internal":
                logger.exception("unexpected error sending outbox #%d", row.id)
            self._failed(row, failure)
            return
        self._finish(
            row,
            status=Delivery.SENT,
            provider_sid=accepted.sid,
            delivery_status=accepted.status,
            sent_at=time.time(),
            error_code=None,
            error_message=None,
        )
        logger.info("sent outbox #%d (%s) to %s", row.id, row.kind, mask(row.to_number))

    def _hand_over(self, row: Any) -> Accepted:
        if row.kind != Kind.CALL:
            return self.backend.send(row.to_number, row.body, self.callback)
        if not self.settings.public_url:
            raise SendError(
                "no_public_url", "PUBLIC_URL is not set: Twilio cannot fetch the call's words", False
            )
        answer, status = calls.urls(self.settings, row.id)
        return self.backend.call(row.to_number, answer, status, self.settings.call_timeout)

    def _precheck(self, row: Any) -> str:
        """Expire, drop or fold a row before spending a send on it; 'send' when it should go."""
        now = time.time()
        if now - row.created_at > self.settings.sms_max_age:
            self._finish(
                row, status=Delivery.FAILED, error_code="expired", error_message="older than SMS_MAX_AGE"
            )
            logger.warning("outbox #%d to %s expired unsent", row.id, mask(row.to_number))
            return "failed"
        stale = self._stale(row, now)
        if stale:
            self._finish(row, status=Delivery.DROPPED, error_message=stale)
            logger.info("outbox #%d (%s) dropped: %s", row.id, row.kind, stale)
            return "dropped"
        if row.kind in queue.STORM_KINDS and not self.storm.hit(row.to_number).allowed:
            self._finish(row, status=Delivery.FOLDED)
            logger.info("outbox #%d folded into a digest for %s", row.id, mask(row.to_number))
            return "folded"
        # Refresh the lease: a row that waited in a batch gets the whole lease for its send.
        with self.engine.begin() as conn:
            o = outbox.c
            held = conn.execute(
                update(outbox)
                .where(o.id == row.id, o.claimed_by == self.worker_id, o.status == Delivery.SENDING)
                .values(claimed_until=now + self.lease)
            ).rowcount
        return "send" if held else "lost"

    def _stale(self, row: Any, now: float) -> str | None:
        """Why a text about an alert no longer applies, checked just before it would go out.

        A recovery for an alert firing again, or a reminder or escalation for one that was
        resolved, acked, snoozed or silenced while the text waited (pacing, storm limits, an
        outage): sending it would page someone for nothing.
        """
        if row.alert_id is None or row.kind not in STALE_KINDS:
            return None
        with self.engine.connect() as conn:
            return self.alerts.stale(conn, row.alert_id, row.kind, now)

    def _failed(self, row: Any, failure: SendError) -> None:
        attempts = row.attempts + 1
        if failure.code == "21610":
            SMS_OPTED_OUT.inc()
            logger.error(
                "%s has opted out (21610: replied STOP): they cannot be paged until they text START",
                mask(row.to_number),
            )
        if not failure.temporary:
            logger.warning("outbox #%d failed for good: %s", row.id, failure)
            self._finish(row, status=Delivery.FAILED, attempts=attempts, error_code=failure.code,
                         error_message=failure.message)  # fmt: skip
            return
        delay = min(self.retry_cap, self.retry_base * 2 ** (attempts - 1))
        retry_at = time.time() + random.uniform(delay / 2, delay)
        if retry_at - row.created_at > self.settings.sms_max_age:
            logger.error("outbox #%d gave up after %d attempts: %s", row.id, attempts, failure)
            self._finish(row, status=Delivery.FAILED, attempts=attempts, error_code=failure.code,
                         error_message=f"gave up after {attempts} attempts: {failure.message}")  # fmt: skip
            return
        logger.warning("outbox #%d attempt %d failed (%s), retry in %.0fs", row.id, attempts, failure,
                       retry_at - time.time())  # fmt: skip
        self._finish(row, status=Delivery.QUEUED, attempts=attempts, not_before=retry_at, claimed_by=None,
                     claimed_until=None, error_code=failure.code, error_message=failure.message)  # fmt: skip

    def _finish(self, row: Any, **values: Any) -> None:
        values.setdefault("attempts", row.attempts + (1 if values.get("status") == Delivery.SENT else 0))
        o = outbox.c
        with self.engine.begin() as conn:
            mine = conn.execute(
                update(outbox).where(o.id == row.id, o.claimed_by == self.worker_id).values(**values)
            ).rowcount
            if mine and row.kind == Kind.CALL:
                if values.get("status") == Delivery.SENT:
                    calls.placed(conn, row.id, values["provider_sid"], values["delivery_status"])
                    if self.backend.name == "console":
                        # Only logged: nobody will answer it, so the escalation need not wait.
                        calls.finish(
                            conn, row.id, calls.Outcome.NOT_REACHED, "console: the call was only logged"
                        )
                elif values.get("status") in UNPLACED:
                    reason = values.get("error_message") or values.get("error_code") or values["status"]
                    calls.finish(conn, row.id, calls.Outcome.NOT_REACHED, f"not placed: {reason}")

    def send_digests(self) -> int:
        """For each recipient with folded texts whose storm window has opened, queue one digest."""
        o = outbox.c
        with self.engine.connect() as conn:
            numbers = conn.scalars(
                select(o.to_number).where(o.status == Delivery.FOLDED, o.digest_id.is_(None)).distinct()
            ).all()
        queued = 0
        for number in numbers:
            # Counted before the transaction: with the SQL limiter storage the hit is its own
            # write, which SQLite would block behind ours. A racing sender may waste one hit.
            if not self._window_open(number) or not self.storm.hit(number).allowed:
                continue
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(o.id, o.alert_id)
                    .where(o.status == Delivery.FOLDED, o.digest_id.is_(None), o.to_number == number)
                    .order_by(o.id)
                    .with_for_update(skip_locked=True)
                ).all()
                if not rows:
                    continue
                text = digest_text(self.alerts.firing_names(conn, _alert_ids(rows)), len(rows))
                digest_id = queue.enqueue(conn, number, text, Kind.DIGEST, self.settings)
                conn.execute(update(outbox).where(o.id.in_([r.id for r in rows])).values(digest_id=digest_id))
                queued += 1
        return queued

    def _window_open(self, number: str) -> bool:
        return all(self.storm.strategy.test(item, self.storm.namespace, number) for item in self.storm.items)


def _alert_ids(rows: Sequence[Row[Any, Any]]) -> list[int]:
    """The alerts behind folded texts, latest first, each once."""
    return list(dict.fromkeys(r.alert_id for r in reversed(rows) if r.alert_id is not None))


def digest_text(names: list[str], folded: int) -> str:
    """ "7 firing: db-cpu, api-5xx, +5. Reply ALERTS" for the alerts behind folded texts."""
    names = list(dict.fromkeys(names))
    if not names:
        return f"{folded} alert texts held back; none firing now. Reply ALERTS"
    shown: list[str] = []
    for name in names:
        if len(", ".join([*shown, name])) > 100 and shown:
            break
        shown.append(name)
    rest = len(names) - len(shown)
    listed = ", ".join(shown) + (f", +{rest}" if rest else "")
    return f"{len(names)} firing: {listed}. Reply ALERTS"
