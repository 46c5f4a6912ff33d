"""Chat rows, what the zh/en instruction steps share (pipelines/steps/prepare_chat.py, dedup_chat.py): their
schemas, buckets and keys. The zh/en instruction part: read the recipe's instruction sources, normalize, decontaminate, deduplicate, and
write `chat/<lang>/<bucket>.parquet` for the mixture. Dropped rows go to `removed/chat/` with their reason.

Two stages, so that both scale with the number of tasks (this part is most of the rows of a BayLing-2 mixture):
1. `PrepareChat`: each task reads its chunks of the instruction files (see `InstructionSource.chunks`), drops
   rows without an answer and rows that overlap an evaluation set, and writes the rest into CHAT_BUCKETS buckets
   by a hash of the normalized instruction, with its place in the sources (`order`);
2. `DedupChat`: each task owns whole buckets, so all copies of an instruction meet in one task; the first copy in
   source order is kept, with its mixture selection key (`pipelines.mixture.selection_key`, computed once here: the
   driver's cutoff and the mix tasks both read it). Neither the buckets nor the order depend on the task count, so
   neither do the rows.
Whole columns at a time (polars), the hashes too (`schemas.records.stable_digests`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from schemas.records import CHAT_SCHEMA, stable_digests, stable_id
from schemas.text.normalize import SPACING, nfc

REMOVED_CHAT_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("stage", pa.string()), pa.field("reason", pa.string()), pa.field("detail", pa.string())])
CHAT_BUCKETS = 32  # divides 256 (a bucket is the key's first byte mod this); fixed: a duplicate always lands in the bucket of its first copy, whatever the task count
BUCKETED_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("key", pa.binary(16)), pa.field("order", pa.uint64())])
SELECTABLE_CHAT_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("selection_key", pa.string(), nullable=False)])  # chat/<lang>/<bucket>.parquet


def clean_contents(content: pl.Series) -> pl.Series:
    """NFC and no control characters; spacing kept (code in answers depends on it)."""
    return nfc(content).str.replace_all(r"[\p{Cc}--[\n\t]]", "").str.strip_chars()


def turns_of(messages: pl.Series) -> tuple[np.ndarray, pl.Series, pl.Series]:
    """Every row's number of turns, and all turns' roles and contents back to back: one flat column is cheaper to
    work on than lists, and lets a step skip the strings it need not touch (see `nfc`)."""
    lengths = messages.list.len().fill_null(0).to_numpy()
    turns = messages.explode(empty_as_null=False, keep_nulls=False).struct.unnest()
    return lengths, turns["role"], turns["content"]


def as_lists(lengths: np.ndarray, values: pa.Array) -> pl.Series:
    """`values` back into one list per row, row r taking the next lengths[r] of them. Strings in `values` should be
    Arrow string views (see `as_arrow`): polars takes those as they are, and copied other strings one by one."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pl.Series(pa.LargeListArray.from_arrays(pa.array(offsets), values))


def as_arrow(strings: pl.Series) -> pa.Array:
    return strings.to_arrow(compat_level=pl.CompatLevel.newest())  # string views: no copy either way


def as_messages(lengths: np.ndarray, role: pl.Series, content: pl.Series) -> pl.Series:
    return as_lists(lengths, pa.StructArray.from_arrays([as_arrow(role), as_arrow(content)], names=["role", "content"]))


def dedup_keys(lang: pl.Series, lengths: np.ndarray, role: pl.Series, lowered: pl.Series) -> pl.Series:
    """Instructions that differ only in letter case or spacing are the same instruction. `lowered`: every turn's
    content, lower-cased (see `turns_of`)."""
    folded_turns = pl.select(pl.lit(role) + "\x1e" + pl.lit(lowered).str.replace_all(SPACING, " ")).to_series()
    folded = pl.select(
        pl.concat_str([pl.lit(lang), as_lists(lengths, as_arrow(folded_turns)).list.join("\x1d")], separator="\x1f")
    ).to_series()
    return stable_digests(folded)


def malformed_chat_rows(records: list, source: str) -> pa.Table:
    """Malformed instruction records as removed rows: no turns (none could be read whole), the file and line in
    `detail` and `source_id`, and the start of the record's text after them in `detail`."""
    source_ids = [f"{Path(r.path).name}:{r.place.removeprefix('line ')}" for r in records]
    return pa.table(
        {"id": [stable_id(source, sid) for sid in source_ids], "messages": pa.array([[]] * len(records), type=CHAT_SCHEMA.field("messages").type),
         "lang": [r.src_lang for r in records], "source": [source] * len(records), "source_id": source_ids,
         "stage": ["chat"] * len(records), "reason": ["malformed"] * len(records), "detail": [f"{r.detail()}: {r.text[:200]}" for r in records]},
        schema=REMOVED_CHAT_SCHEMA,
    )  # fmt: skip
