"""The shards stage's first half, for the configs of several shards only: each input file's rows split by shard (a
hash of the id, `shard_of`), so that each shard's task (`pipelines.steps.write_shards`) reads only its own rows."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.batch import FileJob, write_parquet_atomic
from schemas.records import INSTRUCTION_SCHEMA


def shard_of(ids: pl.Expr, count: int) -> pl.Expr:
    return ids.str.slice(0, 12).str.to_integer(base=16) % count


def shard_parts(parts_dir: Path, job: dict, index: int) -> Path:
    """Where `PartitionShards` puts the rows of shard `index` of a job: a file per input file, named by its number."""
    return Path(parts_dir) / job["config"] / job["split"] / f"{index:05d}"


class PartitionShards(FileJob):
    """The rows of every input file of a config of several shards, split by shard (`shard_parts`); tasks own input
    files. So each shard's task reads only its own rows, not every file of its config, which a config of n shards
    would have read n times (tests/benchmarks/bench_build.py)."""

    name = "partition_shards"
    type = "💽 - WRITER"

    def __init__(self, plan_path: Path, parts_dir: Path):
        super().__init__()
        self.plan_path = Path(plan_path)
        self.parts_dir = Path(parts_dir)

    def run_job(self, rank: int, world_size: int) -> None:
        plan = json.loads(self.plan_path.read_text())
        inputs = [(job, number) for job in plan if job["shards"] > 1 for number in range(len(job["files"]))]
        for job, number in inputs[rank::world_size]:
            parts: list[list[pa.RecordBatch]] = [[] for _ in range(job["shards"])]
            for batch in pq.ParquetFile(job["files"][number]).iter_batches(batch_size=65_536):  # a batch at a time, as WriteShards
                shards = pl.from_arrow(batch.column("id")).to_frame().select(shard_of(pl.col("id"), job["shards"])).to_series()
                for index, part in enumerate(parts):
                    part.append(batch.filter((shards == index).to_arrow()))
            for index, part in enumerate(parts):
                rows = pa.Table.from_batches(part, schema=part[0].schema) if part else INSTRUCTION_SCHEMA.empty_table()
                write_parquet_atomic(shard_parts(self.parts_dir, job, index) / f"{number:05d}.parquet", rows, work=True)
