"""How fast the embedding backends encode on this machine, by batch size: what `embedding.batch_size` and
`embedding.ingest_backend` are fitted by.

    python -m evals.encode_sweep [--texts 160] [--batches 1,2,4,8,16,64]

Texts: the longest chunks of the handbook suite's pages and chunks of the benchmark's generated corpus
(~700-900 characters, as ingest sees them). Prints chunks/s per backend and batch size (best of two runs)
and the fastest batch size of each backend on both kinds of text together.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from evals.bench_data import vocabulary_of, write_corpus
from ingest.chunking import chunk_document
from ingest.loaders import load_document
from rag.index.embeddings import Embedder
from rag.index.lexical import index_text
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def chunk_texts(files: list[Path], settings: Settings) -> list[str]:
    texts = []
    for file in files:
        doc = load_document(file.resolve(), file.name, 10**8)
        chunks = chunk_document(doc, settings.ingest.chunk_size, settings.ingest.chunk_overlap)
        texts += [index_text(c.text, c.metadata) for c in chunks]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=160, help="texts of each kind")
    parser.add_argument("--batches", default="1,2,4,8,16,64", help="batch sizes to try")
    args = parser.parse_args()
    settings = Settings()
    handbook = sorted(
        chunk_texts(sorted((REPO / "evals/corpora/handbook/docs").glob("*.md")), settings), key=len
    )
    with tempfile.TemporaryDirectory() as folder:
        files = write_corpus(Path(folder), vocabulary_of(REPO / "corpus"), 200, seed=3)
        generated = chunk_texts(files, settings)
    kinds = {"handbook": handbook[-args.texts :], "generated": generated[: args.texts]}
    batches = [int(b) for b in args.batches.split(",")]
    print("| backend | batch | " + " | ".join(f"{k} (chunks/s)" for k in kinds) + " |")
    print("|---|---:|" + "---:|" * len(kinds))
    for backend in ("onnx", "torch"):
        model = Embedder(settings.embedding.model_copy(update={"backend": backend})).model
        model.encode(["warm-up"], 1, bulk=True)
        totals: dict[int, float] = {}
        for batch in batches:
            rates = []
            for texts in kinds.values():
                best = 0.0
                for _ in range(2):
                    started = time.perf_counter()
                    model.encode(texts, batch, bulk=True)
                    best = max(best, len(texts) / (time.perf_counter() - started))
                rates.append(best)
            totals[batch] = sum(rates)
            print(f"| {backend} | {batch} | " + " | ".join(f"{r:.1f}" for r in rates) + " |")
        print(f"fastest {backend} batch size: {max(totals, key=lambda b: totals[b])}")


if __name__ == "__main__":
    main()
