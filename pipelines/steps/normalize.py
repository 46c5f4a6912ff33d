"""Unicode and whitespace normalization of both sides of a pair (the rules: schemas/text/normalize.py)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.batch import BatchStep
from schemas.text.normalize import normalize_if_changed


class NormalizeText(BatchStep):
    name = "normalize"
    type = "✂️ - FORMAT"

    def process(self, batch: pa.Table) -> pa.Table:
        # the two text columns alone, each only if a text changed: converting the whole batch to polars and back would
        # cost more than the normalizing (tests/benchmarks/bench_pair_steps.py)
        for name in ("src_text", "tgt_text"):
            rewritten = normalize_if_changed(pl.Series(batch.column(name)))
            if rewritten is not None:
                field = batch.schema.field(name)
                rewritten = rewritten.to_arrow().cast(field.type)
                batch = batch.set_column(batch.schema.get_field_index(name), field, rewritten)
        return batch
