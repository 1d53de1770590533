"""Answer feedback (thumbs up/down), stored with the question, answer and citations in SQLite."""

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


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute(_SCHEMA)
        return db

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
