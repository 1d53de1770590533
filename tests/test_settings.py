from __future__ import annotations

from pathlib import Path

import pytest

from rag.settings import Settings, SettingsError, load_settings


def test_defaults_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_DATA_DIR")
    assert load_settings().data_dir == Path(".rag")
    (tmp_path / "rag.toml").write_text('data_dir = "from-toml"\n[ingest]\nchunk_size = 500\n')
    settings = load_settings()
    assert settings.data_dir == Path("from-toml") and settings.ingest.chunk_size == 500
    monkeypatch.setenv("RAG_INGEST__CHUNK_SIZE", "700")
    monkeypatch.setenv("RAG_CHROMA_URL", "http://127.0.0.1:9")
    settings = load_settings()
    assert settings.ingest.chunk_size == 700 and settings.chroma_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RAG_INGEST__CHUNK_SIZE": "10"}, "invalid setting ingest.chunk_size"),
        ({"RAG_EMBEDDING__BATCH_SIZE": "0"}, "invalid setting embedding.batch_size"),
    ],
)
def test_bad_settings_are_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_every_field_is_described() -> None:
    def walk(model: type) -> None:
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            assert field.description, name
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                walk(annotation)

    walk(Settings)


def test_unknown_toml_key_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "rag.toml").write_text("[ingest]\nchunk_sise = 500\n")
    with pytest.raises(SettingsError, match=r"invalid setting ingest\.chunk_sise: Extra inputs"):
        load_settings()
