"""The unsent pages of each number's last long reply, kept in the store for MORE."""

from __future__ import annotations

import json

from sqlalchemy import Engine, bindparam, delete, select, update

import prepared
import store
from composer import Page
from prepared import Prepared, Tx

# A continuation older than this is stale data; MORE then says there is nothing left.
PAGE_TTL = 3600.0

# Built once: the delete runs on every reply (a miss costs SQLite one index probe, no write).
_DELETE = Prepared(delete(store.reply_pages).where(store.reply_pages.c.phone == bindparam("p_phone")))
_INSERT = Prepared(store.reply_pages.insert(), keys=["phone", "pages", "next_page", "created_at"])


class PageStore:
    """Per-phone continuation pages in the store, shared by every worker."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def save(self, phone: str, pages: list[str]) -> None:
        """Keep pages[1:] for MORE (pages[0] is being sent now); one list per phone."""
        with prepared.write(self.engine) as tx:
            self.save_in(tx, phone, pages)

    @staticmethod
    def save_in(tx: Tx, phone: str, pages: list[str]) -> None:
        """`save` inside the caller's transaction (the reply's audit update shares it)."""
        _DELETE.run(tx, {"p_phone": phone})
        if len(pages) > 1:
            values = {"phone": phone, "pages": json.dumps(pages), "next_page": 1, "created_at": store.now()}
            _INSERT.run(tx, values)

    def next(self, phone: str) -> Page | None:
        """The next unsent page, or None."""
        t = store.reply_pages
        with self.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.phone == phone)).first()
            if row is None or store.now() - row.created_at > PAGE_TTL:
                return None
            pages = json.loads(row.pages)
            if row.next_page >= len(pages):
                return None
            conn.execute(update(t).where(t.c.phone == phone).values(next_page=row.next_page + 1))
            return Page(pages[row.next_page])
