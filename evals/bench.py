"""`rag bench`: speed and quality of ours beside the LangChain tutorial pipeline (`evals.peer`), one run,
one machine.

Each stage runs in a fresh process (`python -m evals.bench stage NAME CONFIG`), so start-up costs are
real and peak memory is the stage's own: ours' ingest, the peer's ingest, ours' queries, the peer's
queries, then cold `rag ask` and cold tutorial queries (alternating). Within a stage, each step resets the
kernel's peak-RSS mark (`/proc/self/clear_refs`) and reads it back (`VmHWM`); where that is not possible
the process's peak so far (`getrusage`) is reported.

Sizes: the default corpus as ingested, then stores filled to 10,000 and 100,000 chunks: the real chunks
(with their real vectors) plus texts generated from the corpus vocabulary with random unit vectors (fixed
seed), the same texts and vectors for both systems. Queries are the dev-set questions, embedded by the
real model at query time. Nothing here is asserted: the numbers go into the report, with the targets.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rag.errors import RagError

Result = dict[str, Any]
Filler = Callable[[int], tuple[list[str], Any]]  # real chunk count -> synthetic (texts, vectors)
DEV_SET = Path(__file__).parent / "datasets" / "dev.jsonl"
COLD_QUESTION = "How much funding was returned?"
CHANGED_FILE = "imperial-jari-article.md"  # the file edited for "re-ingest after changing one file"
SEED = 20251127
BUSY_QUERIES = 40  # questions retrieved again while every core runs a busy loop in another process


@dataclass
class BenchConfig:
    corpus: str  # the default corpus folder
    workdir: str
    sizes: list[int] = field(default_factory=lambda: [10_000, 100_000])
    paragraphs: int = 5000  # generated paragraphs in the larger ingest corpus
    queries: int = 0  # dev cases used (0 = all)
    cold_repeats: int = 3
    load_requests: int = 500  # questions sent to `rag serve` at concurrency 20 (0 = skip)
    seed: int = SEED


# ---------------------------------------------------------------- measuring


def reset_peak() -> bool:
    """Reset this process's peak-RSS mark to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@contextmanager
def step(into: Result) -> Iterator[Result]:
    """Time a step and record its peak RSS into `into` (`seconds`, `peak_rss_mb`)."""
    reset_peak()
    started = time.perf_counter()
    yield into
    into["seconds"] = round(time.perf_counter() - started, 3)
    into["peak_rss_mb"] = peak_rss_mb()


def percentiles(values_ms: Sequence[float]) -> Result:
    from evals.metrics import percentile

    return {
        "p50_ms": round(percentile(values_ms, 50), 2),
        "p95_ms": round(percentile(values_ms, 95), 2),
        "n": len(values_ms),
    }


# ---------------------------------------------------------------- stages (each in its own process)


def cases(cfg: BenchConfig) -> list[Any]:
    from evals.dataset import load_dataset

    found = load_dataset(DEV_SET)
    return found[: cfg.queries] if cfg.queries else found


def retrieval_quality(cases: Sequence[Any], retrieved: Sequence[Sequence[str]], k: int) -> Result:
    """Evidence recall@k and MRR over the top k of each case's retrieved passage texts."""
    from evals.metrics import evidence_recall, mean, reciprocal_rank

    pairs = [(c, r[:k]) for c, r in zip(cases, retrieved, strict=True) if c.answerable and c.evidence]
    return {
        f"evidence_recall@{k}": round(mean([evidence_recall(c, r, k) for c, r in pairs]), 3),
        f"mrr@{k}": round(mean([reciprocal_rank(c, r) for c, r in pairs]), 3),
    }


class Side(Protocol):
    """One system under test, as the stages drive it: `Ours` here, `evals.peer.Tutorial` for the peer."""

    runtime: tuple[str, ...]  # the modules that run its model

    @property
    def embedded(self) -> int:
        """Texts embedded so far."""

    def load_model(self) -> None: ...

    def ingest(self, data_dir: Path, folder: Path) -> int:
        """Bring the index in `data_dir` in line with `folder`; the number of chunks indexed."""

    def fill(self, data_dir: Path, real_dir: Path, filler: Filler) -> Result:
        """Index the real chunks of `real_dir` (with their vectors) and the synthetic ones that
        `filler(real count)` makes; the seconds spent adding vectors (and building ours' BM25)."""

    def open(self, data_dir: Path) -> int:
        """Load the index for querying; the number of chunks in it."""

    def embed_query(self, text: str) -> Any: ...

    def retrieve(self, question: str) -> list[str]:
        """The texts of the passages retrieved for `question`, best first."""

    def answer(self, case: Any) -> Any:
        """The answer to a dev case, or None for a system that cannot answer offline."""

    def quality(self, cases: Sequence[Any], answers: Sequence[Any]) -> Result:
        """Answer-quality metrics (empty when there are no answers)."""


class Ours:
    def __init__(self, serving: bool = False) -> None:
        from rag.index.embeddings import Embedder
        from rag.settings import Settings

        # ingest encodes with `embedding.ingest_backend`, questions with `embedding.backend`
        embedding = Settings().embedding
        embedding = embedding if serving else embedding.for_ingest()
        onnx = embedding.backend == "onnx"
        self.runtime: tuple[str, ...] = ("onnxruntime", "tokenizers") if onnx else ("sentence_transformers",)

        side = self

        class CountingEmbedder(Embedder):
            def encode(self, texts: Sequence[str]) -> Any:
                side.embedded += len(texts)
                return super().encode(texts)

        self.embedded = 0
        self.settings = Settings
        self.embedder: Any = CountingEmbedder(embedding)
        self.pipeline: Any = None

    def load_model(self) -> None:
        self.embedder.model  # noqa: B018

    def ingest(self, data_dir: Path, folder: Path) -> int:
        from ingest.indexer import ingest

        return ingest([folder], self.settings(data_dir=data_dir), embedder=self.embedder).chunks_total

    def fill(self, data_dir: Path, real_dir: Path, filler: Filler) -> Result:
        from evals.bench_data import synthetic_metadata
        from rag.index.lexical import rebuild
        from rag.index.store import VectorStore

        real = VectorStore(self.settings(data_dir=real_dir)).collection.get(
            include=["documents", "metadatas", "embeddings"]
        )
        texts, vectors = filler(len(real["ids"]))
        settings = self.settings(data_dir=data_dir)
        store = VectorStore(settings)
        started = time.perf_counter()
        store.upsert(real["ids"], real["embeddings"], real["documents"], real["metadatas"])
        for at in range(0, len(texts), 5000):
            batch = texts[at : at + 5000]
            ids = [f"syn{i:06d}" for i in range(at, at + len(batch))]
            store.upsert(ids, vectors[at : at + 5000], batch, synthetic_metadata(batch, at))
        vectors_s = time.perf_counter() - started
        rebuild(settings.lexical_dir, store.iter_records(include_text=True))
        return {
            "vectors_s": round(vectors_s, 3),
            "lexical_s": round(time.perf_counter() - started - vectors_s, 3),
        }

    def open(self, data_dir: Path) -> int:
        from rag.index.embeddings import Embedder
        from rag.pipeline import build_pipeline

        settings = self.settings(data_dir=data_dir)
        self.embedder = Embedder(settings.embedding)  # a cold sentence cache; the model loads once a process
        self.pipeline = build_pipeline(settings, embedder=self.embedder)
        return int(self.pipeline.store.count())

    def embed_query(self, text: str) -> Any:
        return self.embedder.encode([text])

    def retrieve(self, question: str) -> list[str]:
        return [
            p.text for p in self.pipeline.retriever.retrieve(question, self.pipeline.settings.retrieval.k)
        ]

    def answer(self, case: Any) -> Any:
        return self.pipeline.ask(case.question, case.history)

    def quality(self, cases: Sequence[Any], answers: Sequence[Any]) -> Result:
        from evals.metrics import summarize
        from evals.runner import make_support, score_case
        from rag.verify import LexicalEmbeddingJudge

        supports = make_support(LexicalEmbeddingJudge(self.embedder))
        k = self.pipeline.settings.retrieval.k
        summary = summarize([score_case(c, a, k, supports) for c, a in zip(cases, answers, strict=True)])
        keep = (
            "fact_recall",
            "evidence_recall",
            "mrr",
            "citation_recall",
            "citation_precision",
            "refusal_rate",
        )
        return {
            **{key: round(summary[key], 3) for key in (*keep, "false_refusal_rate")},
            "passed": summary["passed"],
            "cases": summary["cases"],
            **retrieval_quality(cases, [[p.text for p in a.retrieved] for a in answers], 4),
        }


def _side(name: str, serving: bool = False) -> Side:
    if name == "ours":
        return Ours(serving)
    from evals.peer import Tutorial

    return Tutorial()


def stage_ingest(cfg: BenchConfig, name: str) -> Result:
    """Model load; cold, unchanged and one-file-changed ingest of the default corpus; the larger corpus
    cold and unchanged; the stores of the benchmark sizes filled."""
    from evals.bench_data import edit_one_paragraph, synthetic_chunks, vocabulary_of

    side = _side(name)
    started = time.perf_counter()
    for module in side.runtime:  # most of a cold start: reported with the model load
        importlib.import_module(module)
    out: Result = {"import_s": round(time.perf_counter() - started, 3)}
    with step(out.setdefault("model_load", {})):
        side.load_model()
    out["load_s"] = round(out["import_s"] + out["model_load"]["seconds"], 3)
    work = Path(cfg.workdir)
    corpus, default = work / "corpus", work / f"{name}-default"

    def measure(key: str, data_dir: Path, folder: Path) -> None:
        before = side.embedded
        with step(out.setdefault(key, {})) as record:
            record["chunks"] = side.ingest(data_dir, folder)
        record["embedded"] = side.embedded - before
        record["chunks_per_s"] = round(record["embedded"] / record["seconds"], 1) if record["seconds"] else 0

    measure("cold_default", default, corpus)
    measure("unchanged_default", default, corpus)
    original = edit_one_paragraph(corpus / CHANGED_FILE)
    measure("changed_one_file", default, corpus)
    (corpus / CHANGED_FILE).write_text(original, encoding="utf-8")
    side.ingest(default, corpus)  # back to the default corpus, for the query stage
    measure("cold_large", work / f"{name}-large", work / "large")
    measure("unchanged_large", work / f"{name}-large", work / "large")
    shutil.rmtree(work / f"{name}-large", ignore_errors=True)
    vocab = vocabulary_of(Path(cfg.corpus))
    for size in cfg.sizes:
        with step(out.setdefault(f"fill_{size}", {})) as record:
            filler = functools.partial(synthetic_chunks, vocab, size, seed=cfg.seed)
            record.update(side.fill(work / f"{name}-{size}", default, filler))
        record["chunks"] = side.open(work / f"{name}-{size}")
    return out


def _loop(cases: Sequence[Any], fn: Callable[[Any], Any]) -> tuple[Result, list[Any]]:
    """`fn(case)` for every case: latency percentiles and the values."""
    times, values = [], []
    for case in cases:
        started = time.perf_counter()
        values.append(fn(case))
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times), values


@contextmanager
def busy_neighbours() -> Iterator[int]:
    """One CPU-bound process per core for the duration, as when other test runs share the machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    spin = [sys.executable, "-c", "while True: pass"]
    procs = [subprocess.Popen(spin) for _ in range(cores)]
    try:
        time.sleep(0.5)
        yield cores
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def stage_serve(cfg: BenchConfig, name: str) -> Result:
    """At each size: open the index, then time query embedding, retrieval and answers over the dev set."""
    side = _side(name, serving=True)
    side.load_model()
    dev = cases(cfg)
    out: Result = {}
    for label in ["default", *map(str, cfg.sizes)]:
        with step(out.setdefault(label, {})) as record:
            started = time.perf_counter()
            record["chunks"] = side.open(Path(cfg.workdir) / f"{name}-{label}")
            record["startup_s"] = round(time.perf_counter() - started, 3)
            side.retrieve(COLD_QUESTION)  # warm-up
            side.answer(dev[0])
            record["query_embedding"], _ = _loop(dev, lambda c: side.embed_query(c.question))
            record["retrieval"], hits = _loop(dev, lambda c: side.retrieve(c.question))
            timing, answers = _loop(dev, side.answer)
            if any(a is not None for a in answers):
                record["answer"] = timing
            if label == "default":
                with busy_neighbours() as record["busy_neighbours"]:
                    record["retrieval_busy"], _ = _loop(
                        dev[:BUSY_QUERIES], lambda c: side.retrieve(c.question)
                    )
        record["quality"] = side.quality(dev, answers) or retrieval_quality(dev, hits, 4)
        record["raw_question"] = retrieval_quality(dev, hits, 4)
    return out


STAGES = ("ours-ingest", "peer-ingest", "ours-serve", "peer-serve")


def run_stage(stage: str, cfg: BenchConfig) -> Result:
    name, kind = stage.split("-")
    return stage_ingest(cfg, name) if kind == "ingest" else stage_serve(cfg, name)


# ---------------------------------------------------------------- orchestration


class BenchError(RagError):
    """A stage failed; the message says which and where its log is."""


def _env(workdir: str, **extra: str) -> dict[str, str]:
    """The environment of a stage: no RAG_* settings of the caller (the default configuration is
    measured), offline model loading, and one ONNX export of the model for every data dir of the run
    (built once, before anything is timed: see `run`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {
        **env, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "RAG_EMBEDDING__CACHE_DIR": str(Path(workdir) / "models"), **extra,
    }  # fmt: skip


def _spawn(name: str, cfg: BenchConfig) -> Result:
    log = Path(cfg.workdir) / f"{name}.log"
    command = [sys.executable, "-m", "evals.bench", "stage", name, json.dumps(asdict(cfg))]
    with open(log, "w") as err:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=err, cwd=cfg.workdir, env=_env(cfg.workdir), text=True
        )
    if done.returncode:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise BenchError(f"stage {name} failed (exit {done.returncode}): {' | '.join(tail)}")
    result: Result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _cold(command: list[str], cfg: BenchConfig, **env: str) -> Result:
    """A fresh process: seconds until it prints its first line (the answer), until it exits, its peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=cfg.workdir,
        env=_env(cfg.workdir, **env),
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    to_answer = time.perf_counter() - started
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if proc.returncode or not first.strip():
        raise BenchError(f"{' '.join(command[:3])} … failed (exit {proc.returncode})")
    return {
        "to_answer_s": round(to_answer, 3),
        "to_exit_s": round(time.perf_counter() - started, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "first_line": first.strip()[:120],
    }


def import_times(command: list[str], cfg: BenchConfig, top: int = 8, **env: str) -> list[Result]:
    """The modules a cold `rag ask` imports at the top level (itself, or lazily in a function), by their
    cumulative import time (`python -X importtime`), slowest first."""
    if command[3:4] == ["-c"]:  # no `rag` script next to the interpreter: nothing to time
        return []
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=cfg.workdir, env=_env(cfg.workdir, **env)
    )
    totals: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if not name.startswith("  ") and cumulative.strip().isdigit():  # a top-level import
                module = name.strip()
                totals[module] = totals.get(module, 0) + int(cumulative)
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return [{"module": name, "ms": round(us / 1000, 1)} for name, us in ranked]


def _summary(runs: list[Result]) -> Result:
    return {
        "to_answer_s": round(statistics.median(r["to_answer_s"] for r in runs), 3),
        "to_exit_s": round(statistics.median(r["to_exit_s"] for r in runs), 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "runs": runs,
    }


def machine() -> Result:
    import platform

    cpu = platform.processor() or platform.machine()
    with suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(ram, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = (
        "rag-chat", "torch", "sentence-transformers", "transformers", "chromadb", "bm25s",
        "langchain-core", "langchain-chroma", "langchain-text-splitters",
    )  # fmt: skip
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _git_commit(folder: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


METHOD = [
    "Every stage is a fresh process; ours and the tutorial run the same steps on the same files, one after "
    "the other, in the same run on the same machine.",
    "The tutorial (evals/peer.py): RecursiveCharacterTextSplitter(1000, 200) over the raw files, the same "
    "all-MiniLM-L6-v2 model with HuggingFaceEmbeddings' defaults, langchain_chroma.Chroma, "
    "similarity_search(k=4). Its answer step needs an LLM, which this offline benchmark does not have: its "
    "answer latency, fact recall and citation metrics are n/a, and it is compared on retrieval.",
    "Re-ingest: ours diffs content-hash chunk ids against the store and embeds only new chunks; the tutorial "
    "keeps no record, so every re-run embeds every chunk (here into an emptied collection, not duplicating).",
    "Larger corpus: generated paragraphs of the default corpus's words (word frequencies kept, fixed seed) "
    "in Markdown articles of 25 paragraphs, plus one 12-comment Lemmy thread per 250 paragraphs; embedded "
    "by the real model.",
    "10,000 and 100,000 chunks: the real chunks with their real vectors, plus generated chunk-sized texts "
    "with random unit vectors (fixed seed), identical for both systems; our BM25 index is built over all of "
    "them. Queries are the dev-set questions, embedded by the real model at query time: retrieval latency "
    "includes the query embedding (shown apart as 'query embedding').",
    "Retrieval: ours is the default hybrid retriever (dense + BM25, fused; k=5); the tutorial's is "
    "similarity_search(k=4). Answer: ours' `Pipeline.ask` with the default extractive generator and "
    "verification, on each dev question once, with its history (warm process, cold sentence cache).",
    "Quality: the dev set's evidence quotes found in each system's top 4 passages (evidence recall@4, MRR "
    "over the top 4), the same k for both; ours retrieves as deployed (follow-ups condensed), the tutorial "
    "on the question as asked.",
    "Busy CPU: on the default corpus, 40 questions are retrieved again while one `while True: pass` "
    "process per core runs beside the stage, as when other test runs share the machine.",
    "Peak RSS: the kernel's high-water mark of the stage's process, reset before each step "
    "(/proc/self/clear_refs); cold start: the child's peak RSS (wait4).",
]


def run(
    cfg: BenchConfig, progress: Callable[[str], None] = lambda _: None, command: str = "rag bench"
) -> Result:
    """Run every stage (see the module docstring) and return the results with the targets."""
    from evals.bench_data import vocabulary, write_corpus

    started = time.perf_counter()
    work = Path(cfg.workdir)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(cfg.corpus, work / "corpus", dirs_exist_ok=True)
    vocab = vocabulary(
        p.read_text(encoding="utf-8") for p in sorted(Path(cfg.corpus).iterdir()) if p.is_file()
    )
    files = write_corpus(work / "large", vocab, cfg.paragraphs, cfg.seed)
    result: Result = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": _git_commit(Path(cfg.corpus).resolve().parent),
        "machine": machine(),
        "versions": versions(),
        "config": asdict(cfg) | {"large_files": len(files)},
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "method": METHOD,
    }
    progress("ONNX export of the model…")  # once, into the run's models/ (see `_env`); then only loaded
    build = "from rag.index.embeddings import Embedder; from rag.settings import Settings; Embedder(Settings().embedding).model"
    with step(result.setdefault("onnx_export", {})):
        subprocess.run([sys.executable, "-c", build], cwd=work, env=_env(cfg.workdir), check=True)
    stages = {}
    result["stage_seconds"] = {}
    for name in STAGES:
        progress(f"{name}…")
        stage_started = time.perf_counter()
        stages[name] = _spawn(name, cfg)
        result["stage_seconds"][name] = round(time.perf_counter() - stage_started, 1)
    result["ingest"] = {"ours": stages["ours-ingest"], "peer": stages["peer-ingest"]}
    result["query"] = {"ours": stages["ours-serve"], "peer": stages["peer-serve"]}
    progress("cold starts…")
    rag = Path(sys.executable).with_name("rag")
    ours_cmd = [str(rag)] if rag.exists() else [sys.executable, "-c", "from rag.cli import app; app()"]
    peer_cmd = [sys.executable, "-m", "evals.peer", "ask", "--persist", str(work / "peer-default")]
    ours, peer = [], []
    for _ in range(cfg.cold_repeats):
        ours.append(_cold([*ours_cmd, "ask", COLD_QUESTION], cfg, RAG_DATA_DIR=str(work / "ours-default")))
        peer.append(_cold([*peer_cmd, COLD_QUESTION], cfg))
    result["cold_ask"] = {"question": COLD_QUESTION}
    if ours:
        result["cold_ask"] |= {"ours": _summary(ours), "peer": _summary(peer)}
        imports = [sys.executable, "-X", "importtime", *ours_cmd, "ask", COLD_QUESTION]
        result["cold_ask"]["imports"] = import_times(imports, cfg, RAG_DATA_DIR=str(work / "ours-default"))
    if cfg.load_requests:
        progress("HTTP load…")
        questions = [c.question for c in cases(cfg) if not c.history]
        total = min(cfg.load_requests, 25 * len(questions))  # a run on a few dev questions stays short
        result["http_load"] = http_load(work / "ours-default", questions, total)
        progress("scaling out…")
        result["scale_out"] = scale_out(cfg, questions, total)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["targets"] = targets(result)
    return result


def http_load(data_dir: Path, questions: Sequence[str], total: int, concurrency: int = 20) -> Result:
    """`rag serve`'s app under uvicorn on loopback, `total` questions at `concurrency` (the dev questions
    in turn, each asked once first to warm the caches): latency percentiles, throughput, errors."""
    import socket
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import uvicorn

    from rag.api import create_app, server_config
    from rag.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        embedding={"cache_dir": data_dir.parent / "models"},
        server={"rate_limit_per_minute": 0},
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(settings), "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            for question in questions:
                client.post("/v1/ask", json={"question": question})

            def one(i: int) -> tuple[int, float]:
                begun = time.perf_counter()
                status = client.post("/v1/ask", json={"question": questions[i % len(questions)]}).status_code
                return status, (time.perf_counter() - begun) * 1000

            rss_before = peak_rss_mb()
            begun = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                results = list(pool.map(one, range(total)))
            elapsed = time.perf_counter() - begun
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return {
        "requests": total,
        "concurrency": concurrency,
        "errors": sum(status != 200 for status, _ in results),
        "throughput_rps": round(total / elapsed, 2),
        "peak_rss_growth_mb": round(peak_rss_mb() - rss_before, 1),
        **percentiles([ms for _, ms in results]),
    }


def _fire(urls: Sequence[str], questions: Sequence[str], total: int, concurrency: int) -> Result:
    """`total` questions at `concurrency`, sent to `urls` in turn (a round-robin load balancer), after one
    warm-up pass over every server: latency percentiles, throughput, errors."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with httpx.Client(timeout=300) as client:
        for url in urls:
            for question in questions:
                client.post(f"{url}/v1/ask", json={"question": question})

        def one(i: int) -> tuple[int, float]:
            begun = time.perf_counter()
            url, question = urls[i % len(urls)], questions[i % len(questions)]
            try:
                status = client.post(f"{url}/v1/ask", json={"question": question}).status_code
            except httpx.HTTPError:
                status = 0
            return status, (time.perf_counter() - begun) * 1000

        begun = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(total)))
        elapsed = time.perf_counter() - begun
    return {
        "requests": total,
        "errors": sum(status != 200 for status, _ in results),
        "throughput_rps": round(total / elapsed, 2),
        **percentiles([ms for _, ms in results]),
    }


def scale_out(cfg: BenchConfig, questions: Sequence[str], total: int, concurrency: int = 20) -> Result:
    """`rag serve` processes over one Chroma server (`chroma run` on ours' default index): one replica, two
    replicas with their own empty data dirs (requests alternate between them), and one server with
    `--workers 2`; each answers the same load."""
    import socket

    def port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    def wait(url: str, proc: subprocess.Popen[bytes]) -> None:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{url} did not come up (see the work folder's scale-*.log)")

    work = Path(cfg.workdir)
    chroma_port = port()
    chroma_bin = Path(sys.executable).with_name("chroma")
    env = _env(
        cfg.workdir,
        RAG_CHROMA_URL=f"http://127.0.0.1:{chroma_port}",
        RAG_SERVER__RATE_LIMIT_PER_MINUTE="0",
        ANONYMIZED_TELEMETRY="False",
    )
    started: list[subprocess.Popen[bytes]] = []

    def launch(command: list[str], log: str, **extra: str) -> subprocess.Popen[bytes]:
        with open(work / log, "wb") as out:
            proc = subprocess.Popen(
                command, cwd=work, env={**env, **extra}, stdout=out, stderr=subprocess.STDOUT
            )
        started.append(proc)
        return proc

    def serve(name: str, *extra: str) -> str:
        at = port()
        rag = [str(Path(sys.executable).with_name("rag")), "serve", "--port", str(at), *extra]
        proc = launch(rag, f"scale-{name}.log", RAG_DATA_DIR=str(work / f"scale-{name}"))
        wait(f"http://127.0.0.1:{at}/healthz", proc)
        return f"http://127.0.0.1:{at}"

    def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    out: Result = {"requests": total, "concurrency": concurrency}
    try:
        chroma = launch(
            [
                str(chroma_bin),
                "run",
                "--path",
                str(work / "ours-default" / "chroma"),
                "--port",
                str(chroma_port),
            ],
            "scale-chroma.log",
        )
        wait(f"http://127.0.0.1:{chroma_port}/api/v2/heartbeat", chroma)
        for label, servers in (
            ("1 replica", [()]),
            ("2 replicas", [(), ()]),
            ("--workers 2", [("--workers", "2")]),
        ):
            before = len(started)
            urls = [
                serve(f"{label.replace(' ', '-').strip('-')}-{i}", *extra) for i, extra in enumerate(servers)
            ]
            out[label] = _fire(urls, questions, total, concurrency)
            stop(started[before:])
    finally:
        stop([p for p in started if p.poll() is None])
    return out


# ---------------------------------------------------------------- report


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def targets(r: Result) -> list[Result]:
    """The issue's targets, each with the measured value and whether it is met (None: not measured)."""
    ours_q, peer_q, ingest = _get(r, "query", "ours"), _get(r, "query", "peer"), _get(r, "ingest", "ours")
    ingest_rate = _get(ingest, "cold_large", "chunks_per_s")
    rows = [
        ("retrieval p50 at 10,000 chunks", _get(ours_q, "10000", "retrieval", "p50_ms"), "<=", 10, "ms"),
        ("retrieval p50 at 100,000 chunks", _get(ours_q, "100000", "retrieval", "p50_ms"), "<=", 25, "ms"),
        ("answer p50, default corpus, warm", _get(ours_q, "default", "answer", "p50_ms"), "<=", 100, "ms"),
        ("ingest throughput, larger corpus", ingest_rate, ">=", 250, "chunks/s"),
        ("re-ingest of the unchanged corpus", _get(ingest, "unchanged_default", "seconds"), "<=", 1, "s"),
        ("chunks embedded by that re-ingest", _get(ingest, "unchanged_default", "embedded"), "<=", 0, ""),
        ("cold `rag ask` to printed answer", _get(r, "cold_ask", "ours", "to_answer_s"), "<=", 2, "s"),
        # issue 14 (faster on CPU)
        ("ingest throughput, larger corpus, on CPU", ingest_rate, ">=", 80, "chunks/s"),
        ("question embedding p50", _get(ours_q, "default", "query_embedding", "p50_ms"), "<=", 6, "ms"),
        (
            "peak RSS at 100,000 chunks, MB (<= the tutorial's)",
            _get(ours_q, "100000", "peak_rss_mb"),
            "<=",
            _get(peer_q, "100000", "peak_rss_mb"),
            "",
        ),
        ("evidence recall@5, dev set", _get(ours_q, "default", "quality", "evidence_recall"), ">=", 0.95, ""),
    ]
    for metric in ("evidence_recall@4", "mrr@4"):
        peer = _get(peer_q, "default", "quality", metric)
        rows.append(
            (f"{metric} >= the tutorial's", _get(ours_q, "default", "quality", metric), ">=", peer, "")
        )
    out = []
    for name, value, op, limit, unit in rows:
        met = None
        if value is not None and limit is not None:
            met = value <= limit if op == "<=" else value >= limit
        out.append({"target": name, "op": op, "limit": limit, "unit": unit, "value": value, "met": met})
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1 else f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def ratio(ours: Any, peer: Any) -> str:
    """ours/peer as `0.42×`, or an en dash when either side has no number."""
    if not isinstance(ours, int | float) or not isinstance(peer, int | float) or not peer:
        return "–"
    return f"{ours / peer:.2f}×"


NA_LLM = "n/a (needs an LLM)"
# (label, path into each side's results, which direction is better, what the tutorial shows when it has none)
Spec = tuple[str, tuple[str, ...], str, str]
INGEST: list[Spec] = [
    ("import + model load (s)", ("load_s",), "lower", ""),
    ("cold ingest, default corpus, after model load (s)", ("cold_default", "seconds"), "lower", ""),
    ("chunks, default corpus", ("cold_default", "chunks"), "", ""),
    ("ingest, larger corpus (s)", ("cold_large", "seconds"), "lower", ""),
    ("chunks, larger corpus", ("cold_large", "chunks"), "", ""),
    ("ingest throughput, larger corpus (chunks/s)", ("cold_large", "chunks_per_s"), "higher", ""),
    ("re-ingest, unchanged default corpus (s)", ("unchanged_default", "seconds"), "lower", ""),
    ("chunks embedded by it", ("unchanged_default", "embedded"), "lower", ""),
    ("re-ingest, unchanged larger corpus (s)", ("unchanged_large", "seconds"), "lower", ""),
    ("chunks embedded by it", ("unchanged_large", "embedded"), "lower", ""),
    ("re-ingest after editing one paragraph of one file (s)", ("changed_one_file", "seconds"), "lower", ""),
    ("chunks embedded by it", ("changed_one_file", "embedded"), "lower", ""),
    ("peak RSS, ingest of the larger corpus (MB)", ("cold_large", "peak_rss_mb"), "lower", ""),
]
QUERY: list[Spec] = [
    ("retrieval p50 (ms)", ("retrieval", "p50_ms"), "lower", ""),
    ("retrieval p95 (ms)", ("retrieval", "p95_ms"), "lower", ""),
    ("query embedding p50 (ms)", ("query_embedding", "p50_ms"), "lower", ""),
    ("retrieval p50, every core busy elsewhere (ms)", ("retrieval_busy", "p50_ms"), "lower", ""),
    ("retrieval p95, every core busy elsewhere (ms)", ("retrieval_busy", "p95_ms"), "lower", ""),
    ("answer p50 (ms)", ("answer", "p50_ms"), "lower", NA_LLM),
    ("answer p95 (ms)", ("answer", "p95_ms"), "lower", NA_LLM),
    ("evidence recall@4", ("quality", "evidence_recall@4"), "higher", ""),
    ("MRR@4", ("quality", "mrr@4"), "higher", ""),
    ("open the index (s)", ("startup_s",), "lower", ""),
    ("peak RSS (MB)", ("peak_rss_mb",), "lower", ""),
]
QUALITY: list[Spec] = [
    ("evidence recall@4", ("evidence_recall@4",), "higher", ""),
    ("MRR@4", ("mrr@4",), "higher", ""),
    ("evidence recall@5 (ours' default k)", ("evidence_recall",), "higher", "n/a (k=4)"),
    ("MRR (top 5)", ("mrr",), "higher", "n/a (k=4)"),
    ("fact recall", ("fact_recall",), "higher", NA_LLM),
    ("citation recall", ("citation_recall",), "higher", NA_LLM),
    ("citation precision", ("citation_precision",), "higher", NA_LLM),
    ("refusal on unanswerable", ("refusal_rate",), "higher", NA_LLM),
    ("false refusal", ("false_refusal_rate",), "lower", NA_LLM),
]
COLD: list[Spec] = [
    ("to the printed answer (s)", ("to_answer_s",), "lower", ""),
    ("to exit (s)", ("to_exit_s",), "lower", ""),
    ("peak RSS (MB)", ("peak_rss_mb",), "lower", ""),
]


def table(specs: Sequence[Spec], ours: Any, peer: Any, first: str = "") -> list[str]:
    """A Markdown table of ours beside the tutorial, with ratios; `first` prefixes the first label."""
    lines = ["| measure | ours | tutorial | ours/tutorial | better |", "|---|---:|---:|---:|---|"]
    for n, (label, path, better, missing) in enumerate(specs):
        o, p = _get(ours, *path), _get(peer, *path)
        if n and o is None and p is None and not missing:
            continue  # not measured at this size
        p = missing if p is None and missing else p
        name = f"{first}{label}" if n == 0 else label
        lines.append(f"| {name} | {_fmt(o)} | {_fmt(p)} | {ratio(o, p)} | {better} |")
    return lines


def render_markdown(r: Result) -> str:
    m, v = r.get("machine", {}), r.get("versions", {})
    cold = _get(r, "cold_ask") or {}
    lines = [
        "# Benchmarks",
        "",
        f"Made by `{r.get('command', 'rag bench')}` on {r.get('date', '?')}"
        + (f" at commit {r['commit']}" if r.get("commit") else "")
        + f", in {r.get('seconds', '?')} s.",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('ram_gb', '?')} GB RAM, "
        f"{m.get('os', '?')}, Python {m.get('python', '?')}. Load average (1, 5, 15 min) "
        f"{r.get('load_before')} before, {r.get('load_after')} after: the machine is shared.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        "**The peer** is the pipeline of the LangChain RAG tutorial (`evals/peer.py`), run on the same files "
        "with the same embedding model in the same run. Ratios are ours/tutorial; the last column says "
        "which direction is better.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---:|---|",
    ]
    for t in r.get("targets", []):
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        limit = f"{t['op']} {_fmt(t['limit'])} {t['unit']}".strip()
        lines.append(f"| {t['target']} ({limit}) | {_fmt(t['value'])} {t['unit']} | {met} |")
    ours, peer = _get(r, "query", "ours") or {}, _get(r, "query", "peer") or {}
    lines += ["", "## Quality on the dev set (default corpus)", ""]
    lines += table(QUALITY, _get(ours, "default", "quality"), _get(peer, "default", "quality"))
    lines += ["", "## Ingest", "", f"Larger corpus: {_get(r, 'config', 'paragraphs')} generated paragraphs "
              f"and threads in {_get(r, 'config', 'large_files')} files. Ours embeds questions with ONNX "
              f"Runtime (`embedding.backend`) and ingests with `embedding.ingest_backend`; the model's ONNX "
              f"export, built once per models folder before the run, took "
              f"{_fmt(_get(r, 'onnx_export', 'seconds'))} s.", ""]  # fmt: skip
    lines += table(INGEST, _get(r, "ingest", "ours"), _get(r, "ingest", "peer"))
    for size in _get(r, "config", "sizes") or []:
        lines += table(
            [(f"fill to {size:,} chunks, precomputed vectors (s)", (f"fill_{size}", "seconds"), "lower", "")],
            _get(r, "ingest", "ours"),
            _get(r, "ingest", "peer"),
        )[2:]
    lines += ["", "## Queries", "", "Chunks: ours / tutorial. The first row of each size gives its size.", ""]
    for label in ours:
        at = f"{_get(ours, label, 'chunks') or 0:,} / {_get(peer, label, 'chunks') or 0:,} chunks"
        rows = table(QUERY, ours[label], _get(peer, label), f"**{label}** ({at}): ")
        lines += rows if label == "default" else rows[2:]
    if _get(cold, "ours", "runs"):
        lines += ["", "## Cold start", "", f"A fresh process answering “{cold['question']}” (median of "
                  f"{len(cold['ours']['runs'])}): ours is `rag ask`, to its printed answer; the tutorial's "
                  "prints its four passages.", ""]  # fmt: skip
        lines += table(COLD, _get(cold, "ours"), _get(cold, "peer"))
        if cold.get("imports"):
            slowest = ", ".join(f"{i['module']} {i['ms']:,.0f} ms" for i in cold["imports"])
            lines += [
                "",
                f"What ours imports, slowest first (`python -X importtime`, cumulative): {slowest}.",
            ]
    load = _get(r, "http_load")
    if load:
        lines += ["", "## HTTP load", "", f"`rag serve` (uvicorn, loopback) answering {load['requests']} dev-set "
                  f"questions at concurrency {load['concurrency']}, after one warm-up pass; the extractive "
                  "generator; the tutorial has no server to compare with.", "",
                  "| errors | throughput (answers/s) | latency p50 (ms) | latency p95 (ms) | peak RSS growth (MB) |",
                  "|---:|---:|---:|---:|---:|",
                  f"| {load['errors']} | {load['throughput_rps']} | {load['p50_ms']} | {load['p95_ms']} | "
                  f"{load['peak_rss_growth_mb']} |"]  # fmt: skip
    scale = _get(r, "scale_out")
    if scale:
        lines += ["", "## Scaling out", "", f"`rag serve` processes over one Chroma server (`chroma run` on the "
                  f"default index), {scale['requests']} dev-set questions at concurrency {scale['concurrency']} "
                  "after a warm-up pass; two replicas start on empty data dirs (their lexical index and catalog "
                  "come from the store) and take requests in turn, as behind a round-robin load balancer. "
                  "The machine has 2 cores, which all of them share.", "",
                  "| servers | errors | throughput (answers/s) | latency p50 (ms) | latency p95 (ms) |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for label in ("1 replica", "2 replicas", "--workers 2"):
            row = scale.get(label) or {}
            lines.append(f"| {label} | {row.get('errors', '–')} | {row.get('throughput_rps', '–')} | "
                         f"{row.get('p50_ms', '–')} | {row.get('p95_ms', '–')} |")  # fmt: skip
    lines += ["", "## Method", "", *(f"- {line}" for line in r.get("method", METHOD)), ""]
    return "\n".join(lines)


def _stage_main(argv: Sequence[str]) -> int:
    name, raw = argv
    result = run_stage(name, BenchConfig(**json.loads(raw)))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "stage" or sys.argv[2] not in STAGES:
        sys.exit(f"usage: python -m evals.bench stage {{{','.join(STAGES)}}} CONFIG_JSON  (use `rag bench`)")
    sys.exit(_stage_main(sys.argv[2:]))
