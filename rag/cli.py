"""The `rag` command line: a thin shell over the library.

Exit codes: 0 success; 1 some input failed (e.g. a file could not be ingested); 2 bad usage or bad
settings; 3 the index is empty (run `rag ingest` first); 4 the index, the store, the model or the LLM
endpoint is unusable (the message says what to do).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from rag.errors import EXIT_EMPTY, EXIT_FAILED, EXIT_USAGE, RagError, UnavailableError
from rag.settings import Settings, load_settings

if TYPE_CHECKING:
    from evals.dataset import EvalCase
    from evals.runner import RunResult
    from rag.index.embeddings import Embedder
    from rag.index.store import VectorStore
    from rag.types import Answer

app = typer.Typer(
    name="rag",
    help="Question answering over your documents, with verified citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def errors_exit() -> Iterator[None]:
    """The library's errors (`rag.errors.RagError`) as one line on stderr and their exit code."""
    try:
        yield
    except RagError as exc:
        fail(str(exc), exc.exit_code)


def settings_from(ctx: typer.Context) -> Settings:
    if not isinstance(ctx.obj, Settings):
        with errors_exit():
            ctx.obj = load_settings()
    return ctx.obj


@app.callback()
def main(ctx: typer.Context) -> None:
    """Question answering over your documents, with verified citations."""


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files or folders to ingest (default: the corpus folder), or the http(s) URL of a site or its "
            "sitemap.xml to crawl."
        ),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Drop the whole index first and rebuild it.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="Where the folders' files are published (a wiki export): citations link to BASE_URL/path "
            "(without the extension); remembered for the folders' next ingests.",
        ),
    ] = None,
) -> None:
    """Chunk, embed and index documents; only new or changed chunks are embedded."""
    from ingest.crawl import crawl, is_url
    from ingest.indexer import ingest as run_ingest

    settings = settings_from(ctx)
    targets = paths or [str(settings.corpus_dir)]
    sites, files = [t for t in targets if is_url(t)], [Path(t) for t in targets if not is_url(t)]
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        fail(
            f"--base-url takes an http(s) address, e.g. https://wiki.example.com/; got {base_url}", EXIT_USAGE
        )
    if sites and (len(sites) > 1 or files or reset):
        fail("crawl one site per run: `rag ingest URL` (without --reset or other paths)", EXIT_USAGE)

    def waiting() -> None:
        typer.echo("another ingest is running; waiting for it to finish…", err=True)

    with _progress(enabled=not as_json) as progress, errors_exit():
        if sites:
            report = crawl(sites[0], settings, progress=progress, on_wait=waiting)
        else:
            report = run_ingest(
                files, settings, reset=reset, progress=progress, on_wait=waiting, base_url=base_url
            )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        _print_report(report)
    if report.failed:
        if report.files_read == 0 and not report.skipped:
            typer.echo("error: no supported documents found", err=True)
        raise typer.Exit(EXIT_FAILED)


class _progress:
    """Ingest progress on stderr: files read, then chunks embedded. On a terminal, rich bars; otherwise
    (a log, CI) a plain line at the start of each stage and at every tenth of it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.terminal = enabled, sys.stderr.isatty()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._shown: dict[str, int] = {}

    def __enter__(self) -> _progress | None:
        return self if self.enabled else None

    def __call__(self, stage: str, done: int, total: int) -> None:
        label = "reading documents" if stage == "reading" else "embedding chunks"
        if not self.terminal:  # a line when a tenth more is done, against the total as it stands (a crawl's
            # total grows as it finds links: "1/1", then "2/4", "3/4", "4/4")
            last = self._shown.get(stage)
            if last is None or done * 10 // max(total, 1) > last * 10 // max(total, 1):
                self._shown[stage] = done
                typer.echo(f"{label}: {done}/{total}", err=True)
            return
        from rich.progress import Progress

        if self._bar is None:
            self._bar = Progress(transient=True)
            self._bar.start()
        if stage not in self._tasks:
            self._tasks[stage] = self._bar.add_task(label, total=total)
        self._bar.update(self._tasks[stage], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _print_report(report: object) -> None:
    from ingest.indexer import IngestReport

    assert isinstance(report, IngestReport)
    unchanged = f" ({report.pages_unchanged} page(s) not modified)" if report.pages_unchanged else ""
    typer.echo(
        f"{report.files_read} file(s) read{unchanged}: {report.chunks_added} chunk(s) added, "
        f"{report.chunks_unchanged} unchanged, {report.chunks_updated} updated, "
        f"{report.chunks_removed} removed; {report.chunks_total} in the index ({report.seconds:.1f} s)"
    )
    for path in report.files_removed:
        typer.echo(f"  removed: {path} (no longer present)")
    for item in report.skipped:
        typer.echo(f"  skipped: {item.source}: {item.reason}", err=True)
    for item in report.ignored:
        typer.echo(f"  ignored: {item.source}: {item.reason}")


def _pipeline(settings: Settings) -> object:
    from rag.pipeline import build_pipeline

    with errors_exit():
        return build_pipeline(settings)


def _read_history(path: Path | None) -> list[object]:
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read history file {path}: {exc}", EXIT_USAGE)
    except json.JSONDecodeError as exc:
        fail(f"history file {path} is not valid JSON: {exc.msg} (line {exc.lineno})", EXIT_USAGE)
    if not isinstance(data, list):
        fail(f"history file {path} must hold a JSON list of {{role, content}} turns", EXIT_USAGE)
    return data


def _filters(source: str | None, kind: str | None, author: str | None) -> dict[str, str] | None:
    filters = {k: v for k, v in {"source": source, "kind": kind, "author": author}.items() if v}
    return filters or None


# What documents may hold that a terminal would obey: escape sequences (CSI, OSC such as window titles
# and hidden OSC-8 links, DCS/SOS/PM/APC strings, two-character escapes), C0 and C1 controls, and the
# bidirectional overrides that reorder what is shown.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC (to BEL or ST)
    r"|\x1b[@-Z\\-_]?"  # other escapes
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)


def _shown(text: str) -> str:
    """Text from documents as a terminal should print it: without escape sequences and control characters
    (line breaks and tabs stay)."""
    return _ESCAPES.sub("", text)


def _print_sources(answer: object) -> None:
    from rag.types import Answer

    assert isinstance(answer, Answer)
    if answer.refused:
        if answer.related:
            typer.echo("\nRelated passages (not citations):")
            for p in answer.related:
                who = f" — {p.author}" if p.author else ""
                typer.echo(_shown(f"  · {p.source}{who}: {_snippet(p.text)}"))
        return
    if answer.citations:
        typer.echo("\nSources:")
    for c in answer.citations:
        p = c.passage
        who = f" — {p.author}" if p.author else ""
        where = f"{p.title} › {p.section}" if p.section else p.title
        quotes = "\n      ".join(f"“{_snippet(q, 240)}”" for q in c.quotes)
        typer.echo(_shown(f"  [{c.marker}] {where} ({p.url or p.source}{who})\n      {quotes}"))


def _snippet(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@app.command()
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question.")],
    history: Annotated[
        Path | None, typer.Option("--history", help="JSON file: a list of {role, content} turns before it.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as one JSON object.")] = False,
    k: Annotated[int | None, typer.Option("--k", min=1, max=50, help="Passages to retrieve.")] = None,
    source: Annotated[str | None, typer.Option(help="Only passages from this source path.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only passages of this kind (article, comment).")] = None,
    author: Annotated[str | None, typer.Option(help="Only passages by this author.")] = None,
) -> None:
    """Answer one question from the indexed documents, with cited quotes."""
    from rag.pipeline import Pipeline

    settings = settings_from(ctx)
    turns = _read_history(history)
    pipeline = _pipeline(settings)
    assert isinstance(pipeline, Pipeline)
    with errors_exit():
        answer = pipeline.ask(question, turns, _filters(source, kind, author), k)
    if as_json:
        typer.echo(json.dumps(answer.to_json(), ensure_ascii=False))
        return
    typer.echo(_shown(answer.text))
    _print_sources(answer)


@app.command()
def chat(ctx: typer.Context) -> None:
    """A conversation in the terminal: follow-up questions use the history; /new starts over, /quit ends."""
    from rag.pipeline import Pipeline
    from rag.types import Turn

    settings = settings_from(ctx)
    pipeline = _pipeline(settings)
    assert isinstance(pipeline, Pipeline)
    with errors_exit():
        pipeline.ensure_ready()
    typer.echo("loading the model…", err=True)  # now, not silently on the first question
    pipeline.load_model()
    typer.echo("Ask a question about the documents (/new starts a new conversation, /quit or Ctrl-D ends).")
    turns: list[object] = []
    while True:
        try:
            question = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo()
            return
        if question in ("/quit", "/exit"):
            return
        if question == "/new":
            turns = []
            typer.echo("(new conversation)")
            continue
        if not question:
            continue

        try:
            answer = _stream_to_terminal(pipeline, question, turns)
        except RagError as exc:  # this question failed; the next may not
            typer.echo(f"error: {exc}", err=True)
            continue
        _print_sources(answer)
        turns += [Turn("user", question), Turn("assistant", answer.text)]


def _stream_to_terminal(pipeline: object, question: str, turns: list[object]) -> Answer:
    """Print an answer as it streams; return the finished answer."""
    from rag.pipeline import Pipeline
    from rag.types import Done, TextDelta

    assert isinstance(pipeline, Pipeline)
    answer = None
    for event in pipeline.stream(question, turns):
        if isinstance(event, TextDelta):
            typer.echo(_shown(event.text), nl=False)
        elif isinstance(event, Done):
            answer = event.answer
    typer.echo()
    assert answer is not None
    return answer


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    dataset: Annotated[
        Path | None, typer.Argument(help="JSONL dataset (see evals/dataset.py for the format).")
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            help="Ingest this folder into a temporary index, evaluate there, delete it "
            "(default: the configured index).",
        ),
    ] = None,
    all_suites: Annotated[
        bool,
        typer.Option("--all", help="Run every suite of the suites file, each in its own temporary index."),
    ] = False,
    suites_file: Annotated[
        Path | None, typer.Option("--suites", help="The suites file of --all (default: evals/suites.toml).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write one JSON object per case here.")] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a Markdown report (and a PNG chart).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the metrics (one object per suite/config) here.")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="Passages retrieved per question.")] = 5,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", help="Configuration(s) to compare (repeatable); default: default."),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Fit the answerer's deciding constants on the tuning suites and write rag/calibration.toml.",
        ),
    ] = False,
) -> None:
    """Run an evaluation dataset (or every suite, --all) through the pipeline and report the metrics
    (exit 1 only when cases fail to run); --calibrate fits the answerer's constants instead."""
    from evals.runner import CONFIGS

    settings = settings_from(ctx)
    if calibrate:
        if dataset is not None or all_suites:
            fail(
                "--calibrate runs on the tuning suites of the suites file; give no DATASET or --all",
                EXIT_USAGE,
            )
        _calibrate(settings, suites_file)
        return
    configs = config or ["default"]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        fail(f"unknown configuration {unknown[0]!r}; known: {', '.join(CONFIGS)}", EXIT_USAGE)
    command = "rag eval " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "rag eval"
    if all_suites:
        if dataset is not None:
            fail("give a DATASET or --all, not both", EXIT_USAGE)
        if corpus is not None:
            fail("--corpus goes with a DATASET; --all ingests each suite's own corpus", EXIT_USAGE)
        errors = _eval_all(settings, suites_file, configs, k, out, report, json_out, command)
    else:
        if dataset is None:
            fail("give a DATASET to evaluate, or --all to run every suite of evals/suites.toml", EXIT_USAGE)
        if suites_file is not None:
            fail("--suites goes with --all", EXIT_USAGE)
        errors = _eval_dataset(settings, dataset, corpus, configs, k, out, report, json_out, command)
    if errors:
        typer.echo(
            f"error: {errors} case(s) failed to run; see the report or --out for their errors", err=True
        )
        raise typer.Exit(EXIT_FAILED)


def _calibrate(settings: Settings, suites_file: Path | None) -> None:
    """`rag eval --calibrate`: fit on the tuning suites, print the values, write rag/calibration.toml."""
    from rich.console import Console

    from evals.calibrate import CALIBRATION, calibrate, write
    from evals.suites import SUITES, SuiteError, load_suites

    try:
        suites = load_suites(suites_file or SUITES)
    except SuiteError as exc:
        fail(str(exc), EXIT_USAGE)
    missing = [m for s in suites if not s.held_out and (m := s.missing())]
    if missing:
        fail(missing[0], EXIT_USAGE)
    console = Console(stderr=True)
    with errors_exit(), console.status("calibrating…") as status:
        result = calibrate(suites, settings, progress=status.update)
    write(result)
    typer.echo(
        f"fitted on {', '.join(result['suites'])} ({result['cases']} cases): selection covers "
        f"{result['fact_coverage']:.3f} of the fact groups (gold precision {result['gold_precision']:.3f}); "
        f"judge balanced accuracy {result['balanced_accuracy']:.3f}"
    )
    for key, value in result["answer"].items():
        typer.echo(f"  answer.{key} = {value}")
    typer.echo(f"written to {CALIBRATION}")


def _eval_dataset(
    settings: Settings,
    dataset: Path,
    corpus: Path | None,
    configs: list[str],
    k: int,
    out: Path | None,
    report: Path | None,
    json_out: Path | None,
    command: str,
) -> int:
    """`rag eval DATASET [--corpus DIR]`; returns the number of cases that failed to run."""
    from evals.dataset import DatasetError, load_dataset
    from evals.report import summary_rows, write_report
    from evals.runner import corpus_texts

    try:
        cases = load_dataset(dataset)
    except DatasetError as exc:
        fail(str(exc), EXIT_USAGE)
    if corpus is None:
        with errors_exit():
            texts = corpus_texts(settings)
            if not texts:
                fail("the index is empty: run `rag ingest` first", EXIT_EMPTY)
            _warn_missing_quotes(cases, texts, "")
            results = _run_cases(cases, settings, configs, k, "")
    else:
        results = _run_on_corpus(corpus, cases, settings, configs, k, None, "")
    header, rows = summary_rows(results)
    where = f", corpus {corpus}" if corpus is not None else ""
    _print_table(f"{dataset} ({len(cases)} cases{where}, k={k})", header, rows)
    if out:
        _write_rows(out, [({}, result) for result in results], several=len(results) > 1)
    if json_out:
        base = {"dataset": str(dataset), "corpus": str(corpus) if corpus is not None else None, "k": k}
        _write_json(json_out, [{**base, "config": r.config, **r.summary} for r in results])
    if report:
        image = write_report(results, cases, report, command)
        typer.echo(f"report: {report} (chart: {image})", err=True)
    return sum(r.summary["errors"] for r in results)


def _eval_all(
    settings: Settings,
    suites_file: Path | None,
    configs: list[str],
    k: int,
    out: Path | None,
    report: Path | None,
    json_out: Path | None,
    command: str,
) -> int:
    """`rag eval --all`: every suite in its own temporary index, one table; returns the failed cases."""
    from evals.dataset import DatasetError, load_dataset
    from evals.report import suite_rows, suite_summaries, write_suites_report
    from evals.runner import SuiteRun
    from evals.suites import SUITES, Suite, SuiteError, load_suites
    from rag.index.embeddings import Embedder

    path = suites_file or SUITES
    try:
        suites = load_suites(path)
    except SuiteError as exc:
        fail(str(exc), EXIT_USAGE)
    loaded: list[tuple[Suite, list[EvalCase]]] = []
    for suite in suites:  # every suite is checked before any runs: a bad one fails in seconds
        problem = suite.missing()
        if problem:
            fail(f"{path}: {problem}", EXIT_USAGE)
        try:
            loaded.append((suite, load_dataset(suite.dataset)))
        except DatasetError as exc:
            fail(f"suite {suite.name}: {exc}", EXIT_USAGE)
    embedder = Embedder(settings.embedding)
    runs = []
    for suite, cases in loaded:
        results = _run_on_corpus(suite.corpus, cases, settings, configs, k, embedder, f"{suite.name}: ")
        runs.append(SuiteRun(suite, cases, results))
    header, rows = suite_rows(runs)
    _print_table(f"{path} ({len(runs)} suites, k={k})", header, rows)
    if out:
        pairs = [({"suite": run.suite.name}, result) for run in runs for result in run.results]
        _write_rows(out, pairs, several=len(configs) > 1)
    if json_out:
        _write_json(json_out, suite_summaries(runs, k))
    if report:
        image = write_suites_report(runs, report, command)
        typer.echo(f"report: {report} (chart: {image})", err=True)
    return sum(r.summary["errors"] for run in runs for r in run.results)


def _warn_missing_quotes(cases: Sequence[EvalCase], texts: list[str], prefix: str) -> None:
    from evals.dataset import quotes_not_in_corpus

    for case_id, quote in quotes_not_in_corpus(cases, texts):
        typer.echo(
            f"warning: {prefix}{case_id}: evidence quote not in the corpus: {_snippet(quote, 80)}", err=True
        )


def _run_cases(
    cases: Sequence[EvalCase],
    settings: Settings,
    configs: list[str],
    k: int,
    prefix: str,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
) -> list[RunResult]:
    from rich.console import Console

    from evals.runner import run

    with Console(stderr=True).status("evaluating…") as status:
        return run(
            cases,
            settings,
            configs,
            k,
            embedder=embedder,
            store=store,
            progress=lambda name, i, n: status.update(f"{prefix}{name}: case {i}/{n}"),
        )


def _run_on_corpus(
    corpus: Path,
    cases: Sequence[EvalCase],
    settings: Settings,
    configs: list[str],
    k: int,
    embedder: Embedder | None,
    prefix: str,
) -> list[RunResult]:
    """Ingest `corpus` into a temporary index, run the cases there, delete the index."""
    from evals.runner import temporary_index
    from rag.index.embeddings import Embedder

    if not corpus.exists():
        fail(f"{prefix}no such corpus: {corpus}", EXIT_USAGE)
    embedder = embedder or Embedder(settings.embedding)
    typer.echo(f"{prefix}ingesting {corpus} into a temporary index…", err=True)
    with errors_exit(), temporary_index(corpus, settings, embedder=embedder) as index:
        for item in index.report.skipped:
            typer.echo(f"warning: {prefix}{item.source}: not ingested: {item.reason}", err=True)
        texts = index.texts()
        if not texts:
            fail(f"{prefix}no supported documents in the corpus {corpus}", EXIT_USAGE)
        _warn_missing_quotes(cases, texts, prefix)
        return _run_cases(cases, index.settings, configs, k, prefix, embedder, index.store)


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*header, title=title)
    for cells in rows:
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # a file or a pipe: no wrapping at 80 columns
        console = Console(width=max(console.width, 400))
    console.print(table)


def _write_rows(out: Path, results: list[tuple[dict[str, str], RunResult]], several: bool) -> None:
    """--out: one JSON object per case, after the given fields (the suite), plus the configuration when
    several are compared."""
    with open(out, "w", encoding="utf-8") as handle:
        for fields, result in results:
            for row in result.rows:
                record = {**fields, **({"config": result.config} if several else {}), **row}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _write_json(path: Path, summaries: list[dict[str, object]]) -> None:
    path.write_text(json.dumps(summaries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


@app.command()
def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the chat page.")] = 8501,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Start the Streamlit chat (ingests the default corpus on first start)."""
    import ui as ui_package

    settings_from(ctx)  # fail early, with one line, on bad settings
    app_path = Path(ui_package.__file__).parent / "app.py"
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_path),
        "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
        "--server.port", str(port), "--server.address", host,
    ]  # fmt: skip
    typer.echo(f"chat on http://{'localhost' if host == '127.0.0.1' else host}:{port}", err=True)
    sys.stderr.flush()
    # Streamlit takes this process's place: SIGTERM and Ctrl-C reach it, and no child is left serving.
    os.execv(sys.executable, command)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="Address (default: server.host).")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port (default: server.port).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Worker processes (uvicorn's); each loads the model and the index.",
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API and the wiki widget (/docs, /widget.js, /widget/demo)."""
    settings = settings_from(ctx)
    host, port = host or settings.server.host, port or settings.server.port
    server = settings.server.model_copy(update={"host": host, "port": port})
    settings = settings.model_copy(update={"server": server})
    from rag.api import create_app, is_loopback, server_config

    if not (server.api_keys or server.browser_keys) and not is_loopback(host):
        fail(
            f"refusing to listen on {host} without API keys: set RAG_SERVER__API_KEYS='[\"KEY\"]' "
            "or use --host 127.0.0.1",
            EXIT_USAGE,
        )
    if "*" in server.allowed_hosts:
        if server.browser_keys and not server.force_any_host:
            fail(
                'refusing server.allowed_hosts = ["*"] with browser keys: any Host would be served, '
                "which turns off DNS-rebinding protection; list the names clients use, or set "
                "RAG_SERVER__FORCE_ANY_HOST=true",
                EXIT_USAGE,
            )
        typer.echo(
            'warning: server.allowed_hosts is "*": any Host header is served (no DNS-rebinding protection)',
            err=True,
        )
    import uvicorn

    pipeline = _warm(settings) if workers == 1 else None
    typer.echo(f"API on http://{host}:{port} (docs: /docs, widget demo: /widget/demo)", err=True)
    if not is_loopback(host) and not server.allowed_hosts:
        typer.echo(
            "note: only requests for localhost, 127.0.0.1 and [::1] are served until the names clients use "
            "are listed in server.allowed_hosts",
            err=True,
        )
    if workers == 1:
        uvicorn.Server(server_config(create_app(settings, pipeline), host, port, log_level="info")).run()
        return
    from rag.api.app import WORKER_SETTINGS

    if server.redis_url is None:
        typer.echo(
            f"note: rate limits are counted in each of the {workers} workers; set server.redis_url to share them",
            err=True,
        )
    os.environ[WORKER_SETTINGS] = settings.model_dump_json()
    from uvicorn.supervisors import Multiprocess

    config = server_config(
        "rag.api.app:worker_app", host, port, factory=True, workers=workers, log_level="info"
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()  # what uvicorn.run does for workers > 1


def _warm(settings: Settings) -> Any:
    """The pipeline with its model and index loaded, so that the first question is not the slow one; None
    when the index cannot be used yet (the server starts anyway: /healthz says so, and it retries).
    Unknown backend names are usage errors (exit 2), as for `rag ask`."""
    from rag.pipeline import build_pipeline

    typer.echo("loading the model and the index…", err=True)
    try:
        with errors_exit():
            pipeline = build_pipeline(settings)
            pipeline.load_model()
            return pipeline
    except UnavailableError as exc:  # caught before errors_exit maps it: the server starts anyway
        typer.echo(f"note: the index cannot be used yet: {' '.join(str(exc).split())[:200]}", err=True)
        return None


@app.command()
def bench(
    ctx: typer.Context,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="A short run: 10,000 chunks, a smaller ingest corpus, one cold start."),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here.")
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Also write the Markdown report to BENCHMARKS.md.")
    ] = False,
    sizes: Annotated[
        list[str] | None,
        typer.Option("--sizes", help="Store sizes in chunks besides the default corpus (e.g. 10000,100000)."),
    ] = None,
    paragraphs: Annotated[
        int | None, typer.Option("--paragraphs", min=10, help="Generated paragraphs in the ingest corpus.")
    ] = None,
    queries: Annotated[
        int, typer.Option("--queries", min=0, help="Dev-set cases used per measurement (0 = all).")
    ] = 0,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Where the stores are built (default: a temporary folder)."),
    ] = None,
    cold: Annotated[
        int | None, typer.Option("--cold", min=0, help="Cold starts timed per system (default 3; --quick 1).")
    ] = None,
) -> None:
    """Benchmark ingest, retrieval, answers, cold start and quality beside the LangChain tutorial pipeline."""
    import shutil
    import tempfile

    from evals.bench import BenchConfig, BenchError, render_markdown, run

    settings = settings_from(ctx)
    try:
        chosen = [int(s) for item in sizes or [] for s in item.split(",") if s.strip()]
    except ValueError:
        fail(f"--sizes takes chunk counts, e.g. 10000,100000; got {sizes}", EXIT_USAGE)
    if any(size < 1 for size in chosen):
        fail("--sizes must be positive chunk counts", EXIT_USAGE)
    if not settings.corpus_dir.is_dir():
        fail(f"the default corpus {settings.corpus_dir} is not a folder", EXIT_USAGE)
    work = workdir or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    config = BenchConfig(
        corpus=str(settings.corpus_dir.resolve()),
        workdir=str(work.resolve()),
        sizes=chosen if sizes else [10_000] if quick else [10_000, 100_000],
        paragraphs=paragraphs or (500 if quick else 5000),
        queries=queries,
        cold_repeats=cold if cold is not None else 1 if quick else 3,
        load_requests=100 if quick else 500,
    )
    command = "rag bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "rag bench"
    try:
        result = run(config, progress=lambda step: typer.echo(step, err=True), command=command)
    except BenchError as exc:
        fail(f"{exc} (work folder: {work})", EXIT_FAILED)
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    report = render_markdown(result)
    typer.echo(report)
    if json_out:
        json_out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if write:
        Path("BENCHMARKS.md").write_text(report, encoding="utf-8")
