"""The published layout's data files, one folder per config:

    <output>/data/<config>/<split>-NNNNN-of-NNNNN.parquet   instructions of one config: `zh`, `en` (the general
                                                            instructions) or a FLORES-200 code (the cross-lingual
                                                            rows of that language); a row's shard is a hash of its
                                                            id, rows sorted by id within a shard

Every row is stored once. The configs `all` and `cross_lingual` are unions of these folders, declared in the
card's YAML (`data/*/...` and `data/*_*/...`: FLORES-200 codes are the only folder names with an underscore).

Shard counts come from the sizes of the mixture's files, planned once by the driver (`pipelines.planning.shard_plan`)
so that every task agrees and the layout does not depend on the task count. Each shard is built by one task, so
memory is bounded by the shard size. A config of several shards is first split by shard, a task per input file
(`pipelines.steps.partition_shards`), so that each shard's task reads only its rows, not the whole config. A
language's config has one file per split, written by one mix task as its shard would be if it is its only one
(`ready_shard`, `write_shard`): the shards stage links that into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.batch import FileJob, write_parquet_atomic
from pipelines.steps.partition_shards import shard_parts
from schemas.records import INSTRUCTION_SCHEMA

ROW_GROUP_BYTES = 16 << 20  # streaming readers (datasets, the Hub viewer) fetch a row group at a time


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def text_bytes(rows: pa.Table) -> int:
    """The UTF-8 bytes of every string in the rows, message contents included: what a shard's row groups are sized
    by. The same for the same rows however they were built, which neither Arrow's nbytes (chunks, validity buffers)
    nor the Parquet size (known once written) is."""
    columns = [rows.column(name) for name, dtype in zip(rows.schema.names, rows.schema.types) if pa.types.is_string(dtype)]
    if "messages" in rows.schema.names:
        turns = pc.list_flatten(rows.column("messages"))
        columns += [pc.struct_field(turns, "role"), pc.struct_field(turns, "content")]
    return sum(pc.sum(pc.binary_length(column)).as_py() or 0 for column in columns)


def row_group_rows(size: int, rows: int) -> int:
    """Rows per row group of a shard: about ROW_GROUP_BYTES of text."""
    return min(100_000, max(100, ROW_GROUP_BYTES // max(1, size // max(1, rows))))


def write_shard(path: Path, rows: pa.Table, tmp_dir: Path | None = None) -> None:
    """A published shard: its rows sorted by id, zstd, row groups of about ROW_GROUP_BYTES of text (`text_bytes`);
    written under a temporary name in `tmp_dir` (default: beside it)."""
    write_parquet_atomic(path, rows.sort_by("id").cast(INSTRUCTION_SCHEMA), row_group_size=row_group_rows(text_bytes(rows), rows.num_rows),
                         tmp_dir=tmp_dir)  # fmt: skip


def ready_shard(work_dir: Path, split: str, name: str) -> Path:
    """Where the mix stage writes a language's rows of one split, as `write_shard` writes the config's shard if it is
    its only one: the shards stage links it into place instead of reading, sorting and writing it again (and the
    mix stage writes no other file of it)."""
    return Path(work_dir) / "ready" / split / f"{name}.parquet"


class WriteShards(FileJob):
    """The shards of the plan, a task per shard. Temporary files go to `tmp_dir` (the build's work folder), so
    that a killed task leaves nothing beside the version's files (default: beside them)."""

    name = "write_shards"
    type = "💽 - WRITER"

    def __init__(self, plan_path: Path, output_dir: Path, parts_dir: Path, tmp_dir: Path | None = None):
        super().__init__()
        self.plan_path = Path(plan_path)
        self.output_dir = Path(output_dir)
        self.parts_dir = Path(parts_dir)  # see PartitionShards
        self.tmp_dir = Path(tmp_dir) if tmp_dir is not None else None

    def run_job(self, rank: int, world_size: int) -> None:
        plan = json.loads(self.plan_path.read_text())
        shards = [(job, index) for job in plan for index in range(job["shards"])]
        for job, index in shards[rank::world_size]:
            path = self.output_dir / "data" / job["config"] / shard_name(job["split"], index, job["shards"])
            if self.link_ready(job, path, self.tmp_dir):
                self.stat_update(job["split"], value=job["rows"])
                continue
            if job["shards"] > 1:  # in the order of the job's files, as if read from them
                files = [shard_parts(self.parts_dir, job, index) / f"{number:05d}.parquet" for number in range(len(job["files"]))]
            else:
                files = job["files"]
            # batch by batch: a whole input file (the zh part is over a million rows) never sits in memory
            parts = [batch for path in files for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536)]
            rows = pa.Table.from_batches(parts, schema=parts[0].schema) if parts else INSTRUCTION_SCHEMA.empty_table()
            write_shard(path, rows, self.tmp_dir)
            self.stat_update(job["split"], value=rows.num_rows)

    @staticmethod
    def link_ready(job: dict, path: Path, tmp_dir: Path | None = None) -> bool:
        """Puts the job's one file in place where it is the config's one shard, already written as such by the mix
        stage (`ready_shard`): a hard link (a copy where the file system has none), so that a task run again finds
        it where it was."""
        ready = Path(job["files"][0])
        if job["shards"] > 1 or len(job["files"]) > 1 or ready != ready_shard(ready.parents[2], job["split"], ready.stem):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = (tmp_dir or path.parent) / f".{job['config']}.{path.name}.partial"
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        try:
            os.link(ready, partial)
        except OSError:
            shutil.copyfile(ready, partial)
        os.replace(partial, path)
        return True
