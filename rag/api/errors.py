"""Error responses: a status, a stable code and a one-line message a reader can act on.

The message never holds a file path, an endpoint's address or a driver's exception text: those go to the
server log, and the body says what went wrong and what to do.
"""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

from rag.errors import RagError

log = logging.getLogger("rag.api")


class ApiError(Exception):
    """An error response: HTTP status, a stable code, a one-line message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers
        self.message = " ".join(message.split())

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def as_api_error(exc: BaseException) -> ApiError:
    """The response for an error of the library (`rag.errors.RagError`: its status, code and message, or
    its `public` message with the details logged); anything else is a 500, logged with its traceback."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RagError):
        if exc.public is None:
            return ApiError(exc.status, exc.code, str(exc))
        log.error("%s: %s", exc.code, exc)
        return ApiError(exc.status, exc.code, exc.public)
    log.error("unexpected error", exc_info=exc)
    return ApiError(500, "internal", "internal server error; see the server log")


HANDLED = (ApiError, RagError, Exception)
