"""The mixture stage: sample each language's clean pairs (and the zh/en instructions) to the plan, template them,
and write each language's rows of each split as its shard (`ready/<split>/<lang>.parquet`: tasks own whole
languages) and the zh/en part's rows to `instructions/train/chat-<lang>-<bucket>.parquet`."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.batch import AtomicParquetWriter, FileJob
from pipelines.mixture import selection_key, selection_keys, split_total
from pipelines.planning import CHAT_NAMES, chat_files
from pipelines.steps.read_pairs import languages_of_task
from pipelines.steps.write_shards import ready_shard, write_shard
from schemas.records import INSTRUCTION_SCHEMA, SPLITS
from schemas.text.templates import dialogue_rows, document_rows, ordered_runs, positioned, translation_rows

# a task's languages are templated together up to about this many sentences: `translation_rows` has a cost per call
# that small languages would pay each (tests/benchmarks/bench_build.py); this bounds the memory it takes
TEMPLATE_BATCH_ROWS = 100_000


def mixture_writer(path: Path) -> AtomicParquetWriter:
    """A file of the zh/en part of the mixture (`instructions/train/chat-<lang>-<bucket>.parquet`), read once by the
    shards stage. Uncompressed: zstd would slow the writing and save nothing on the way back
    (tests/benchmarks/bench_build.py). Otherwise encoded as the shards are (the writer's dictionaries and
    statistics): `shard_plan` measures these files' uncompressed sizes, which those settings change (the codec
    does not)."""
    return AtomicParquetWriter(path, INSTRUCTION_SCHEMA, compression="none")


def write_language(work_dir: Path, name: str, rows: pa.Table) -> None:
    """A language's instructions, each split that has rows as the config's shard would be if it is its only one
    (`ready_shard`): its one file, which the plan measures and the shards stage links into place (or splits, where
    the language is larger than a shard, 256 MB by default). No mixture file is written beside it, as
    the zh/en part has: writing the rows twice is a large part of the mix stage (tests/benchmarks/bench_build.py)."""
    splits = pl.from_arrow(rows.column("split"))  # compared by polars: see templates.no_rows on pyarrow and pandas
    for split in SPLITS:
        mine = splits == split
        if mine.any():  # all of them, in most languages: a corpus without held-out rows has train only
            write_shard(ready_shard(work_dir, split, name), rows if mine.all() else rows.filter(mine.to_arrow()))


KINDS = ("sentence", "document", "dialogue")  # of cross-lingual instruction (schemas/text/templates.py)


class MixInstructions(FileJob):
    name = "mix"
    type = "🥣 - MIX"

    def __init__(self, work_dir: Path, plan_path: Path, seed: int, templates=None, keep_every_row: bool = False):
        """`templates`: the recipe's (pipelines.recipe.Templates: a weight for each kind of cross-lingual instruction,
        and the segments of a document or dialogue); None: sentences only. Steps take values, not the recipe."""
        super().__init__()
        self.work_dir = Path(work_dir)
        self.plan_path = Path(plan_path)
        self.seed = seed
        self.weights = {kind: getattr(templates, kind) for kind in KINDS} if templates else {"sentence": 1.0, "document": 0.0, "dialogue": 0.0}
        self.segments = tuple(templates.segments) if templates else (2, 4)
        self.keep_every_row = keep_every_row  # no mixture: every candidate of every kind, no sampling

    def run_job(self, rank: int, world_size: int) -> None:
        budgets = json.loads(self.plan_path.read_text())
        langs = sorted(budgets["cross_lingual"])
        batch = []
        for lang in languages_of_task(langs, rank, world_size):
            pairs = pl.read_parquet(self.work_dir / "pairs" / f"{lang}.parquet")
            batch.append((lang, *self.choose(pairs, budgets["cross_lingual"][lang])))
            if sum(chosen.height for _, chosen, _ in batch) >= TEMPLATE_BATCH_ROWS:
                self.write_languages(batch)
                batch = []
        if batch:
            self.write_languages(batch)
        # the zh/en part (most of the rows): its files are spread over the tasks, the cutoff is global
        chat = [(name, lang, path) for name, lang in CHAT_NAMES.items() for path in chat_files(self.work_dir / "chat", lang)]
        out_dir = self.work_dir / "instructions" / "train"
        for name, lang, path in chat[rank::world_size]:
            self.stat_update(name, value=self.select_chat(path, out_dir / f"chat-{lang}-{path.stem}.parquet", budgets["chat_cutoffs"][name]))

    def write_languages(self, batch: list[tuple[str, pl.DataFrame, dict]]) -> None:
        """Each language's files, from what `choose` took of it."""
        for (lang, _, _), rows in zip(batch, self.instructions([(sentences, documents) for _, sentences, documents in batch])):
            for task, n in pl.from_arrow(rows.select(["task"]))["task"].value_counts().iter_rows():
                self.stat_update(task, value=n)
            write_language(self.work_dir, lang, rows)

    def instructions(self, chosen: list[tuple[pl.DataFrame, dict]]) -> list[pa.Table]:
        """The instructions of what `choose` took of each of several languages: sentences, documents, dialogues. The
        sentences of all of them are templated in one `translation_rows`, which works row by row: the same rows as a
        call per language, without its cost per call."""
        everything = pl.concat([sentences for sentences, _ in chosen])
        translations = translation_rows(everything.drop("reverse", "key"), everything["reverse"], self.seed)
        tables, start = [], 0
        for sentences, documents in chosen:
            tables.append(pa.concat_tables([
                translations.slice(start, sentences.height),
                document_rows([run for run, _ in documents["document"]], [r for _, r in documents["document"]], self.seed),
                dialogue_rows([run for run, _ in documents["dialogue"]], [r for _, r in documents["dialogue"]], self.seed),
            ]))  # fmt: skip
            start += sentences.height
        return tables

    def choose(self, pairs: pl.DataFrame, budget: int) -> tuple[pl.DataFrame, dict[str, list[tuple[list[dict], bool]]]]:
        """What becomes the language's instructions: `budget` train rows, shared among sentences, documents and
        dialogues by the template weights (sentences fill what documents and dialogues cannot), and every validation
        and test row. Within each kind, the candidates with the smallest selection keys are taken. The sentences (a
        pair and `reverse`) in their order, and per kind the (run of pairs, reverse) of the documents."""
        weights = self.weights
        fewest, most = self.segments
        sentences = pl.concat([pairs.with_columns(reverse=pl.lit(False)), pairs.with_columns(reverse=pl.lit(True))])
        directions = sentences.select(pl.when("reverse").then(pl.lit("back")).otherwise(pl.lit("forth"))).to_series()
        sentences = sentences.with_columns(key=selection_keys(self.seed, sentences["id"], directions)).sort("key")
        train = {"sentence": sentences.filter(pl.col("split") == "train").height}
        documents = {}
        ordered = positioned(pairs)  # once for both kinds: none in most corpora
        for kind in ("document", "dialogue"):
            runs = ordered_runs(ordered, fewest, most, self.seed, kind) if weights[kind] > 0 else []
            keyed = [(selection_key(self.seed, ";".join(p["id"] for p in run), f"{kind}:{'back' if r else 'forth'}"), run, r)
                     for run in runs for r in (False, True)]  # fmt: skip
            documents[kind] = [(run, r) for _, run, r in sorted(keyed, key=lambda k: k[0])]
            train[kind] = sum(run[0]["split"] == "train" for run, _ in documents[kind])
        if self.keep_every_row:
            take = train
        else:
            parts = split_total(budget, {k: w / sum(weights.values()) for k, w in weights.items() if w > 0})
            take = {kind: min(parts.get(kind, 0), train[kind]) for kind in ("document", "dialogue")}
            take["sentence"] = budget - sum(take.values())
        chosen = pl.concat([sentences.filter(pl.col("split") == "train").head(take["sentence"]), sentences.filter(pl.col("split") != "train")])
        for kind in ("document", "dialogue"):
            in_train = [c for c in documents[kind] if c[0][0]["split"] == "train"]
            documents[kind] = in_train[: take[kind]] + [c for c in documents[kind] if c[0][0]["split"] != "train"]
        return chosen, documents

    def select_chat(self, path: Path, out_path: Path, cutoff: str) -> int:
        """The rows of `path` whose selection key (see DedupChat) is at most `cutoff`, as instructions of the train
        split; batch by batch."""
        writer = mixture_writer(out_path)
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
            frame = pl.from_arrow(batch)
            rows = frame.filter(pl.col("selection_key") <= cutoff).select(
                "id", "messages", task=pl.lit("instruction"), src_lang="lang", tgt_lang="lang", instruction_lang="lang",
                pivot="lang", source="source", source_id="source_id", template_id=pl.lit("none"), split=pl.lit("train"),
            )  # fmt: skip
            if rows.height:
                writer.write(rows.to_arrow())
        writer.close()
        return writer.rows
