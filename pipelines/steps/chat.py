"""The zh/en instruction part: read the recipe's instruction sources, normalize, decontaminate, deduplicate, and
write `chat/<lang>/<bucket>.parquet` for the mixture. Dropped rows go to `removed/chat/` with their reason.

Two stages, so that both scale with the number of tasks (this part is most of the rows of a BayLing-2 mixture):
1. `PrepareChat`: each task reads its chunks of the instruction files (see `InstructionSource.chunks`), drops
   rows without an answer and rows that overlap an evaluation set, and writes the rest into CHAT_BUCKETS buckets
   by a hash of the normalized instruction, with its place in the sources (`order`);
2. `DedupChat`: each task owns whole buckets, so all copies of an instruction meet in one task; the first copy in
   source order is kept, with its mixture selection key (`pipelines.mixture.selection_key`, computed once here: the
   driver's cutoff and the mix tasks both read it). Neither the buckets nor the order depend on the task count, so
   neither do the rows.
Whole columns at a time (polars): only a row's 16-byte dedup key and its selection key are hashed in Python.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep

from pipelines.mixture import selection_keys
from pipelines.steps.base import WORK_COMPRESSION, AtomicParquetWriter, write_parquet_atomic
from pipelines.steps.decontaminate import eval_index
from schemas.records import CHAT_SCHEMA

REMOVED_CHAT_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("stage", pa.string()), pa.field("reason", pa.string()), pa.field("detail", pa.string())])
CHAT_BUCKETS = 32  # divides 256 (a bucket is the key's first byte mod this); fixed: a duplicate always lands in the bucket of its first copy, whatever the task count
BUCKETED_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("key", pa.binary(16)), pa.field("order", pa.uint64())])
SELECTABLE_CHAT_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("selection_key", pa.string(), nullable=False)])  # chat/<lang>/<bucket>.parquet


def _clean(content: pl.Expr) -> pl.Expr:
    """NFC and no control characters; spacing kept (code in answers depends on it)."""
    return content.str.normalize("NFC").str.replace_all(r"[\p{Cc}--[\n\t]]", "").str.strip_chars()


def clean_messages(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        messages=pl.col("messages").list.eval(
            pl.struct(role=pl.element().struct.field("role"), content=_clean(pl.element().struct.field("content")))
        )
    )


def lowered_messages(messages: pl.Expr) -> pl.Expr:
    """The messages with their content lower-cased: done once per row, for the overlap check and the dedup key."""
    return messages.list.eval(pl.struct(role=pl.element().struct.field("role"), content=pl.element().struct.field("content").str.to_lowercase()))


def dedup_keys(frame: pl.DataFrame) -> list[bytes]:
    """Instructions that differ only in letter case or spacing are the same instruction. `frame` has the messages
    lower-cased in column `lowered` (see `lowered_messages`)."""
    folded = frame.select(
        pl.concat_str(
            [
                pl.col("lang"),
                pl.col("lowered").list.eval(
                    pl.element().struct.field("role") + "\x1e" + pl.element().struct.field("content").str.replace_all(r"\s+", " ")
                ).list.join("\x1d"),
            ],
            separator="\x1f",
        )
    ).to_series()
    return [hashlib.blake2b(k, digest_size=16).digest() for k in folded.cast(pl.Binary).to_list()]  # UTF-8 bytes


def chat_chunks(sources: list) -> list[tuple[int, tuple]]:
    """Every instruction source's chunks, in source order: (source index, chunk). Computed once, by the driver."""
    return [(number, chunk) for number, source in enumerate(sources) for chunk in source.chunks()]


class PrepareChat(PipelineStep):
    name = "chat"
    type = "💬 - CHAT"

    def __init__(self, sources: list, chunks: list[tuple[int, tuple]], work_dir: Path, eval_sets: list, ngram: int):
        super().__init__()
        self.sources = sources
        self.chunks = chunks
        self.work_dir = Path(work_dir)
        self.eval_sets = tuple(e if isinstance(e, str) else tuple(e) for e in eval_sets)  # paths or (name, path)
        self.ngram = ngram

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        index = eval_index(self.eval_sets, self.ngram)
        for number in range(rank, len(self.chunks), world_size):
            source, chunk = self.chunks[number]
            self.prepare_chunk(number, self.sources[source].read(chunk), index)
        return
        yield

    def prepare_chunk(self, number: int, tables, index) -> None:
        """Rows of chunk `number`, cleaned and checked, into `chat_parts/<bucket>/<number>.parquet`."""
        removed = AtomicParquetWriter(self.work_dir / "removed" / "chat" / f"chunk-{number:05d}.parquet", REMOVED_CHAT_SCHEMA)
        kept, first_row = [], 0
        try:
            for table in tables:
                frame = clean_messages(pl.from_arrow(table)).with_columns(
                    order=pl.int_range(first_row, first_row + table.num_rows, dtype=pl.UInt64) + (number << 32)
                )
                frame = frame.with_columns(lowered=lowered_messages(pl.col("messages")))
                first_row += table.num_rows
                verdict = self.reasons(frame, index)
                dropped = frame.hstack(verdict).filter(pl.col("reason").is_not_null())
                if dropped.height:
                    removed.write(dropped.with_columns(stage=pl.lit("chat")).select(REMOVED_CHAT_SCHEMA.names).to_arrow())
                    for reason, count in dropped.group_by("reason").len().iter_rows():
                        self.stat_update(reason, value=count)
                frame = frame.filter(verdict["reason"].is_null())
                keys = pl.Series(dedup_keys(frame), dtype=pl.Binary)
                kept.append(frame.with_columns(key=keys, bucket=keys.bin.slice(0, 1).bin.reinterpret(dtype=pl.UInt8).cast(pl.UInt32) % CHAT_BUCKETS))
        except BaseException:
            removed.abort()
            raise
        removed.close()
        for (b,), part in pl.concat(kept).group_by("bucket") if kept else []:
            write_parquet_atomic(self.work_dir / "chat_parts" / f"{b:03d}" / f"{number:05d}.parquet",
                                 part.select(BUCKETED_SCHEMA.names).to_arrow().cast(BUCKETED_SCHEMA), compression=WORK_COMPRESSION)  # fmt: skip

    @staticmethod
    def reasons(frame: pl.DataFrame, index) -> pl.DataFrame:
        """Columns `reason` and `detail` for each row (null where it is kept): no answer, or overlap with an
        evaluation set. Copies of an instruction get the same verdict (the overlap check folds case and spacing
        as the dedup key does), so checking them before dedup drops the same rows. `frame` has the messages
        lower-cased in column `lowered` (a turn's content is empty exactly when its lower-cased one is)."""
        turns = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), "lowered").explode("lowered").select(
            "row", content=pl.col("lowered").struct.field("content"), role=pl.col("lowered").struct.field("role")
        )
        hits = index.overlaps(turns["content"].fill_null(""), lowered=True)
        turns = turns.with_columns(
            name=pl.Series([h[0] if h else None for h in hits], dtype=pl.String),
            how=pl.Series([h[1] if h else None for h in hits], dtype=pl.String),
        )
        per_row = turns.group_by("row").agg(
            pl.col("name").drop_nulls().first(),
            pl.col("how").drop_nulls().first(),
            answered=((pl.col("role") == "assistant") & (pl.col("content").str.len_chars() > 0)).any(),
        )
        per_row = pl.DataFrame({"row": pl.int_range(frame.height, dtype=pl.UInt32, eager=True)}).join(per_row, on="row", how="left")
        answered = per_row["answered"].fill_null(False)
        return per_row.select(
            reason=pl.when(~answered).then(pl.lit("no_answer")).when(pl.col("name").is_not_null()).then("overlap:" + pl.col("name")),
            detail=pl.when(~answered).then(pl.lit("no non-empty assistant turn"))
            .when(pl.col("name").is_not_null()).then("a turn " + pl.col("how") + " an evaluation text of " + pl.col("name")),
        )  # fmt: skip


class DedupChat(PipelineStep):
    name = "chat_dedup"
    type = "💬 - CHAT"

    def __init__(self, work_dir: Path, seed: int):
        super().__init__()
        self.work_dir = Path(work_dir)
        self.seed = seed  # of the mixture's selection keys

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        for bucket in range(rank, CHAT_BUCKETS, world_size):
            self.dedup_bucket(bucket)
        return
        yield

    def dedup_bucket(self, bucket: int) -> None:
        """The first copy of each instruction (in source order) to `chat/<lang>/<bucket>.parquet` with its selection
        key, the others to removed/ with the id of the copy kept."""
        files = sorted((self.work_dir / "chat_parts" / f"{bucket:03d}").glob("*.parquet"))
        rows = pl.read_parquet(files) if files else pl.from_arrow(BUCKETED_SCHEMA.empty_table())
        rows = rows.sort("order").with_columns(first_id=pl.col("id").first().over("key"), first=pl.col("key").is_first_distinct())
        duplicates = rows.filter(~pl.col("first")).select(
            *CHAT_SCHEMA.names, stage=pl.lit("chat"), reason=pl.lit("duplicate"), detail="same instruction as " + pl.col("first_id")
        )
        write_parquet_atomic(self.work_dir / "removed" / "chat" / f"dedup-{bucket:03d}.parquet", duplicates.to_arrow().cast(REMOVED_CHAT_SCHEMA))
        self.stat_update("duplicate", value=duplicates.height)
        kept = rows.filter(pl.col("first"))
        kept = kept.with_columns(selection_key=selection_keys(self.seed, kept["id"], "chat"))
        for (lang,), part in kept.group_by("lang"):
            write_parquet_atomic(self.work_dir / "chat" / lang / f"{bucket:03d}.parquet",
                                 part.select(SELECTABLE_CHAT_SCHEMA.names).to_arrow().cast(SELECTABLE_CHAT_SCHEMA), compression=WORK_COMPRESSION)  # fmt: skip
            self.stat_update(lang, value=part.height)
