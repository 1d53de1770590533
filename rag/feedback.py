"""Answer feedback (thumbs up/down), stored with the question, answer and citations in SQLite.

The store has a size cap: after each insert, while the file is over `max_bytes`, the oldest tenth of the
rows is deleted (the database is in auto-vacuum mode, so the file shrinks with it). Each row records who
sent it (`who`: a client address or a key, as the API names them); with `per_sender` set, the text one
sender has in the store is bounded, its own oldest rows making room for its new one, so that one sender's
flood never reaches the cap that would delete others' feedback.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    comment TEXT NOT NULL,
    origin TEXT NOT NULL,
    who TEXT NOT NULL DEFAULT ''
)
"""
_SIZE = "length(question) + length(answer) + length(citations) + length(comment)"


@dataclass(frozen=True)
class Feedback:
    id: int
    created: float
    rating: int  # +1 or -1
    question: str
    answer: str
    citations: list[dict[str, Any]]
    comment: str
    origin: str  # ui | api


@dataclass(frozen=True)
class Usage:
    rows: int
    bytes: int


class FeedbackStore:
    def __init__(self, path: Path, max_bytes: int | None = None, per_sender: int = 0) -> None:
        self.path, self.max_bytes, self.per_sender = path, max_bytes, per_sender

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 1:  # FULL: deleted rows give the space back
            db.execute("PRAGMA auto_vacuum = FULL")
            db.execute("VACUUM")  # takes effect on an existing file only after a VACUUM (once)
        db.execute(_SCHEMA)
        if "who" not in {row[1] for row in db.execute("PRAGMA table_info(feedback)")}:  # an older store
            db.execute("ALTER TABLE feedback ADD COLUMN who TEXT NOT NULL DEFAULT ''")
        return db

    def _make_room(self, db: sqlite3.Connection, who: str, size: int) -> None:
        """Delete `who`'s oldest rows until its rows and a new one of `size` fit in `per_sender`."""
        if not who or not self.per_sender:
            return
        kept = size
        stale = []
        for row_id, length in db.execute(
            f"SELECT id, {_SIZE} FROM feedback WHERE who = ? ORDER BY id DESC", (who,)
        ):
            kept += int(length)
            if kept > self.per_sender:
                stale.append(row_id)
        if stale:
            db.executemany("DELETE FROM feedback WHERE id = ?", [(i,) for i in stale])

    @staticmethod
    def _bytes(db: sqlite3.Connection) -> int:
        return int(db.execute("PRAGMA page_count").fetchone()[0]) * int(
            db.execute("PRAGMA page_size").fetchone()[0]
        )

    def _trim(self, db: sqlite3.Connection) -> None:
        """Delete the oldest rows while the store is over its cap (the newest row always stays)."""
        while self.max_bytes and self._bytes(db) > self.max_bytes:
            rows = int(db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])
            if rows <= 1:
                return
            with db:
                db.execute(
                    "DELETE FROM feedback WHERE id IN (SELECT id FROM feedback ORDER BY id LIMIT ?)",
                    (min(rows - 1, max(1, rows // 10)),),
                )

    def usage(self) -> Usage:
        db = self._connect()
        try:
            return Usage(int(db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]), self._bytes(db))
        finally:
            db.close()

    def add(
        self,
        rating: int,
        question: str,
        answer: str,
        citations: list[dict[str, Any]],
        comment: str = "",
        origin: str = "ui",
        who: str = "",
    ) -> int:
        if rating not in (-1, 1):
            raise ValueError("rating must be 1 (thumbs up) or -1 (thumbs down)")
        cited = json.dumps(citations, ensure_ascii=False)
        db = self._connect()
        try:
            with db:
                self._make_room(db, who, len(question) + len(answer) + len(cited) + len(comment))
                cursor = db.execute(
                    "INSERT INTO feedback (created, rating, question, answer, citations, comment, origin, who)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (time.time(), rating, question, answer, cited, comment, origin, who),
                )
            self._trim(db)
            return int(cursor.lastrowid or 0)
        finally:
            db.close()

    def all(self) -> list[Feedback]:
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT id, created, rating, question, answer, citations, comment, origin FROM feedback ORDER BY id"
            ).fetchall()
        finally:
            db.close()
        return [Feedback(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in rows]
