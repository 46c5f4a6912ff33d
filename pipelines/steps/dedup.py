"""Exact deduplication of pairs within each language pair.

Tasks own whole languages (see read_udhr.shard_of), so a task sees every copy of a pair and the first copy in
reading order is kept, whatever the number of tasks.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.steps.base import BatchFilter, RemovedRows
from schemas.records import stable_id


def dedup_key(frame: pl.DataFrame) -> pl.Series:
    """Pairs that differ only in letter case or spacing are the same pair."""
    keys = frame.select(
        pl.concat_str(
            [pl.col("src_lang"), pl.col("tgt_lang"), pl.col("src_text").str.to_lowercase(), pl.col("tgt_text").str.to_lowercase()],
            separator="\x1f",
        ).str.replace_all(r"\s+", " ")
    ).to_series()
    return pl.Series([stable_id(k) for k in keys], dtype=pl.String)


class ExactPairDedup(BatchFilter):
    name = "exact_dedup"

    def __init__(self, removed: RemovedRows):
        super().__init__(removed)
        self._first_id: dict[str, str] = {}

    def run(self, data, rank: int = 0, world_size: int = 1):
        self._first_id = {}  # per task: copies of a pair never span tasks
        yield from super().run(data, rank, world_size)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        reason, detail = [], []
        for key, row_id in zip(dedup_key(pl.from_arrow(batch)), batch.column("id").to_pylist()):
            kept = self._first_id.setdefault(key, row_id)
            duplicate = kept != row_id
            reason.append("duplicate" if duplicate else None)
            detail.append(f"same pair as {kept}" if duplicate else None)
        return pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})
