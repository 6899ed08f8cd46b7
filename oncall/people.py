"""How a text names a person: the `name` their team gives their number, else the masked number.

Every reply, page and notice that mentions someone (acked by, resolved by, on call, escalated to,
a window's owner) writes them through `display_name`, so "acked by Alice" and "on call: Alice"
agree. Logs keep masked numbers: names are for people reading texts.
"""

from __future__ import annotations

from config import Settings
from oncall import teams
from security import mask


def configured_name(settings: Settings, phone: str | None) -> str:
    """The name a team's `members` entry gives this number ("" when none does)."""
    if not phone:
        return ""
    for team in teams.of(settings).values():
        member = team.member(phone)
        if member is not None and member.name:
            return member.name
    return ""


def display_name(settings: Settings, phone: str | None, nobody: str = "nobody") -> str:
    """'Alice' when a team names the number, '+1555***0100' otherwise; `nobody` for no number."""
    if not phone:
        return nobody
    return configured_name(settings, phone) or mask(phone)
