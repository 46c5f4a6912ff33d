"""Write each task's instructions, one Parquet file per split and task (merged into shards by finalize)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from datatrove.pipeline.base import PipelineStep

from pipelines.steps.base import AtomicParquetWriter
from schemas.records import INSTRUCTION_SCHEMA, SPLITS


class TaskInstructionWriter(PipelineStep):
    name = "write_task_output"
    type = "💽 - WRITER"

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = Path(folder)

    def run(self, data, rank: int = 0, world_size: int = 1):
        writers = {split: AtomicParquetWriter(self.folder / split / f"{rank:05d}.parquet", INSTRUCTION_SCHEMA) for split in SPLITS}
        try:
            for batch in data:
                for split, writer in writers.items():
                    part = batch.filter(pc.equal(batch.column("split"), split))
                    if part.num_rows:
                        writer.write(part)
                        self.stat_update(split, value=part.num_rows)
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        for writer in writers.values():  # every task leaves one file per split, empty or not
            writer.close()
        return
        yield
