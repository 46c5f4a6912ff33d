"""`length_ratio`: the log length ratio of the sides is too far from what is expected for the two languages, in
standard deviations that depend on the length (short strings vary more). The table: pipelines/length_table.py."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipelines.batch import TEXTS, BatchFilter, RemovedRows, verdict_frame
from pipelines.length_table import PIVOT, load_length_table

SENTENCE_END = r"[.。!?！？…।॥။።۔؟]['\"”’»)]*$"  # a full stop, question or exclamation mark, quotes after it


class LengthRatioCheck(BatchFilter):
    """Drops pairs whose log length ratio, ln(len src / len tgt) in characters, is more than `max_deviation` standard
    deviations from the one expected for the two languages (reason `length_ratio`).

    Expected: mu(src) - mu(tgt), where mu(L) is the median ln(len L / len English) of language L (its script's
    median where the table has no L; 0 where it has neither). Deviation: sigma(n) = sqrt(a + b / n), with n the
    longer side's length in English characters (len / exp(mu)), times sqrt(2) when neither side is English (two
    languages' deviations from English add up). Calibrated by `calibrate` on firefox:train pairs and UDHR train
    paragraphs (X <-> eng_Latn) only: see the table's `calibrated_on`.

    Where one side ends a sentence (SENTENCE_END) and the other does not, a sign that it was cut short, the pair may
    deviate `max_deviation_unended` only (None: as much as any other): it catches many more truncated pairs for few
    clean ones (tests/benchmarks/bench_pair_checks.py --split calibration)."""

    name = "length_ratio"

    def __init__(self, removed: RemovedRows, max_deviation: float = 4.5, table: str | Path | None = None,
                 max_deviation_unended: float | None = 3.0):  # fmt: skip
        super().__init__(removed)
        self.max_deviation = max_deviation
        self.max_deviation_unended = max_deviation if max_deviation_unended is None else min(max_deviation, max_deviation_unended)
        loaded = load_length_table(table)
        self.languages, self.scripts = loaded["languages"], loaded["scripts"]
        self.a, self.b = loaded["sigma"]["a"], loaded["sigma"]["b"]

    def expected(self, langs: pl.Expr) -> pl.Expr:
        script = langs.str.split("_").list.get(1, null_on_oob=True).replace_strict(self.scripts, default=0.0, return_dtype=pl.Float64)
        return langs.replace_strict(self.languages, default=script, return_dtype=pl.Float64)

    def deviations(self, batch: pa.Table) -> pl.DataFrame:
        """Per row: `ratio` (src/tgt characters), `expected` (the expected ratio) and `z` (deviations from it)."""
        frame = pl.from_arrow(batch.select(["src_lang", "tgt_lang", *TEXTS]))
        src_len = pl.col("src_text").str.len_chars().clip(1).cast(pl.Float64)
        tgt_len = pl.col("tgt_text").str.len_chars().clip(1).cast(pl.Float64)
        mu_src, mu_tgt = self.expected(pl.col("src_lang")), self.expected(pl.col("tgt_lang"))
        n = pl.max_horizontal(src_len / mu_src.exp(), tgt_len / mu_tgt.exp())
        scale = pl.when((pl.col("src_lang") == PIVOT) | (pl.col("tgt_lang") == PIVOT)).then(1.0).otherwise(math.sqrt(2))
        sigma = (self.a + self.b / n).sqrt() * scale
        log_ratio = src_len.log() - tgt_len.log()
        return frame.select(ratio=log_ratio.exp(), expected=(mu_src - mu_tgt).exp(), z=(log_ratio - (mu_src - mu_tgt)).abs() / sigma)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        ends = [pl.Series(batch.column(column)).str.contains(SENTENCE_END) for column in TEXTS]
        limit = pl.when(pl.Series(ends[0] != ends[1])).then(pl.lit(self.max_deviation_unended)).otherwise(pl.lit(self.max_deviation))
        found = self.deviations(batch).with_columns(limit=limit).with_row_index("row").filter(pl.col("z") > pl.col("limit"))
        unended = pl.when(pl.col("limit") < self.max_deviation).then(pl.lit(", one side ends a sentence and the other does not")).otherwise(pl.lit(""))
        detail = found.select(
            pl.format("length ratio {} where {} is expected ({} sd > {}{})", pl.col("ratio").round(2), pl.col("expected").round(2),
                      pl.col("z").round(1), pl.col("limit"), unended)  # fmt: skip
        ).to_series()
        return verdict_frame(batch.num_rows, found["row"], pl.Series(["length_ratio"] * found.height, dtype=pl.String), detail)
