"""Unicode and whitespace normalization of both sides of a pair."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.steps.base import BatchStep


def normalize_text(texts: pl.Expr) -> pl.Expr:
    """NFC; control characters and byte-order marks removed (newlines kept); runs of spaces and of blank lines
    collapsed; ends stripped."""
    return (
        texts.str.normalize("NFC")
        .str.replace_all(r"[\t\x0B\x0C\r\u00A0\u2000-\u200A\u202F\u205F\u3000]", " ")
        .str.replace_all(r"[\p{Cc}\u200B\uFEFF--\n]", "")
        .str.replace_all(r" +", " ")
        .str.replace_all(r" ?\n[\n ]*", "\n")
        .str.strip_chars()
    )


class NormalizeText(BatchStep):
    name = "normalize"
    type = "✂️ - FORMAT"

    def process(self, batch: pa.Table) -> pa.Table:
        frame = pl.from_arrow(batch).with_columns(normalize_text(pl.col("src_text")), normalize_text(pl.col("tgt_text")))
        return frame.to_arrow().cast(batch.schema)
