"""Read the recipe's parallel sources: each task reads the languages it owns, from every source."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep

from pipelines.batch import RemovedRows
from pipelines.sources import BATCH_ROWS, HAS_PIVOT, _pairs_table, orient
from schemas.records import REMOVED_SCHEMA


def languages_of_task(langs: list[str], rank: int, world_size: int) -> list[str]:
    """Whole languages go to one task (round robin over the sorted list), so per-language work needs no exchange
    between tasks and the rows do not depend on how many tasks there are."""
    return sorted(langs)[rank::world_size]


def malformed_rows(source, stage: str) -> pa.Table:
    """A source's malformed records as removed rows: reason `malformed`, the file and line in `detail` and in
    `source_id`, what could be read of the record as its text."""
    records = source.malformed()
    frame = pl.DataFrame(
        {"src_lang": [r.src_lang for r in records], "tgt_lang": [r.tgt_lang for r in records], "src_text": [r.text for r in records],
         "tgt_text": [""] * len(records), "source_id": [f"{Path(r.path).name}:{r.place}" for r in records],
         "detail": [r.detail() for r in records]},
        schema={name: pl.String for name in ("src_lang", "tgt_lang", "src_text", "tgt_text", "source_id", "detail")},
    )  # fmt: skip
    pairs = pl.from_arrow(_pairs_table(orient(frame, keep_unpaired=True).with_columns(split=pl.lit(source.split)), source.name))
    return pairs.with_columns(stage=pl.lit(stage), reason=pl.lit("malformed"), detail=frame["detail"]).to_arrow().cast(REMOVED_SCHEMA)


class PairReader(PipelineStep):
    """`source_languages[i]` is `sources[i].languages()`, computed once by the driver (it reads every file's
    language columns). With `removed`, task 0 also sends the pairs that have no pivot side (en-CA <-> en-GB) there:
    no build can use them, and they must not disappear silently; and likewise the malformed records the driver's
    `languages()` found (the sources skip them), once for the whole build."""

    name = "read_pairs"
    type = "📖 - READER"

    def __init__(self, sources: list, langs: list[str], source_languages: list[set[str]], removed: RemovedRows | None = None,
                 progress: bool = False):  # fmt: skip
        super().__init__()
        self.sources = sources
        self.langs = langs
        self.source_languages = source_languages
        self.removed = removed
        self.progress = progress

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        mine = set(languages_of_task(self.langs, rank, world_size))
        report = self.removed is not None and rank == 0
        writer = self.removed.writer(self.name, rank) if report else None
        sources = list(zip(self.sources, self.source_languages))
        if self.progress:
            from tqdm import tqdm

            sources = tqdm(sources, desc=f"task {rank}: sources", unit="source", position=rank, leave=False)
        try:
            for source in self.sources if report else []:
                if source.malformed():
                    bad = malformed_rows(source, self.name)
                    writer.write(bad)
                    self.stat_update("malformed", value=bad.num_rows)
            for source, languages in sources:
                wanted, unpaired = mine & languages, report and source.has_unpaired()
                if not wanted and not unpaired:
                    continue
                # batches of about BATCH_ROWS, where a source gives many small ones (a file per language of a few
                # thousand pairs): every step has a cost per batch (tests/benchmarks/bench_build.py, the pairs
                # stage). One chunk: polars panicked on several in the pair filter.
                pending: list[pa.Table] = []
                rows = 0
                for table in source.read(wanted, unpaired=unpaired):
                    if unpaired:
                        table = self.report_unpaired(table, writer)
                    self.stat_update("pairs", value=table.num_rows)
                    if table.num_rows:
                        pending.append(table)
                        rows += table.num_rows
                    if rows >= BATCH_ROWS:
                        yield pa.concat_tables(pending).combine_chunks()
                        pending, rows = [], 0
                if pending:
                    yield pa.concat_tables(pending).combine_chunks()
        except BaseException:
            if writer:
                writer.abort()
            raise
        if writer:
            writer.close()

    def report_unpaired(self, table: pa.Table, writer) -> pa.Table:
        frame = pl.from_arrow(table)
        paired = frame.select(HAS_PIVOT).to_series()
        if paired.all():
            return table
        unpaired = frame.filter(~paired).with_columns(
            stage=pl.lit(self.name),
            reason=pl.lit("no_pivot"),
            detail=pl.when(pl.col("src_lang") == pl.col("tgt_lang")).then("both sides are " + pl.col("src_lang"))
            .otherwise("neither side is eng_Latn or zho_Hans: " + pl.col("src_lang") + " <-> " + pl.col("tgt_lang")),
        )  # fmt: skip
        writer.write(unpaired.to_arrow())
        self.stat_update("no_pivot", value=unpaired.height)
        return table.filter(paired.to_arrow())
