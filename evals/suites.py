"""The evaluation suites of `evals/suites.toml`: a dataset, the corpus it was written from, and a role.

One table per suite, `[NAME]`, with three strings: `dataset` (a JSONL file, see evals/dataset.py),
`corpus` (a folder or file that `rag ingest` accepts) and `role` ("tuning": the pipeline may be tuned on
it; "held-out": never looked at while tuning). Paths are relative to the suites file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import UsageError

SUITES = Path(__file__).with_name("suites.toml")
ROLES = ("tuning", "held-out")
_KEYS = {"dataset", "corpus", "role"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SuiteError(UsageError):
    """A malformed suites file; the message names the file, the suite and the reason, in one line."""


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: Path  # resolved against the suites file's folder
    corpus: Path
    role: str

    @property
    def held_out(self) -> bool:
        return self.role == "held-out"

    @property
    def label(self) -> str:
        """The suite's name as tables show it: "techdocs (held out)"."""
        return f"{self.name} (held out)" if self.held_out else self.name

    def missing(self) -> str | None:
        """Why the suite cannot run yet (its dataset or corpus does not exist), or None."""
        if not self.dataset.is_file():
            return f"suite {self.name}: no dataset file {self.dataset}"
        if not self.corpus.exists():
            return f"suite {self.name}: no corpus {self.corpus}"
        return None


def read_toml(path: Path, error: type[Exception]) -> dict[str, Any]:
    """A TOML file of the evaluation (suites, thresholds), or `error` with one line saying why not."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None


def load_suites(path: Path = SUITES) -> list[Suite]:
    """The suites of a suites file, in file order; raises `SuiteError` on any malformed entry."""
    data = read_toml(path, SuiteError)
    if not data:
        raise SuiteError(f"{path}: no suites")
    base = path.parent
    suites = []
    for name, entry in data.items():
        where = f"{path}: suite {name!r}"
        if not _NAME.match(name):
            raise SuiteError(f"{where}: a name is letters, digits, '.', '_' and '-'")
        if not isinstance(entry, dict):
            raise SuiteError(f"{where}: must be a table ([{name}]) with dataset, corpus and role")
        missing = _KEYS - entry.keys()
        if missing:
            raise SuiteError(f"{where}: missing key(s): {', '.join(sorted(missing))}")
        unknown = entry.keys() - _KEYS
        if unknown:
            raise SuiteError(f"{where}: unknown key(s): {', '.join(sorted(unknown))}")
        for key in ("dataset", "corpus", "role"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise SuiteError(f"{where}: {key!r} must be a non-empty string")
        if entry["role"] not in ROLES:
            raise SuiteError(f"{where}: 'role' must be one of {', '.join(ROLES)}, not {entry['role']!r}")
        dataset, corpus = (Path(os.path.normpath(base / entry[key])) for key in ("dataset", "corpus"))
        suites.append(Suite(name, dataset, corpus, entry["role"]))
    return suites
