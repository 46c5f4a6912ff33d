"""`dedup_chat`: instruction-level exact dedup across all chat files; tasks own buckets of a hash of the normalized
instruction (pipelines/chat.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.batch import FileJob, write_parquet_atomic
from pipelines.chat import BUCKETED_SCHEMA, CHAT_BUCKETS, REMOVED_CHAT_SCHEMA, SELECTABLE_CHAT_SCHEMA
from pipelines.mixture import selection_keys
from schemas.records import CHAT_SCHEMA


class DedupChat(FileJob):
    name = "chat_dedup"
    type = "💬 - CHAT"

    def __init__(self, work_dir: Path, seed: int):
        super().__init__()
        self.work_dir = Path(work_dir)
        self.seed = seed  # of the mixture's selection keys

    def run_job(self, rank: int, world_size: int) -> None:
        for bucket in range(rank, CHAT_BUCKETS, world_size):
            self.dedup_bucket(bucket)

    def dedup_bucket(self, bucket: int) -> None:
        """The first copy of each instruction (in source order) to `chat/<lang>/<bucket>.parquet` with its selection
        key, the others to removed/ with the id of the copy kept."""
        files = sorted((self.work_dir / "chat_parts" / f"{bucket:03d}").glob("*.parquet"))
        rows = pl.read_parquet(files) if files else pl.from_arrow(BUCKETED_SCHEMA.empty_table())
        rows = rows.sort("order").with_columns(first_id=pl.col("id").first().over("key"), first=pl.col("key").is_first_distinct())
        duplicates = rows.filter(~pl.col("first")).select(
            *CHAT_SCHEMA.names, stage=pl.lit("chat"), reason=pl.lit("duplicate"), detail="same instruction as " + pl.col("first_id")
        )
        write_parquet_atomic(self.work_dir / "removed" / "chat" / f"dedup-{bucket:03d}.parquet", duplicates.to_arrow().cast(REMOVED_CHAT_SCHEMA), work=True)
        self.stat_update("duplicate", value=duplicates.height)
        kept = rows.filter(pl.col("first"))
        kept = kept.with_columns(selection_key=selection_keys(self.seed, kept["id"], "chat"))
        for (lang,), part in kept.group_by("lang"):
            write_parquet_atomic(self.work_dir / "chat" / lang / f"{bucket:03d}.parquet",
                                 part.select(SELECTABLE_CHAT_SCHEMA.names).to_arrow().cast(SELECTABLE_CHAT_SCHEMA), work=True)  # fmt: skip
            self.stat_update(lang, value=part.height)
