"""`prepare_chat`: the zh/en instruction sources, normalized and decontaminated, chunks of files spread over the
tasks (the chat rows: pipelines/chat.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pipelines.batch import AtomicParquetWriter, FileJob, write_parquet_atomic
from pipelines.chat import (BUCKETED_SCHEMA, CHAT_BUCKETS, REMOVED_CHAT_SCHEMA, as_messages, clean_contents, dedup_keys,
                            malformed_chat_rows, turns_of)  # fmt: skip
from schemas.text.overlap import eval_index


class PrepareChat(FileJob):
    name = "chat"
    type = "💬 - CHAT"

    def __init__(self, sources: list, chunks: list[tuple[int, tuple]], work_dir: Path, eval_sets: list, ngram: int, strict: bool = False):
        super().__init__()
        self.sources = sources
        self.strict = strict  # a malformed record stops the build; else it goes to removed/chat as `malformed`
        self.chunks = chunks
        self.work_dir = Path(work_dir)
        self.eval_sets = tuple(e if isinstance(e, str) else tuple(e) for e in eval_sets)  # paths or (name, path)
        self.ngram = ngram

    def run_job(self, rank: int, world_size: int) -> None:
        index = eval_index(self.eval_sets, self.ngram, folder=self.work_dir / "eval_index")
        for number in range(rank, len(self.chunks), world_size):
            source, chunk = self.chunks[number]
            malformed = None if self.strict else []  # filled while the chunk is read
            self.prepare_chunk(number, self.sources[source].read(chunk, malformed), index, malformed, self.sources[source].name)

    def prepare_chunk(self, number: int, tables, index, malformed: list | None = None, source: str = "") -> None:
        """Rows of chunk `number`, cleaned and checked, into `chat_parts/<bucket>/<number>.parquet`; the records of
        `malformed` (which reading `tables` fills) to removed/."""
        removed = AtomicParquetWriter(self.work_dir / "removed" / "chat" / f"chunk-{number:05d}.parquet", REMOVED_CHAT_SCHEMA, work=True)
        kept, first_row = [], 0
        try:
            for table in tables:
                frame = pl.from_arrow(table)
                lengths, role, content = turns_of(frame["messages"])
                content = clean_contents(content)
                lowered = content.str.to_lowercase()  # once, for the overlap check and the dedup key
                frame = frame.with_columns(
                    messages=as_messages(lengths, role, content),
                    order=pl.int_range(first_row, first_row + table.num_rows, dtype=pl.UInt64) + (number << 32),
                )
                first_row += table.num_rows
                verdict = self.reasons(lengths, role, lowered, index)
                dropped = frame.hstack(verdict).filter(pl.col("reason").is_not_null())
                if dropped.height:
                    removed.write(dropped.with_columns(stage=pl.lit("chat")).select(REMOVED_CHAT_SCHEMA.names).to_arrow())
                    for reason, count in dropped.group_by("reason").len().iter_rows():
                        self.stat_update(reason, value=count)
                keys = dedup_keys(frame["lang"], lengths, role, lowered)
                frame = frame.with_columns(key=keys, bucket=keys.bin.slice(0, 1).bin.reinterpret(dtype=pl.UInt8).cast(pl.UInt32) % CHAT_BUCKETS)
                kept.append(frame.filter(verdict["reason"].is_null()))
            if malformed:
                removed.write(malformed_chat_rows(malformed, source))
                self.stat_update("malformed", value=len(malformed))
        except BaseException:
            removed.abort()
            raise
        removed.close()
        for (b,), part in pl.concat(kept).group_by("bucket") if kept else []:
            write_parquet_atomic(self.work_dir / "chat_parts" / f"{b:03d}" / f"{number:05d}.parquet",
                                 part.select(BUCKETED_SCHEMA.names).to_arrow().cast(BUCKETED_SCHEMA), work=True)  # fmt: skip

    @staticmethod
    def reasons(lengths: np.ndarray, role: pl.Series, lowered: pl.Series, index) -> pl.DataFrame:
        """Columns `reason` and `detail` for each row (null where it is kept): no answer, or overlap with an
        evaluation set. Copies of an instruction get the same verdict (the overlap check folds case and spacing
        as the dedup key does), so checking them before dedup drops the same rows. The rows' turns are given back
        to back (see `turns_of`), their contents lower-cased (a content is empty exactly when its lower-cased one is)."""
        rows = len(lengths)
        row_of_turn = np.repeat(np.arange(rows), lengths)
        answer = ((role == "assistant") & (lowered.str.len_bytes() > 0)).fill_null(False).to_numpy()
        # per row, in numpy, not a group_by (tests/benchmarks/bench_chat.py)
        answered = np.bincount(row_of_turn[answer], minlength=rows) > 0
        name, how = [None] * rows, [None] * rows
        for turn, hit in enumerate(index.overlaps(lowered.fill_null(""), lowered=True)):
            if hit and name[row_of_turn[turn]] is None:  # a row's first turn with a finding names it
                name[row_of_turn[turn]], how[row_of_turn[turn]] = hit
        per_row = pl.DataFrame(
            {"unanswered": ~answered, "name": name, "how": how}, schema={"unanswered": pl.Boolean, "name": pl.String, "how": pl.String}
        )
        unanswered = pl.col("unanswered")
        return per_row.select(
            reason=pl.when(unanswered).then(pl.lit("no_answer")).when(pl.col("name").is_not_null()).then("overlap:" + pl.col("name")),
            detail=pl.when(unanswered).then(pl.lit("no non-empty assistant turn"))
            .when(pl.col("name").is_not_null()).then("a turn " + pl.col("how") + " an evaluation text of " + pl.col("name")),
        )  # fmt: skip
