"""Exact deduplication of pairs, and a cap on how often one sentence may be paired.

Tasks own whole languages (see read_pairs.languages_of_task), so a task sees every copy of a pair and the first
copy in reading order is kept, whatever the number of tasks.
"""

from __future__ import annotations

import collections

import polars as pl
import pyarrow as pa

from pipelines.steps.base import BatchFilter, RemovedRows
from schemas.records import stable_id


def _folded(column: str) -> pl.Expr:
    return pl.col(column).str.to_lowercase().str.replace_all(r"\s+", " ")


def dedup_keys(frame: pl.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """Keys of the pair and of each side: texts that differ only in letter case or spacing are the same."""
    keys = frame.select(
        pair=pl.concat_str(["src_lang", "tgt_lang", _folded("src_text"), _folded("tgt_text")], separator="\x1f"),
        src=pl.concat_str(["src_lang", "tgt_lang", _folded("src_text")], separator="\x1f"),
        tgt=pl.concat_str(["src_lang", "tgt_lang", _folded("tgt_text")], separator="\x1f"),
    )
    return tuple([stable_id(k) for k in keys[column]] for column in ("pair", "src", "tgt"))


class ExactPairDedup(BatchFilter):
    name = "exact_dedup"

    def __init__(self, removed: RemovedRows, max_pairs_per_sentence: int = 0):
        super().__init__(removed)
        self.max_pairs_per_sentence = max_pairs_per_sentence  # 0: no cap

    def run(self, data, rank: int = 0, world_size: int = 1):
        self._first_id: dict[str, str] = {}  # per task: copies of a pair never span tasks
        self._side_count: collections.Counter = collections.Counter()
        yield from super().run(data, rank, world_size)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        reason, detail = [], []
        pair_keys, src_keys, tgt_keys = dedup_keys(pl.from_arrow(batch))
        for row_id, pair, src, tgt in zip(batch.column("id").to_pylist(), pair_keys, src_keys, tgt_keys):
            kept = self._first_id.setdefault(pair, row_id)
            if kept != row_id:
                reason.append("duplicate")
                detail.append(f"same pair as {kept}")
                continue
            cap = self.max_pairs_per_sentence
            if cap and (self._side_count[src] >= cap or self._side_count[tgt] >= cap):
                side = "source" if self._side_count[src] >= cap else "target"
                reason.append("too_many_translations")
                detail.append(f"the {side} sentence already has {cap} pairs")
                continue
            self._side_count[src] += 1
            self._side_count[tgt] += 1
            reason.append(None)
            detail.append(None)
        return pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})
