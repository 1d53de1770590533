"""The `rag` command line: a thin shell over the library.

Exit codes: 0 success; 1 some input failed (e.g. a file could not be ingested); 2 bad usage or bad
settings; 4 the index, the store or the model is unusable (the message says what to do).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from rag.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    name="rag",
    help="Question answering over your documents, with verified citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FAILED, EXIT_USAGE, EXIT_UNUSABLE = 1, 2, 4


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_from(ctx: typer.Context) -> Settings:
    if not isinstance(ctx.obj, Settings):
        try:
            ctx.obj = load_settings()
        except SettingsError as exc:
            fail(str(exc), EXIT_USAGE)
    return ctx.obj


@app.callback()
def main(ctx: typer.Context) -> None:
    """Question answering over your documents, with verified citations."""


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to ingest (default: the corpus folder).")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Drop the whole index first and rebuild it.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Chunk, embed and index documents; only new or changed chunks are embedded."""
    from ingest.catalog import CatalogError
    from ingest.indexer import IngestUsageError
    from ingest.indexer import ingest as run_ingest
    from rag.embeddings import EmbeddingError
    from rag.store import StoreError

    settings = settings_from(ctx)
    targets = paths or [settings.corpus_dir]
    with _progress(enabled=not as_json and sys.stderr.isatty()) as progress:
        try:
            report = run_ingest(
                targets,
                settings,
                reset=reset,
                progress=progress,
                on_wait=lambda: typer.echo("another ingest is running; waiting for it to finish…", err=True),
            )
        except IngestUsageError as exc:
            fail(str(exc), EXIT_USAGE)
        except (StoreError, CatalogError, EmbeddingError) as exc:
            fail(str(exc), EXIT_UNUSABLE)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        _print_report(report)
    if report.failed:
        if report.files_read == 0 and not report.skipped:
            typer.echo("error: no supported documents found", err=True)
        raise typer.Exit(EXIT_FAILED)


class _progress:
    """A rich progress bar for embedding, shown only on a terminal and only once there is work."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: object | None = None
        self._task: object | None = None

    def __enter__(self) -> _progress | None:
        return self if self.enabled else None

    def __call__(self, done: int, total: int) -> None:
        from rich.progress import Progress

        if self._bar is None:
            bar = Progress(transient=True)
            bar.start()
            self._bar, self._task = bar, bar.add_task("embedding chunks", total=total)
        assert isinstance(self._bar, Progress)
        self._bar.update(self._task, completed=done)  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        from rich.progress import Progress

        if isinstance(self._bar, Progress):
            self._bar.stop()


def _print_report(report: object) -> None:
    from ingest.indexer import IngestReport

    assert isinstance(report, IngestReport)
    typer.echo(
        f"{report.files_read} file(s) read: {report.chunks_added} chunk(s) added, "
        f"{report.chunks_unchanged} unchanged, {report.chunks_updated} updated, "
        f"{report.chunks_removed} removed; {report.chunks_total} in the index ({report.seconds:.1f} s)"
    )
    for path in report.files_removed:
        typer.echo(f"  removed: {path} (no longer present)")
    for item in report.skipped:
        typer.echo(f"  skipped: {item.source}: {item.reason}", err=True)
    for item in report.ignored:
        typer.echo(f"  ignored: {item.source}: {item.reason}")
