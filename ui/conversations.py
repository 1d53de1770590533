"""Past conversations of signed-in visitors, kept on the server: one SQLite file under the data directory
(`Settings.conversations_path`), one row per conversation of each user, so that two tabs of one user never
overwrite each other's conversations. An anonymous page keeps them in the browser instead
(`ui.components.browser`).

Each user keeps the newest `MAX_CONVERSATIONS`, within `MAX_CHARS` of JSON; older ones are dropped when a
newer one is saved.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

MAX_CONVERSATIONS = 100
MAX_CHARS = 5_000_000  # per user

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    user TEXT NOT NULL,
    id TEXT NOT NULL,
    updated REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (user, id)
)
"""


class ConversationStore:
    """Conversations per user: `{id: {"title", "updated", "messages"}}`, as the browser keeps them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute(_SCHEMA)
        return db

    def all(self, user: str) -> dict[str, dict[str, Any]]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT id, body FROM conversations WHERE user = ? ORDER BY updated DESC", (user,)
            )
            out = {}
            for ident, body in rows:
                try:
                    conversation = json.loads(body)
                except ValueError:
                    continue
                if isinstance(conversation, dict):
                    out[str(ident)] = conversation
            return out

    def put(self, user: str, ident: str, conversation: dict[str, Any]) -> None:
        """Keep (or replace) one conversation, then drop the user's oldest beyond the bounds."""
        body = json.dumps(conversation, ensure_ascii=False)
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO conversations (user, id, updated, body) VALUES (?, ?, ?, ?)",
                (user, ident, float(conversation.get("updated", 0)), body),
            )
            kept, count, stale = 0, 0, []
            for row_id, size in db.execute(
                "SELECT id, length(body) FROM conversations WHERE user = ? ORDER BY updated DESC", (user,)
            ):
                kept, count = kept + int(size), count + 1
                if row_id != ident and (count > MAX_CONVERSATIONS or kept > MAX_CHARS):
                    stale.append(row_id)
            db.executemany("DELETE FROM conversations WHERE user = ? AND id = ?", [(user, s) for s in stale])

    def delete(self, user: str, ident: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM conversations WHERE user = ? AND id = ?", (user, ident))
