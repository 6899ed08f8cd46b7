"""On-call teams for tests: an operator.yml `teams:` section, and reading what was queued for whom."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from outbox.queue import outbox
from tests.support.phones import ADMIN, RESPONDER

ALICE, BOB = RESPONDER, ADMIN
CAROL, DAVE = "+15555550121", "+15555550122"
BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    """'2026-12-08T12:00' in `zone` as UNIX seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def payments_and_infra(start: str = "2026-12-07T09:00 Europe/Berlin", every: str = "1w", **payments) -> dict:
    """Two teams: payments (Alice, then Bob, weekly) for `team: payments`; infra (Carol, Dave) as default."""
    return {
        "teams": {
            "payments": {
                "members": [
                    {"phone": ALICE, "name": "Alice"},
                    {"phone": BOB, "role": "admin", "name": "Bob"},
                ],
                "rotation": {"every": every, "start": start},
                "match": {"team": "payments"},
                **payments,
            },
            "default": {
                "members": [f"{CAROL}:admin", DAVE],
                "rotation": {"every": "1d", "start": "2026-01-01T09:00+00:00"},
            },
        }
    }


def texts(services, kind: str | None = None) -> list:
    """(to, body, kind) of every queued or sent text, oldest first."""
    with services.engine.connect() as conn:
        query = select(outbox.c.to_number, outbox.c.body, outbox.c.kind).order_by(outbox.c.id)
        if kind:
            query = query.where(outbox.c.kind == kind)
        return [tuple(row) for row in conn.execute(query)]
