"""The batch engine: what the build's datatrove steps pass between them, how they drop rows, how they write files.

CONTRACT

- A batch is a `pyarrow.Table` of rows of one schema: `schemas.records.PAIR_SCHEMA` in the pairs and pivot stages
  (instructions, `CHAT_SCHEMA`, in the chat stages). A step receives an iterator of batches and yields batches;
  an empty batch is never passed on.
- `BatchStep.process(batch) -> batch` maps a batch to a batch (normalization, the pivot join).
- `BatchFilter.reasons(batch) -> polars.DataFrame` gives, one row per row of the batch, a `reason` (a short
  category, counted in datatrove's stats and in the manifest) and a `detail` (what exactly failed), both null
  where the row is kept. The base class passes the kept rows on and writes the dropped ones: a filter cannot drop
  a row without saying why. A batch with nothing to drop goes on as it is, not copied.
- Dropped rows go to `RemovedRows`: one work file per step, run and task, `<work>/removed/<step>/<run>-<rank>.parquet`
  (`REMOVED_SCHEMA`: the row, `stage` = the step's name, `reason`, `detail`); the manifest stage merges each step's
  files into the published `removed/<step>.parquet`.
- Atomicity: every file is written by `AtomicParquetWriter` under a temporary name and moved into place on
  `close()`; a task that fails `abort()`s its writers. A killed run leaves no partial file where a finished one is
  expected, so datatrove's completion markers can be trusted on resume.
- Determinism: a step keeps the order of the rows it passes on and writes, so the rows (and bytes) depend only on
  the input's order, which does not depend on the executor or the task count (tasks own whole languages).
- `FileJob`: a step that does not take batches but works on files (the chat, mix, shards and manifest stages); it
  is its pipeline's only step and ignores its input (see the class).

Batches rather than one datatrove `Document` per row: per-row Python across steps cost more than language
identification itself (docs/benchmarks.md, "Why the steps work on batches"; tests/benchmarks/bench_pair_steps.py
measures the steps on real batches).
"""

from __future__ import annotations

import os
import uuid
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from schemas.records import REMOVED_SCHEMA

Batches = Iterator[pa.Table]
# Files that only a later stage of the same build reads and whose sizes nothing depends on (the zh/en instruction
# parts, each task's removed rows): zstd costs more than it saves, once to write and once to read
# (tests/benchmarks/bench_build.py).
WORK_COMPRESSION = "none"
# Columns of few distinct values (language codes, sources, splits, tasks, templates, reasons and most details,
# "tgt predicted fra_Latn (0.97)"): the only ones that dictionary encoding pays for. On ids and texts the encoder
# builds a dictionary it then gives up, and readers decode it, which makes both writing and reading slower
# (tests/benchmarks/bench_build.py).
DICTIONARY_COLUMNS = frozenset({"task", "src_lang", "tgt_lang", "instruction_lang", "pivot", "lang", "source", "template_id", "split", "stage", "reason", "detail"})


def dictionary_columns(schema: pa.Schema) -> list[str]:
    return [name for name in schema.names if name in DICTIONARY_COLUMNS]


def statistics_columns(schema: pa.Schema) -> list[str]:
    """The columns a published file keeps min/max statistics for: those a reader filters on (language, task, split,
    ...; and the id, by which shards are sorted). Statistics of the texts are a large part of writing a shard and prune
    nothing (tests/benchmarks/bench_build.py)."""
    return [name for name in schema.names if name in DICTIONARY_COLUMNS or name == "id"]


class AtomicParquetWriter:
    """Writes one Parquet file under a temporary name and moves it into place only on `close()`, so a killed run
    never leaves a partial file where a finished one is expected. Dictionaries for `DICTIONARY_COLUMNS` only, and
    statistics for `statistics_columns`. `work=True`: a file only a later stage of the build reads and whose size
    nothing depends on: no compression and no statistics (no reader of ours filters on them). `tmp_dir`: where the
    temporary file is written (default: beside `path`); a build's work folder, so that a killed run leaves nothing
    next to a version's files (it must be on the same file system, for the final rename)."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, row_group_size: int = 65536, compression: str = "zstd",
                 work: bool = False, tmp_dir: str | os.PathLike | None = None):  # fmt: skip
        self.path = Path(path)
        self.schema = schema
        self.row_group_size = row_group_size
        self.options = {
            "compression": WORK_COMPRESSION if work else compression,
            "use_dictionary": dictionary_columns(schema),
            "write_statistics": False if work else statistics_columns(schema),
        }
        self._tmp = Path(tmp_dir or self.path.parent) / f".{self.path.name}.{uuid.uuid4().hex}.tmp"
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, **self.options)

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open()
        self._writer.write_table(table.select(self.schema.names).cast(self.schema), row_group_size=self.row_group_size)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is None:  # nothing written: still leave a valid empty file
            self._open()
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)


def write_parquet_atomic(path: str | os.PathLike, table: pa.Table, row_group_size: int = 65536, compression: str = "zstd",
                         work: bool = False, tmp_dir: str | os.PathLike | None = None) -> None:  # fmt: skip
    writer = AtomicParquetWriter(path, table.schema, row_group_size, compression, work=work, tmp_dir=tmp_dir)
    writer.write(table)
    writer.close()


class RemovedRows:
    """Where a step puts the rows it drops, with its name and the reason (our counterpart of datatrove's
    `exclusion_writer`): one file per step, stage and task under `<folder>/<step>/`."""

    def __init__(self, folder: str | os.PathLike, run: str = "run"):
        self.folder = Path(folder)
        self.run = run  # stages that share a step name write different files

    def writer(self, step: str, rank: int) -> AtomicParquetWriter:
        # the manifest stage merges each step's files into the one published file: these are work files
        return AtomicParquetWriter(self.folder / step / f"{self.run}-{rank:05d}.parquet", REMOVED_SCHEMA, work=True)


class BatchStep(PipelineStep):
    """A step that maps each batch to a batch: subclasses implement `process`."""

    def process(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    def run(self, data: Iterable[pa.Table], rank: int = 0, world_size: int = 1) -> Batches:
        for batch in data:
            with self.track_time("batch"):
                out = self.process(batch)
            if out.num_rows:
                yield out


class BatchFilter(PipelineStep):
    """A step that drops rows. Subclasses implement `reasons`, which gives for each row a reason to drop it
    (null to keep it) and a detail; dropped rows go to `removed` with both, so nothing disappears silently."""

    type = "🔻 - FILTER"

    def __init__(self, removed: RemovedRows):
        super().__init__()
        self.removed = removed

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        """A frame with columns `reason` and `detail` (strings, null where the row is kept), one row per row."""
        raise NotImplementedError

    def run(self, data: Iterable[pa.Table], rank: int = 0, world_size: int = 1) -> Batches:
        writer = self.removed.writer(self.name, rank)
        try:
            for batch in data:
                with self.track_time("batch"):
                    verdict = self.reasons(batch)
                    drop = verdict["reason"].is_not_null()
                    dropping = drop.any()
                    # a batch with nothing to drop goes on as it is (decontamination, mostly): filtering copies every row
                    kept = batch.filter((~drop).to_arrow()) if dropping else batch
                    if dropping:
                        dropped = pl.from_arrow(batch).filter(drop).with_columns(
                            stage=pl.lit(self.name), reason=verdict["reason"].filter(drop), detail=verdict["detail"].filter(drop)
                        )
                        writer.write(dropped.to_arrow())
                        for reason, count in dropped["reason"].value_counts().iter_rows():
                            self.stat_update(reason, value=count)
                self.stat_update("kept", value=kept.num_rows)
                if kept.num_rows:
                    yield kept
        except BaseException:
            writer.abort()
            raise
        writer.close()


class FileJob(PipelineStep):
    """A stage's job over files rather than a stream of batches: each task reads what earlier stages wrote to the
    work folder and writes its own files (the zh/en instruction chunks and buckets, a language's mixture, the
    shards, the manifest). Subclasses implement `run_job(rank, world_size)`, which picks the task's share of the
    work (whole chunks, buckets, languages or shards, so that the output does not depend on the task count).

    Why a datatrove step at all: datatrove gives such a job what the batch steps get, namely tasks spread over
    the workers by the Local or Ray executor, logs and stats per task, and completion markers, so that a rerun skips
    the finished tasks of a killed build. A file job is its pipeline's only step: it ignores its input and yields
    nothing."""

    @abstractmethod
    def run_job(self, rank: int, world_size: int) -> None:
        """This task's share of the job. What a later stage reads is written through `AtomicParquetWriter`
        (written aside, then renamed), so that a task run again after a kill finds either no file or a finished one;
        the manifest step writes `manifest.json` last, which marks a finished build."""

    def run(self, data: Iterable | None = None, rank: int = 0, world_size: int = 1) -> Batches:
        self.run_job(rank, world_size)
        return
        yield


TEXTS = ("src_text", "tgt_text")  # a pair's two sides, as columns and as the names details use
SIDES = ("src", "tgt")


def verdict_frame(height: int, rows, reason: pl.Series, detail: pl.Series) -> pl.DataFrame:
    """The frame `BatchFilter.reasons` returns: `reason` and `detail` at `rows` (the rows dropped, an array or a
    series), null elsewhere. Built from the dropped rows only (most rows are kept): one gather from their reasons and
    details and a null row."""
    which = np.full(height, len(rows), dtype=np.int64)
    which[np.asarray(rows, dtype=np.int64)] = np.arange(len(rows))
    frame = pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})
    return frame.extend(pl.DataFrame({"reason": [None], "detail": [None]}, schema=frame.schema))[which]
