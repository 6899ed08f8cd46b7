"""The one door for outbound SMS: every text to a person is composed and queued here.

`enqueue()` writes to the durable `outbox` table inside the caller's transaction, so an alert and
the texts it causes are stored together or not at all. The worker sends the outbox
(`outbox.sender`); Twilio's delivery reports come back through `outbox.delivery`. This package is
the only code that reads or writes the table: others ask the functions below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    Select,
    String,
    Table,
    Text,
    func,
    select,
    update,
)

from config import Settings
from conversation import composer
from core import db

logger = logging.getLogger(__name__)


class Delivery(StrEnum):
    """Where a queued text is: queued and sending wait, the others are finished."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    FOLDED = "folded"  # held back by the storm limits, named in a digest
    DROPPED = "dropped"  # no longer true when its turn came (see sender._stale)


class Kind(StrEnum):
    REPLY = "reply"
    ALERT = "alert"  # the first page of a new alert
    UPDATE = "update"  # a page about an open alert again: its group grew, its state changed
    REMINDER = "reminder"
    RECOVERY = "recovery"
    DIGEST = "digest"
    NOTICE = "notice"
    ESCALATION = "escalation"
    CALL = "call"  # a voice call about an alert (outbox.calls keeps how it went)


# What the per-person storm limits hold back (folded, then named in a digest) once a person's
# budget is spent. A new alert's first page counts against the budget but is never held back; a
# call over it is not placed (not reached: its escalation moves on) unless the alert is critical;
# replies, escalation texts and digests neither count nor wait.
THROTTLED = frozenset({Kind.UPDATE, Kind.REMINDER, Kind.RECOVERY, Kind.NOTICE, Kind.CALL})
STORM_KINDS = THROTTLED | {Kind.ALERT}
# Kinds that tell a person an alert is firing: they make that person "paged" for it.
PAGING_KINDS = (Kind.ALERT, Kind.UPDATE, Kind.REMINDER, Kind.ESCALATION, Kind.DIGEST, Kind.CALL)
FINISHED = (
    Delivery.SENT, Delivery.DELIVERED, Delivery.UNDELIVERED, Delivery.FAILED, Delivery.FOLDED, Delivery.DROPPED,
)  # fmt: skip
# A text that never reached its person: it did not tell them anything.
NOT_TOLD = (Delivery.DROPPED, Delivery.FAILED, Delivery.UNDELIVERED)
# Twilio's delivery statuses that mean the carrier took the text for the phone.
CARRIER_ACCEPTED = ("sent", "delivered", "read")

outbox = Table(
    "outbox",
    db.metadata,
    Column("id", Integer, primary_key=True),
    Column("to_number", String(32), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("segments", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("alert_id", Integer, index=True),
    # queued | sending | sent | delivered | undelivered | failed | folded | dropped
    Column("status", String(16), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("not_before", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(64)),
    Column("claimed_until", Float),
    Column("provider_sid", String(64), index=True),
    Column("error_code", String(16)),
    Column("error_message", Text),
    Column("sent_at", Float),
    Column("delivery_updated_at", Float),
    # Twilio's own status from the StatusCallback (queued, sent, delivered, ...), kept apart from
    # `status` so a late "queued" callback can never put a sent row back in our queue.
    Column("delivery_status", String(16)),
    # The digest row a folded message was summarized in.
    Column("digest_id", Integer, index=True),
)
# The dashboard's log (newest first, by number, kind or status) and its month and chart sums.
Index("ix_outbox_created_id", outbox.c.created_at, outbox.c.id)
Index("ix_outbox_to_created", outbox.c.to_number, outbox.c.created_at)
Index("ix_outbox_kind_created", outbox.c.kind, outbox.c.created_at)
Index("ix_outbox_status_created", outbox.c.status, outbox.c.created_at)


def enqueue(
    conn: Connection,
    to: str,
    body: str,
    kind: Kind,
    settings: Settings,
    alert_id: int | None = None,
    not_before: float | None = None,
) -> int:
    """Compose `body` for SMS and queue it for `to`; returns the outbox id."""
    text = composer.fit(body, settings.sms_max_segments, settings.sms_emoji)
    created = db.now()
    inserted = conn.execute(
        outbox.insert().values(
            to_number=to,
            body=text,
            segments=composer.segments(text),
            kind=kind,
            alert_id=alert_id,
            status=Delivery.QUEUED,
            created_at=created,
            not_before=not_before or created,
            attempts=0,
        )
    )
    return db.inserted_id(inserted)


def queued_about(conn: Connection, alert_id: int, kind: Kind) -> bool:
    """Whether a text of `kind` about this alert still waits to be sent."""
    o = outbox.c
    found = conn.execute(
        select(o.id).where(o.alert_id == alert_id, o.kind == kind, o.status == Delivery.QUEUED).limit(1)
    ).first()
    return found is not None


def drop_queued(conn: Connection, alert_id: int, kind: Kind, reason: str) -> int:
    """Drop the still-queued texts of `kind` about this alert; returns how many."""
    o = outbox.c
    return conn.execute(
        update(outbox)
        .where(o.alert_id == alert_id, o.kind == kind, o.status == Delivery.QUEUED)
        .values(status=Delivery.DROPPED, error_message=reason)
    ).rowcount


@dataclass(frozen=True)
class Told:
    """One page to one phone: the alert, the text it went out in, and whether that reached the phone."""

    alert_id: int
    text: str  # what pages sharing one text have in common (a combined page, a digest)
    received: bool


def pages_to(conn: Connection, phone: str, carrier_reports: bool, limit: int = 30) -> list[Told]:
    """The latest pages to `phone` (new, update, reminder, escalation), newest first.

    A page reached the phone when the carrier accepted its text (Twilio's status `sent` or
    `delivered`); a folded one when the digest naming it did. Without `carrier_reports` (no
    StatusCallback asked for), Twilio taking the text is the best there is, so it counts.
    """
    digest = outbox.alias("digest")
    o, d = outbox.c, digest.c
    rows = conn.execute(
        select(
            o.id,
            o.alert_id,
            o.status,
            o.delivery_status,
            o.provider_sid,
            o.digest_id,
            d.status.label("digest_status"),
            d.delivery_status.label("digest_delivery"),
        )  # fmt: skip
        .select_from(outbox.outerjoin(digest, d.id == o.digest_id))
        .where(
            o.to_number == phone,
            o.alert_id.is_not(None),
            o.kind.in_([k for k in PAGING_KINDS if k != Kind.DIGEST]),
            o.status.not_in(NOT_TOLD),
        )
        .order_by(o.id.desc())
        .limit(limit)
    ).all()

    def reached(status: str | None, delivery: str | None) -> bool:
        sent = status in (Delivery.SENT, Delivery.DELIVERED)
        return delivery in CARRIER_ACCEPTED or (not carrier_reports and sent)

    told = []
    for r in rows:
        if r.status == Delivery.FOLDED:
            key, received = f"digest:{r.digest_id}", reached(r.digest_status, r.digest_delivery)
        else:
            key, received = r.provider_sid or f"text:{r.id}", reached(r.status, r.delivery_status)
        told.append(Told(r.alert_id, key, received))
    return told


def numbers_paged(conn: Connection, alert_id: int) -> list[str]:
    """Everyone a text told this alert fires (pages, reminders, escalations), first-paged first.

    A text that was dropped or failed never reached its person, so it does not count: nobody
    gets a RESOLVED for an alert they never heard of. A folded one does (its digest named it).
    """
    o = outbox.c
    rows = conn.execute(
        select(o.to_number, func.min(o.id).label("first"))
        .where(o.alert_id == alert_id, o.kind.in_(PAGING_KINDS), o.status.not_in(NOT_TOLD))
        .group_by(o.to_number)
        .order_by("first")
    ).all()
    return [r.to_number for r in rows]


def oldest_waiting(conn: Connection, now: float) -> float | None:
    """Seconds since the oldest text still waiting to go out was queued; None when none waits.

    Texts scheduled for later and never tried yet (a recovery notice waiting out RECOVERY_DELAY)
    do not count: only what should have gone already, such as texts with no worker to send them
    or retrying while Twilio refuses.
    """
    o = outbox.c
    scheduled = (o.attempts == 0) & (o.not_before > now)
    oldest = conn.execute(
        select(func.min(o.created_at)).where(o.status.in_((Delivery.QUEUED, Delivery.SENDING)), ~scheduled)
    ).scalar()
    return None if oldest is None else max(0.0, now - oldest)


def counts(conn: Connection) -> dict[str, Any]:
    """For /metrics: rows by (status, kind), failures by error code, Twilio's delivery outcomes."""
    o = outbox.c
    return {
        "by_status": conn.execute(select(o.status, o.kind, func.count()).group_by(o.status, o.kind)).all(),
        "failed": conn.execute(
            select(o.error_code, func.count()).where(o.status == Delivery.FAILED).group_by(o.error_code)
        ).all(),
        "delivery": conn.execute(
            select(o.delivery_status, func.count())
            .where(o.delivery_status.is_not(None))
            .group_by(o.delivery_status)
        ).all(),
    }


def prune(conn: Connection, before: float, keep_alerts: Select[Any], batch: int) -> int:
    """Delete up to `batch` finished texts created before `before`, except about `keep_alerts`."""
    o = outbox.c
    kept = o.alert_id.is_(None) | o.alert_id.not_in(keep_alerts)
    return db.delete_batch(conn, o.id, o.status.in_(FINISHED), o.created_at < before, kept, batch=batch)


# What Twilio charged for: sent, whatever its delivery report said after.
CHARGED = (Delivery.SENT, Delivery.DELIVERED, Delivery.UNDELIVERED)


def newest(
    conn: Connection,
    limit: int,
    before: tuple[float, int] | None = None,
    to: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[Any]:
    """Up to `limit` rows, newest first, strictly before (created_at, id) `before`."""
    o = outbox.c
    equal = [(o.to_number, to), (o.kind, kind), (o.status, status)]
    conditions = db.newest_first(o.created_at, o.id, before, since, until, equal)
    query = (
        select(
            o.id,
            o.created_at,
            o.to_number,
            o.body,
            o.kind,
            o.alert_id,
            o.segments,
            o.status,
            o.delivery_status,
            o.error_code,
            o.error_message,
            o.sent_at,
        )  # fmt: skip
        .where(*conditions)
        .order_by(o.created_at.desc(), o.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query))


def about(conn: Connection, alert_id: int, limit: int = 200) -> list[Any]:
    """The texts about one alert, oldest first."""
    o = outbox.c
    return list(
        conn.execute(
            select(
                o.id,
                o.created_at,
                o.to_number,
                o.kind,
                o.status,
                o.delivery_status,
                o.error_code,
                o.sent_at,
                o.delivery_updated_at,
            )  # fmt: skip
            .where(o.alert_id == alert_id)
            .order_by(o.id)
            .limit(limit)
        )
    )


def depth(conn: Connection) -> int:
    """Texts waiting to be sent (queued or sending)."""
    o = outbox.c
    found = conn.execute(
        select(func.count()).where(o.status.in_((Delivery.QUEUED, Delivery.SENDING)))
    ).scalar()
    return int(found or 0)


def charged_segments(conn: Connection, since: float) -> int:
    """Segments of the texts queued since `since` that went out (Twilio bills those)."""
    o = outbox.c
    found = conn.execute(
        select(func.coalesce(func.sum(o.segments), 0)).where(o.created_at >= since, o.status.in_(CHARGED))
    ).scalar()
    return int(found or 0)


def outcomes(conn: Connection, since: float) -> dict[str, int]:
    """Finished texts queued since `since`, by status."""
    o = outbox.c
    rows = conn.execute(
        select(o.status, func.count()).where(o.created_at >= since, o.status.in_(FINISHED)).group_by(o.status)
    )
    return {status: n for status, n in rows}


def pages_between(conn: Connection, edges: list[float]) -> list[int]:
    """Paging texts (alerts, reminders, escalations, digests) queued in each [edges[i], edges[i + 1])."""
    o = outbox.c
    return db.bucket_counts(conn, o.created_at, edges, o.kind.in_(PAGING_KINDS))
