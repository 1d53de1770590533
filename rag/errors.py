"""One error hierarchy. An error a user can act on is a `RagError`: its message is one line, and it knows
its exit code in the CLI, its HTTP status and stable code in the API, and what an API caller is told when
the message holds the operator's details (paths, addresses, driver messages: `public`; the message then
goes to the server log). The CLI, the API and the chat page each map it in one place.

Exit codes: 1 failed, 2 usage (bad input, settings or backend names), 3 empty index, 4 the index or the
language model cannot be used.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_FAILED, EXIT_USAGE, EXIT_EMPTY, EXIT_UNUSABLE = 1, 2, 3, 4

UNAVAILABLE = "the index cannot be used right now; the operator finds the reason in the server log"
MISCONFIGURED = "the server is misconfigured; the operator finds the reason in the server log"
GENERATOR_FAILED = (
    "the language model did not answer (timeout, error or unreachable); retry later, or ask the operator "
    "to turn on generator.fallback"
)


class RagError(Exception):
    """An error with a one-line message a user can act on."""

    exit_code: ClassVar[int] = EXIT_FAILED
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    public: ClassVar[str | None] = (
        None  # what an API caller is told instead of the message; None: the message
    )


class UsageError(RagError):
    """Bad input or settings, from whoever ran the command or sent the request."""

    exit_code = EXIT_USAGE
    status = 422
    code = "invalid_request"


class UnknownBackend(UsageError):
    """A backend name (retriever, reranker, judge, reader, generator) that names none: it fails at start-up
    with the known names; to an API caller the server is misconfigured."""

    status = 503
    code = "unavailable"
    public = MISCONFIGURED


class UnavailableError(RagError):
    """The index (store, catalog, embedding model) cannot be used."""

    exit_code = EXIT_UNUSABLE
    status = 503
    code = "unavailable"
    public = UNAVAILABLE
