"""The index, as both sides use it: the vector store (Chroma), the lexical index (BM25), the embedding
model, the catalog of indexed documents and the replicas' catch-up. The write side (`ingest`) and the read
side (`rag.pipeline`) depend on it; it depends on neither (see the import contracts in pyproject.toml)."""
