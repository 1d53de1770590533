"""The HTTP API's request and response bodies, and the OpenAPI descriptions of its responses.

The response models document the wire format for /docs and the schemathesis tests; the endpoints return
the library's own JSON (`Answer.to_json()`, `Citation.to_json()`), which these models describe.
"""

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        try:  # JSON's "\ud800" decodes to a lone surrogate, which SQLite and the tokenizer cannot take
            json.dumps(data, ensure_ascii=False, default=str).encode()
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (no unpaired surrogates)") from None
        return data


Values = str | list[str]


class TurnIn(Body):
    role: Literal["user", "assistant"]
    content: str


class FiltersIn(Body):
    source: Values | None = Field(None, description="Only passages from this source path (or any of these).")
    kind: Values | None = Field(None, description="Only passages of this kind: article, comment.")
    author: Values | None = Field(None, description="Only passages by this author.")

    def to_filters(self) -> dict[str, Any] | None:
        found = {k: v for k, v in self.model_dump().items() if v is not None and v != []}
        return found or None


class AskIn(Body):
    question: str = Field(description="The question (empty or over-long questions get 422).")
    history: list[TurnIn] = Field(default_factory=list, description="Earlier turns, oldest first.")
    filters: FiltersIn | None = None
    k: StrictInt | None = Field(None, ge=1, le=50, description="Passages to retrieve (default: retrieval.k).")


class CitationOut(BaseModel):
    marker: int
    chunk_id: str
    source: str
    title: str
    kind: str
    author: str
    url: str = Field("", description="The document's web address, when it has one.")
    text: str = Field(description="The whole passage.")
    quote: str = Field(description="The supporting sentence(s), at text[start:end].")
    start: int
    end: int


class RetrievedOut(BaseModel):
    chunk_id: str
    source: str
    text: str
    score: float


class AnswerOut(BaseModel):
    question: str
    answer: str
    refused: bool
    citations: list[CitationOut]
    retrieved: list[RetrievedOut]
    latency_ms: float


class PassageOut(BaseModel):
    chunk_id: str
    text: str
    source: str
    title: str
    kind: str
    author: str
    start: int = Field(description="Span of the passage in its source document: [start, end).")
    end: int
    metadata: dict[str, Any]


class DocumentOut(BaseModel):
    source: str
    title: str
    loader: str
    chunks: int
    meta: dict[str, Any]
    ingested_at: float


class SourcesOut(BaseModel):
    documents: list[DocumentOut]


class ExamplesOut(BaseModel):
    questions: list[str] = Field(
        description="Example questions: the operator's (`ui.examples`), else those the documents ask in their "
        "headings."
    )


class CitationIn(Body):
    """A citation as `rag ask --json` gives it; `text` (the whole passage) is accepted but not stored: the
    chunk id points at it."""

    marker: StrictInt = Field(ge=1, le=1_000)
    chunk_id: str = Field(max_length=200)
    source: str = Field("", max_length=1_000)
    title: str = Field("", max_length=1_000)
    section: str = Field("", max_length=1_000)
    url: str = Field("", max_length=2_000)
    kind: str = Field("", max_length=100)
    author: str = Field("", max_length=1_000)
    quote: str = Field("", max_length=5_000)
    quotes: list[str] = Field(default_factory=list, max_length=20)
    start: StrictInt = Field(0, ge=0)
    end: StrictInt = Field(0, ge=0)
    text: str | None = Field(None, max_length=20_000)

    @field_validator("quotes")
    @classmethod
    def _short_quotes(cls, quotes: list[str]) -> list[str]:
        if any(len(q) > 5_000 for q in quotes):
            raise ValueError("each quote must be at most 5000 characters")
        return quotes

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude={"text"})


class FeedbackIn(Body):
    rating: StrictInt = Field(description="1 thumbs up, -1 thumbs down.", json_schema_extra={"enum": [1, -1]})
    question: str = Field(max_length=10_000)
    answer: str = Field(max_length=50_000)
    citations: list[CitationIn] = Field(default_factory=list, max_length=50)
    comment: str = Field("", max_length=5_000)

    @field_validator("rating")
    @classmethod
    def _thumb(cls, rating: int) -> int:
        if rating not in (1, -1):
            raise ValueError("rating must be 1 (thumbs up) or -1 (thumbs down)")
        return rating


DOC_ID = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$"


class DocumentIn(Body):
    content: str = Field(description="The page's text, in `format`.")
    format: Literal["markdown", "html", "text"] = Field("markdown", description="How `content` is written.")
    title: str = Field("", max_length=1_000, description="The page's title (default: from the content).")
    url: str = Field(
        "",
        max_length=2_000,
        pattern=r"^(https?://\S+)?$",
        description="The page's address, shown in citations.",
    )


class DocumentChange(BaseModel):
    doc_id: str
    chunks: int = Field(description="Chunks of the document now in the index (0 after DELETE).")
    added: int = Field(description="Chunks embedded by this request (0 when the text did not change).")
    removed: int = Field(description="Chunks deleted by this request.")


class PushedOut(BaseModel):
    doc_id: str
    title: str
    url: str
    chunks: int
    ingested_at: float


class PushedListOut(BaseModel):
    documents: list[PushedOut]


class FeedbackOut(BaseModel):
    id: int


class HealthOut(BaseModel):
    status: Literal["ok"]
    chunks: int | None = Field(None, description="Chunks in the index (with a server key only).")
    feedback_rows: int | None = Field(
        None, description="Rows in the feedback store (with a server key only)."
    )
    feedback_bytes: int | None = Field(
        None, description="Size of the feedback store (with a server key only)."
    )
    feedback_max_bytes: int | None = Field(
        None, description="server.feedback_max_bytes (with a server key only)."
    )


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut} for status in statuses}


def content(media_type: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema or {"type": "string"}}}}


def _event(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    data = {"type": "string", "contentMediaType": "application/json", "contentSchema": payload}
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {"event": {"const": name}, "data": data},
    }


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


EVENTS = {
    "oneOf": [
        _event("delta", {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}),
        _event("citation", _ref(CitationOut)),  # plus the passage's `metadata`
        _event("done", _ref(AnswerOut)),
        _event("error", _ref(ErrorOut)),
    ]
}


AUTH_ERRORS = (401, 403, 413, 422, 429)
