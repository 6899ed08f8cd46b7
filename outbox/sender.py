"""Sending the outbox: atomic claims with a lease, shared pacing, retries, storm control, digests.

Claims: a sender marks due rows `sending` with `claimed_by` and `claimed_until` in one transaction
(PostgreSQL `FOR UPDATE SKIP LOCKED`; on SQLite the store's `BEGIN IMMEDIATE` makes it the only
writer), so two senders never take the same row. A sender killed mid-batch leaves its rows
`sending`; once `claimed_until` passes, any sender takes them again. The one duplicate this
allows: a sender that dies after Twilio accepted a text but before it recorded that. A sender
whose store fails mid-batch keeps running: once the store answers it records what Twilio took
and hands the rest back to the queue at once (`recover`), instead of leaving them to the lease.

Pacing is a shared schedule in the `sms_pacing` table: each text reserves `segments / SMS_RATE`
seconds after the last reservation, whichever process or host makes it.

Storm control is per person (ALERT_LIMITS). A new alert's first page is never held: it counts
against the budget, and once the budget is spent the new-alert pages waiting for that person go
out together, one text listing each number and name. Updates, reminders, recoveries and notices
over the budget are folded, and one digest names all of them when the window opens. Texts about
a critical alert are never held.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter
from sqlalchemy import Column, Connection, Engine, Float, String, Table, case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from config import Settings
from conversation import composer
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


@dataclass(frozen=True)
class Brief:
    """What a text naming an alert among others says of it: '#12 PostgresDown db-1'."""

    line: str
    firing: bool
    critical: bool  # never held back by the storm limits


class AlertView(Protocol):
    """What the sender asks about the alert behind a text (incidents answers; the worker wires it)."""

    def stale(self, conn: Connection, alert_id: int, kind: str, now: float) -> str | None:
        """Why a text of `kind` about this alert should no longer go out, or None."""

    def briefs(self, conn: Connection, alert_ids: list[int]) -> dict[int, Brief]:
        """The alerts among `alert_ids` that exist, by id."""


RETRY_BASE = 2.0
RETRY_CAP = 300.0
# A page waiting out a provider outage is retried at least this often, so it goes out within
# about this long of the provider coming back (replies and notices back off to RETRY_CAP).
PAGE_RETRY_CAP = 30.0
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
        # What a step the store failed left behind, put right by the next one: sends the
        # provider took that are not recorded yet, and the rows this sender claimed in that step.
        self.unrecorded: list[tuple[Any, dict[str, Any]]] = []
        self.claimed: set[int] = set()

    def step(self, stop: threading.Event | None = None) -> int:
        """Send one batch of due texts and any digests whose window opened; returns rows handled."""
        stop = stop or threading.Event()
        self.recover()
        self.send_digests()
        rows = self.claim()
        done: set[int] = set()
        for index, row in enumerate(rows):
            if stop.is_set():
                self.release([r.id for r in rows[index:] if r.id not in done])
                break
            if row.id not in done:  # not already sent together with an earlier one
                done.update(self.process(row, stop))
        self.claimed.clear()  # each is sent, finished or back in the queue; kept if a step raised
        return len(rows)

    def recover(self) -> None:
        """After a step the store failed: record what went out, hand back what did not.

        Without this the rows claimed but unsent would wait out their lease, and a text the
        provider took would be sent again once its lease ran out.
        """
        if self.unrecorded:
            recorded = self._record()
            if recorded:
                logger.info("outbox %s recorded as sent (the provider took it while the store was down)",
                            ", ".join(f"#{i}" for i in recorded))  # fmt: skip
        if self.claimed:
            back = self.release(sorted(self.claimed))
            self.claimed.clear()
            if back:
                logger.info("%d claimed text(s) back in the queue after a store failure", back)

    def _record(self) -> list[int]:
        """Record the sends the provider took; those the store refuses wait for the next step."""
        recorded = []
        while self.unrecorded:
            row, values = self.unrecorded[0]
            try:
                if self._finish(row, taken=True, **values):
                    recorded.append(row.id)
            except db.UNREACHABLE:
                raise
            except Exception:
                # Never retried: one row the store will not take must not stop all sending.
                logger.exception("outbox #%d was sent but could not be recorded", row.id)
            del self.unrecorded[0]
        return recorded

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
                # Replies to a person's own command go first (they are waiting for them), then
                # new alerts and escalations, then the rest.
                .order_by(_PRIORITY, o.not_before, o.id)
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
            claimed = {r.id: r for r in conn.execute(select(outbox).where(o.id.in_(ids)))}
        self.claimed.update(ids)
        return [claimed[i] for i in ids]  # in the order chosen above: replies first

    def release(self, ids: list[int]) -> int:
        """Hand unsent claimed rows back to the queue (clean shutdown, or after a store failure)."""
        if not ids:
            return 0
        o = outbox.c
        with self.engine.begin() as conn:
            return conn.execute(
                update(outbox)
                .where(o.id.in_(ids), o.claimed_by == self.worker_id, o.status == Delivery.SENDING)
                .values(status=Delivery.QUEUED, claimed_by=None, claimed_until=None)
            ).rowcount

    def process(self, row: Any, stop: threading.Event) -> list[int]:
        """Check, pace and send one claimed row, then record the outcome; returns the ids handled.

        Those are more than `row` when new-alert pages for one person went out together.
        """
        verdict = self._precheck(row)
        if verdict == "together":
            rows, body = self._together(row)
        elif verdict == "send":
            rows, body = [row], row.body
        else:
            return [row.id]
        ids = [r.id for r in rows]
        segments = composer.segments(body)
        if row.kind == Kind.CALL:
            start = reserve_slot(self.engine, 1 / self.settings.call_rate, key=CALL_PACING_KEY)
        else:
            start = reserve_slot(self.engine, segments / self.settings.sms_rate)
        if stop.wait(max(0.0, start - time.time())):
            self.release(ids)
            return ids
        try:
            accepted = self._hand_over(row, body)
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes
            failure = exc if isinstance(exc, SendError) else classify(exc)
            if failure.code == "internal":
                logger.exception("unexpected error sending outbox #%d", row.id)
            for r in rows:
                self._failed(r, failure)
            return ids
        sent = dict(status=Delivery.SENT, provider_sid=accepted.sid, delivery_status=accepted.status,
                    sent_at=time.time(), error_code=None, error_message=None)  # fmt: skip
        if len(rows) > 1:
            sent.update(body=body, segments=segments)  # what each of them went out as
        self.unrecorded = [(r, sent) for r in rows]
        self._record()
        logger.info("sent outbox #%d (%s) to %s%s", row.id, row.kind, mask(row.to_number),
                    f" with {len(rows) - 1} more new alert(s)" if len(rows) > 1 else "")  # fmt: skip
        return ids

    def _hand_over(self, row: Any, body: str) -> Accepted:
        if row.kind != Kind.CALL:
            return self.backend.send(row.to_number, body, self.callback)
        if not self.settings.public_url:
            raise SendError(
                "no_public_url", "PUBLIC_URL is not set: Twilio cannot fetch the call's words", False
            )
        answer, status = calls.urls(self.settings, row.id)
        return self.backend.call(row.to_number, answer, status, self.settings.call_timeout)

    def _precheck(self, row: Any) -> str:
        """Expire, drop or fold a row before spending a send on it; 'send' or 'together' when it should go."""
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
        verdict = self._storm(row)
        if verdict == "fold":
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
        return verdict if held else "lost"

    def _storm(self, row: Any) -> str:
        """'send', 'fold' or 'together' under the recipient's storm limits."""
        if row.kind not in queue.STORM_KINDS or self.storm.hit(row.to_number).allowed:
            return "send"
        if row.alert_id is not None:
            with self.engine.connect() as conn:
                brief = self.alerts.briefs(conn, [row.alert_id]).get(row.alert_id)
            if brief is not None and brief.critical:
                return "send"
        return "together" if row.kind == Kind.ALERT else "fold"

    def _together(self, row: Any) -> tuple[list[Any], str]:
        """The new-alert pages due for row's person that fit one text with it, claimed, and that text.

        Critical ones are left to go out alone, with their summary.
        """
        now, o = time.time(), outbox.c
        mine = (o.status == Delivery.SENDING) & (o.claimed_by == self.worker_id)
        due = (o.status == Delivery.QUEUED) & (o.not_before <= now)
        with self.engine.begin() as conn:
            others = conn.execute(
                select(outbox)
                .where(
                    o.to_number == row.to_number,
                    o.kind == Kind.ALERT,
                    o.id != row.id,
                    o.alert_id.is_not(None),
                    o.created_at >= now - self.settings.sms_max_age,
                    mine | due,
                )  # fmt: skip
                .order_by(o.id)
                .limit(MAX_TOGETHER)
                .with_for_update(skip_locked=True)
            ).all()
            if row.alert_id is None or not others:
                return [row], row.body
            briefs = self.alerts.briefs(conn, [row.alert_id, *(r.alert_id for r in others)])
            if row.alert_id not in briefs:
                return [row], row.body
            candidates = [r for r in others if r.alert_id in briefs and not briefs[r.alert_id].critical]
            lines = [briefs[r.alert_id].line for r in [row, *candidates]]
            body, shown = together_text(lines, self.settings.sms_max_segments)
            chosen = candidates[: shown - 1]
            if not chosen:
                return [row], row.body
            conn.execute(
                update(outbox)
                .where(o.id.in_([r.id for r in chosen]))
                .values(status=Delivery.SENDING, claimed_by=self.worker_id, claimed_until=now + self.lease)
            )
        self.claimed.update(r.id for r in chosen)
        return [row, *chosen], body

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
        cap = min(self.retry_cap, PAGE_RETRY_CAP) if row.kind in queue.PAGING_KINDS else self.retry_cap
        delay = min(cap, self.retry_base * 2 ** (attempts - 1))
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

    def _finish(self, row: Any, taken: bool = False, **values: Any) -> bool:
        """Record a row's outcome while it is still ours; False if another sender has it now.

        `taken`: the provider took it, so it is recorded even if our lease ran out while the
        store was down, unless another sender sent it meanwhile; one about to send it then finds
        its lease gone.
        """
        values.setdefault("attempts", row.attempts + (1 if values.get("status") == Delivery.SENT else 0))
        o = outbox.c
        ours = o.claimed_by == self.worker_id
        if taken:
            ours |= o.status.in_((Delivery.QUEUED, Delivery.SENDING)) & o.provider_sid.is_(None)
        with self.engine.begin() as conn:
            mine = conn.execute(update(outbox).where(o.id == row.id, ours).values(**values)).rowcount
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
        return bool(mine)

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
                    select(o.id, o.alert_id, o.body)
                    .where(o.status == Delivery.FOLDED, o.digest_id.is_(None), o.to_number == number)
                    .order_by(o.id)
                    .with_for_update(skip_locked=True)
                ).all()
                if not rows:
                    continue
                briefs = self.alerts.briefs(conn, _alert_ids(rows))
                notices = [r.body for r in reversed(rows) if r.alert_id is None]
                text = digest_text(len(rows), [briefs[i] for i in _alert_ids(rows) if i in briefs], notices,
                                   self.settings.sms_max_segments)  # fmt: skip
                digest_id = queue.enqueue(conn, number, text, Kind.DIGEST, self.settings)
                conn.execute(update(outbox).where(o.id.in_([r.id for r in rows])).values(digest_id=digest_id))
                queued += 1
        return queued

    def _window_open(self, number: str) -> bool:
        return all(self.storm.strategy.test(item, self.storm.namespace, number) for item in self.storm.items)


# At most this many waiting new-alert pages are looked at to share one text.
MAX_TOGETHER = 100
_PRIORITY = case(
    (outbox.c.kind == Kind.REPLY, 0), (outbox.c.kind.in_([Kind.ALERT, Kind.ESCALATION]), 1), else_=2
)


def _alert_ids(rows: Sequence[Any]) -> list[int]:
    """The alerts behind folded texts, latest first, each once."""
    return list(dict.fromkeys(r.alert_id for r in reversed(rows) if r.alert_id is not None))


def _listing(head: str, groups: list[tuple[str, list[str]]], tail: str, max_segments: int) -> tuple[str, int]:
    """head + 'WORD a, b; WORD2 c' + tail, cut to fit with '+N more' for the rest; (text, items shown)."""
    items = [(word, item) for word, group in groups for item in group]
    room = composer.capacity("", max_segments)

    def render(count: int) -> str:
        parts: list[str] = []
        for word, _ in groups:
            shown = [item for w, item in items[:count] if w == word]
            if shown:
                parts.append((f"{word} " if word else "") + ", ".join(shown))
        hidden = len(items) - count
        return head + "; ".join(parts) + (f" +{hidden} more" if hidden else "") + tail

    count = 0
    while count < len(items) and composer.length_units(render(count + 1)) <= room:
        count += 1
    return composer.fit(render(count), max_segments), count


def together_text(lines: list[str], max_segments: int) -> tuple[str, int]:
    """'3 new: #12 PostgresDown db-1, #13 HighCPU web-1, #14 DiskFull', as many as fit; (text, how many)."""
    room = composer.capacity("", max_segments)

    def render(count: int) -> str:
        return f"{count} new: " + ", ".join(lines[:count])

    count = 1
    while count < len(lines) and composer.length_units(render(count + 1)) <= room:
        count += 1
    return render(count), count


def digest_text(held: int, briefs: list[Brief], notices: list[str], max_segments: int) -> str:
    """'Held back 3: FIRING #12 HighCPU web-1; RESOLVED #9 PostgresDown db-1. Reply ALERTS'.

    Every folded text's alert is named, by what it is now (still firing, or resolved), and
    notices by their first words; what does not fit is counted.
    """
    groups = [
        ("FIRING", [b.line for b in briefs if b.firing]),
        ("RESOLVED", [b.line for b in briefs if not b.firing]),
        ("NOTICE", [_gist(n) for n in dict.fromkeys(notices)]),
    ]
    return _listing(f"Held back {held}: ", groups, ". Reply ALERTS", max_segments)[0]


def _gist(notice: str) -> str:
    """A notice's first sentence, short: 'Cannot evaluate rule db_lag: timeout'."""
    first = composer.normalize(notice).split(". ")[0].rstrip(".")
    return composer.shorten(first, 60)
