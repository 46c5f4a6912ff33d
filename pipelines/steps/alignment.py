"""Optional misalignment scorer: cosine similarity of the two sides' sentence embeddings (LaBSE-style), from a
sentence-transformers model given by a local path or a Hub id already in the Hugging Face cache. Off unless the
recipe names a model (`filters.alignment.model`); needs the `align` extra (`pip install -e ".[align]"`)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.batch import BatchFilter, RemovedRows


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
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ImportError('filters.alignment.model needs sentence-transformers: pip install -e ".[align]"') from None
            try:
                self._model = SentenceTransformer(self.model_name, device=self.device, local_files_only=True)
            except OSError as e:
                raise OSError(f"filters.alignment.model: cannot load {self.model_name!r} from local files or the Hugging Face cache: {e}") from None
        return self._model

    def similarities(self, src: list[str], tgt: list[str]) -> np.ndarray:
        embeddings = self.model().encode(src + tgt, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return np.einsum("ij,ij->i", embeddings[: len(src)], embeddings[len(src) :])

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        scores = pl.Series("score", self.similarities(batch.column("src_text").to_pylist(), batch.column("tgt_text").to_pylist()))
        low = scores < self.min_similarity
        return pl.DataFrame({"score": scores}).select(
            reason=pl.when(low).then(pl.lit("low_similarity")),
            detail=pl.when(low).then(pl.format("cosine similarity {} < {}", pl.col("score").round(3), pl.lit(self.min_similarity))),
        )
