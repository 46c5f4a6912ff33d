"""Writers of intermediate results: each task's clean pairs, one Parquet file per language."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from datatrove.pipeline.base import PipelineStep

from pipelines.batch import AtomicParquetWriter
from schemas.records import PAIR_SCHEMA


class PairWriter(PipelineStep):
    """`<folder>/<src_lang>.parquet` for every language the task saw (tasks own whole languages)."""

    name = "write_pairs"
    type = "💽 - WRITER"

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = Path(folder)

    def run(self, data, rank: int = 0, world_size: int = 1):
        writers: dict[str, AtomicParquetWriter] = {}
        try:
            for batch in data:
                langs = pc.unique(batch.column("src_lang")).to_pylist()
                for lang in langs:
                    # a batch is most often of one language (a source file's slice): written as it is, not copied
                    part = batch if len(langs) == 1 else batch.filter(pc.equal(batch.column("src_lang"), lang))
                    if lang not in writers:  # work files: the mix stage reads them once
                        writers[lang] = AtomicParquetWriter(self.folder / f"{lang}.parquet", PAIR_SCHEMA, work=True)
                    writers[lang].write(part)
                    self.stat_update("pairs", value=part.num_rows)
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        for writer in writers.values():
            writer.close()
        return
        yield
