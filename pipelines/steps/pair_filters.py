"""Pair filters: empty sides, lengths, a flat length-ratio cap (None: none; the calibrated check is
length_ratio.LengthRatioCheck), identical sides."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.batch import BatchFilter, RemovedRows

# Han, kana and Hangul characters carry about as much as three Latin letters: counting them three times keeps
# the ratio of a Chinese sentence to its English translation near 1.
_WIDE = r"[\p{sc=Hani}\p{sc=Hira}\p{sc=Kana}\p{sc=Hang}]"


def visual_length(texts: pl.Expr) -> pl.Expr:
    return texts.str.len_chars() + 2 * texts.str.count_matches(_WIDE)


class PairFilter(BatchFilter):
    name = "pair_filter"

    def __init__(self, removed: RemovedRows, min_chars: int = 1, max_chars: int = 4096, max_length_ratio: float | None = 3.0):
        super().__init__(removed)
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.max_length_ratio = max_length_ratio

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        frame = pl.from_arrow(batch.select(["src_text", "tgt_text"])).select(
            src=visual_length(pl.col("src_text")), tgt=visual_length(pl.col("tgt_text")), same=pl.col("src_text") == pl.col("tgt_text")
        )
        src, tgt = pl.col("src"), pl.col("tgt")
        shorter, longer = pl.min_horizontal(src, tgt), pl.max_horizontal(src, tgt)
        ratio = longer / pl.max_horizontal(shorter, pl.lit(1))
        side_lengths = pl.format("lengths {} and {}", src, tgt)
        rules = [  # first match wins
            (shorter == 0, "empty", pl.lit("a side is empty")),
            (shorter < self.min_chars, "too_short", side_lengths),
            (longer > self.max_chars, "too_long", side_lengths),
            (pl.col("same"), "identical", pl.lit("both sides are the same text")),
            (ratio > (self.max_length_ratio or float("inf")), "length_ratio", pl.format("length ratio {} > {}", ratio.round(2), pl.lit(self.max_length_ratio))),
        ]
        reason, detail = pl.lit(None, pl.String), pl.lit(None, pl.String)
        for condition, name, text in reversed(rules):
            reason = pl.when(condition).then(pl.lit(name)).otherwise(reason)
            detail = pl.when(condition).then(text).otherwise(detail)
        # the details (formatted strings) only for the few rows dropped
        verdict = frame.with_row_index("row").with_columns(reason=reason)
        dropped = verdict.filter(pl.col("reason").is_not_null()).select("row", detail=detail)
        details = pl.Series("detail", [None] * frame.height, dtype=pl.String)
        if dropped.height:
            details = details.scatter(dropped["row"], dropped["detail"])
        return verdict.select("reason").with_columns(details)
