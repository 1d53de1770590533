"""Answer feedback (thumbs up/down), stored with the question, answer and citations in SQLite.

The store has a size cap: after each insert, while the file is over `max_bytes`, the oldest tenth of the
rows is deleted (the database is in auto-vacuum mode, so the file shrinks with it).
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
    origin TEXT NOT NULL
)
"""


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
    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path, self.max_bytes = path, max_bytes

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 1:  # FULL: deleted rows give the space back
            db.execute("PRAGMA auto_vacuum = FULL")
            db.execute("VACUUM")  # takes effect on an existing file only after a VACUUM (once)
        db.execute(_SCHEMA)
        return db

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
    ) -> int:
        if rating not in (-1, 1):
            raise ValueError("rating must be 1 (thumbs up) or -1 (thumbs down)")
        db = self._connect()
        try:
            with db:
                cursor = db.execute(
                    "INSERT INTO feedback (created, rating, question, answer, citations, comment, origin)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        time.time(),
                        rating,
                        question,
                        answer,
                        json.dumps(citations, ensure_ascii=False),
                        comment,
                        origin,
                    ),
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
