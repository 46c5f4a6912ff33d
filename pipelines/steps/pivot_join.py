"""Pivot join: X <-> zho_Hans pairs from X <-> eng_Latn and zho_Hans <-> eng_Latn pairs that share their English.

The zho_Hans -> eng_Latn pairs come cleaned from an earlier stage (the same steps, run for zho_Hans alone). The
English of both is compared after normalization (case and spacing folded). Each joined pair keeps both
origins in `source` and `source_id`. Pairs from multiway sources (the embedded corpus) already have their
X <-> zho_Hans pair and are not joined.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep

from schemas.records import PAIR_SCHEMA, stable_ids
from schemas.text.normalize import folded


def english_key(texts: pl.Expr) -> pl.Expr:
    return folded(texts).str.strip_chars()


class PivotJoin(PipelineStep):
    name = "pivot_join"
    type = "🔗 - JOIN"

    def __init__(self, pivot_pairs: str | Path, skip_sources: set[str]):
        super().__init__()
        self.pivot_pairs = Path(pivot_pairs)
        self.skip_sources = set(skip_sources)

    def _pivot(self) -> pl.DataFrame:
        if not self.pivot_pairs.is_file():
            return pl.DataFrame(schema={"key": pl.String, "zh_text": pl.String, "zh_source": pl.String, "zh_source_id": pl.String})
        zh = pl.read_parquet(self.pivot_pairs).filter((pl.col("tgt_lang") == "eng_Latn") & (pl.col("split") == "train"))
        # one Chinese text per English sentence: the first by id, so the choice does not depend on reading order
        return (
            zh.sort("id")
            .select(key=english_key(pl.col("tgt_text")), zh_text="src_text", zh_source="source", zh_source_id="source_id")
            .unique("key", keep="first", maintain_order=True)
        )

    def run(self, data, rank: int = 0, world_size: int = 1):
        pivot = self._pivot()
        for batch in data:
            yield batch
            frame = pl.from_arrow(batch).filter(
                (pl.col("tgt_lang") == "eng_Latn") & (pl.col("split") == "train") & ~pl.col("source").is_in(list(self.skip_sources))
            )
            if not frame.height or not pivot.height:
                continue
            # in the batch's order: which copy of a pair dedup keeps depends on it (polars does not keep an order otherwise)
            joined = frame.with_columns(key=english_key(pl.col("tgt_text"))).join(pivot, on="key", how="inner", maintain_order="left")
            if not joined.height:
                continue
            joined = joined.select(
                src_lang="src_lang",
                src_text="src_text",
                tgt_lang=pl.lit("zho_Hans"),
                tgt_text="zh_text",
                source=pl.concat_str([pl.col("source"), pl.col("zh_source")], separator="+"),
                source_id=pl.concat_str([pl.col("source_id"), pl.col("zh_source_id")], separator="|"),
                split="split",
            )
            ids = stable_ids(joined.select(pl.concat_str("source", "source_id", "src_lang", pl.lit("zho_Hans"), separator="\x1f")).to_series())
            out = joined.with_columns(id=ids).select(PAIR_SCHEMA.names).to_arrow().cast(PAIR_SCHEMA)
            self.stat_update("joined", value=out.num_rows)
            yield out
