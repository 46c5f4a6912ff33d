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
Whole columns at a time (polars), the hashes too (`schemas.records.stable_digests`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.batch import AtomicParquetWriter, FileJob, write_parquet_atomic
from pipelines.mixture import selection_keys
from schemas.records import CHAT_SCHEMA, stable_digests, stable_id
from schemas.text.normalize import SPACING, nfc
from schemas.text.overlap import eval_index

REMOVED_CHAT_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("stage", pa.string()), pa.field("reason", pa.string()), pa.field("detail", pa.string())])
CHAT_BUCKETS = 32  # divides 256 (a bucket is the key's first byte mod this); fixed: a duplicate always lands in the bucket of its first copy, whatever the task count
BUCKETED_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("key", pa.binary(16)), pa.field("order", pa.uint64())])
SELECTABLE_CHAT_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("selection_key", pa.string(), nullable=False)])  # chat/<lang>/<bucket>.parquet


def clean_contents(content: pl.Series) -> pl.Series:
    """NFC and no control characters; spacing kept (code in answers depends on it)."""
    return nfc(content).str.replace_all(r"[\p{Cc}--[\n\t]]", "").str.strip_chars()


def turns_of(messages: pl.Series) -> tuple[np.ndarray, pl.Series, pl.Series]:
    """Every row's number of turns, and all turns' roles and contents back to back: one flat column is cheaper to
    work on than lists, and lets a step skip the strings it need not touch (see `nfc`)."""
    lengths = messages.list.len().fill_null(0).to_numpy()
    turns = messages.explode(empty_as_null=False, keep_nulls=False).struct.unnest()
    return lengths, turns["role"], turns["content"]


def as_lists(lengths: np.ndarray, values: pa.Array) -> pl.Series:
    """`values` back into one list per row, row r taking the next lengths[r] of them. Strings in `values` should be
    Arrow string views (see `as_arrow`): polars takes those as they are, and copied other strings one by one."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pl.Series(pa.LargeListArray.from_arrays(pa.array(offsets), values))


def as_arrow(strings: pl.Series) -> pa.Array:
    return strings.to_arrow(compat_level=pl.CompatLevel.newest())  # string views: no copy either way


def as_messages(lengths: np.ndarray, role: pl.Series, content: pl.Series) -> pl.Series:
    return as_lists(lengths, pa.StructArray.from_arrays([as_arrow(role), as_arrow(content)], names=["role", "content"]))


def dedup_keys(lang: pl.Series, lengths: np.ndarray, role: pl.Series, lowered: pl.Series) -> pl.Series:
    """Instructions that differ only in letter case or spacing are the same instruction. `lowered`: every turn's
    content, lower-cased (see `turns_of`)."""
    folded_turns = pl.select(pl.lit(role) + "\x1e" + pl.lit(lowered).str.replace_all(SPACING, " ")).to_series()
    folded = pl.select(
        pl.concat_str([pl.lit(lang), as_lists(lengths, as_arrow(folded_turns)).list.join("\x1d")], separator="\x1f")
    ).to_series()
    return stable_digests(folded)


def malformed_chat_rows(records: list, source: str) -> pa.Table:
    """Malformed instruction records as removed rows: no turns (none could be read whole), the file and line in
    `detail` and `source_id`, and the start of the record's text after them in `detail`."""
    source_ids = [f"{Path(r.path).name}:{r.place.removeprefix('line ')}" for r in records]
    return pa.table(
        {"id": [stable_id(source, sid) for sid in source_ids], "messages": pa.array([[]] * len(records), type=CHAT_SCHEMA.field("messages").type),
         "lang": [r.src_lang for r in records], "source": [source] * len(records), "source_id": source_ids,
         "stage": ["chat"] * len(records), "reason": ["malformed"] * len(records), "detail": [f"{r.detail()}: {r.text[:200]}" for r in records]},
        schema=REMOVED_CHAT_SCHEMA,
    )  # fmt: skip


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
