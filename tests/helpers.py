"""Small builders for step tests."""

from __future__ import annotations

import pyarrow as pa

from schemas.records import PAIR_SCHEMA, stable_id


def pairs(rows: list[tuple], split: str = "train") -> pa.Table:
    """A PAIR_SCHEMA table from (src_lang, src_text, tgt_lang, tgt_text) tuples."""
    records = []
    for i, (src_lang, src_text, tgt_lang, tgt_text) in enumerate(rows):
        source_id = f"test:{i}"
        records.append(
            dict(id=stable_id("test", source_id, src_lang, tgt_lang), src_lang=src_lang, src_text=src_text,
                 tgt_lang=tgt_lang, tgt_text=tgt_text, source="test", source_id=source_id, split=split)
        )  # fmt: skip
    return pa.Table.from_pylist(records, schema=PAIR_SCHEMA)
