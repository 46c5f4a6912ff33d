"""The zh/en instruction part: read the recipe's instruction sources, normalize, deduplicate, decontaminate, and
write `chat/<lang>.parquet` for the mixture. Dropped rows go to `removed/chat/` with their reason.

Batch by batch, whole columns at a time (polars): this part is most of the rows of a BayLing-2 mixture (69%);
only the dedup keys (16 bytes each) are kept across batches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep

from pipelines.steps.base import AtomicParquetWriter
from pipelines.steps.decontaminate import eval_index
from schemas.records import CHAT_SCHEMA

REMOVED_CHAT_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("stage", pa.string()), pa.field("reason", pa.string()), pa.field("detail", pa.string())])


def _clean(content: pl.Expr) -> pl.Expr:
    """NFC and no control characters; spacing kept (code in answers depends on it)."""
    return content.str.normalize("NFC").str.replace_all(r"[\p{Cc}--[\n\t]]", "").str.strip_chars()


def clean_messages(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        messages=pl.col("messages").list.eval(
            pl.struct(role=pl.element().struct.field("role"), content=_clean(pl.element().struct.field("content")))
        )
    )


def dedup_keys(frame: pl.DataFrame) -> list[str]:
    """Instructions that differ only in letter case or spacing are the same instruction."""
    folded = frame.select(
        pl.concat_str(
            [
                pl.col("lang"),
                pl.col("messages").list.eval(
                    pl.element().struct.field("role")
                    + "\x1e"
                    + pl.element().struct.field("content").str.to_lowercase().str.replace_all(r"\s+", " ")
                ).list.join("\x1d"),
            ],
            separator="\x1f",
        )
    ).to_series()
    return [hashlib.blake2b(k.encode("utf-8"), digest_size=16).digest() for k in folded]


class BuildChat(PipelineStep):
    name = "chat"
    type = "💬 - CHAT"

    def __init__(self, sources: list, work_dir: Path, eval_sets: list[str], ngram: int):
        super().__init__()
        self.sources = sources
        self.work_dir = Path(work_dir)
        self.eval_sets = tuple(eval_sets)
        self.ngram = ngram

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if rank != 0:
            return
        index = eval_index(self.eval_sets, self.ngram)
        first_id: dict[bytes, str] = {}  # dedup key -> id of the first copy, across all batches and sources
        writers: dict[str, AtomicParquetWriter] = {}
        removed = AtomicParquetWriter(self.work_dir / "removed" / "chat" / "00000.parquet", REMOVED_CHAT_SCHEMA)
        try:
            for source in self.sources:
                for table in source.read():
                    kept, dropped = self.process(clean_messages(pl.from_arrow(table)), index, first_id)
                    if dropped.height:
                        removed.write(dropped.with_columns(stage=pl.lit("chat")).select(REMOVED_CHAT_SCHEMA.names).to_arrow())
                        for reason, count in dropped.group_by("reason").len().iter_rows():
                            self.stat_update(reason, value=count)
                    for (lang,), rows in kept.group_by("lang", maintain_order=True):
                        if lang not in writers:
                            writers[lang] = AtomicParquetWriter(self.work_dir / "chat" / f"{lang}.parquet", CHAT_SCHEMA)
                        writers[lang].write(rows.select(CHAT_SCHEMA.names).to_arrow())
                        self.stat_update(lang, value=rows.height)
        except BaseException:
            for writer in [removed, *writers.values()]:
                writer.abort()
            raise
        for writer in [removed, *writers.values()]:
            writer.close()
        return
        yield

    @staticmethod
    def process(frame: pl.DataFrame, index, first_id: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Kept and dropped rows of one batch (dropped with reason and detail)."""
        turns = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), "messages").explode("messages").select(
            "row", content=pl.col("messages").struct.field("content"), role=pl.col("messages").struct.field("role")
        )
        hits = index.overlaps(turns["content"].fill_null("").to_list())
        turns = turns.with_columns(hit=pl.Series([f"{h[0]}\x1f{h[1]}" if h else None for h in hits], dtype=pl.String))
        per_row = turns.group_by("row").agg(
            pl.col("hit").drop_nulls().first(), answered=((pl.col("role") == "assistant") & (pl.col("content").str.len_chars() > 0)).any()
        )
        frame = frame.with_row_index("row").join(per_row, on="row", how="left").sort("row")
        reason, detail = [], []
        for key, row_id, answered, hit in zip(dedup_keys(frame), frame["id"], frame["answered"], frame["hit"]):
            if not answered:
                reason.append("no_answer")
                detail.append("no non-empty assistant turn")
            elif key in first_id:
                reason.append("duplicate")
                detail.append(f"same instruction as {first_id[key]}")
            elif hit:
                name, how = hit.split("\x1f")
                reason.append(f"overlap:{name}")
                detail.append(f"a turn {how} an evaluation text of {name}")
            else:
                first_id[key] = row_id
                reason.append(None)
                detail.append(None)
        frame = frame.with_columns(reason=pl.Series(reason, dtype=pl.String), detail=pl.Series(detail, dtype=pl.String))
        return frame.filter(pl.col("reason").is_null()), frame.filter(pl.col("reason").is_not_null())
