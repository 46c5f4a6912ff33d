"""The build's stages, declared in order (`STAGES`): each one's name, whether it applies, its planning, its task
count and its steps. A stage is a list of datatrove PipelineSteps run by one executor; stages run one after another,
each reading what the earlier ones wrote into the work folder (docs/design.md, "Stages")."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import polars as pl

from pipelines import console, storage
from pipelines import recipe as recipes
from pipelines.batch import RemovedRows
from pipelines.card import flagged
from pipelines.planning import chat_chunks, chat_cutoffs, parse_size, plan, shard_plan, supply
from pipelines.runtime import Runtime
from pipelines.staging import BuildError, Staging
from pipelines.steps.alignment import AlignmentFilter
from pipelines.steps.decontaminate import Decontaminate
from pipelines.steps.dedup_chat import DedupChat
from pipelines.steps.encoding_check import EncodingCheck
from pipelines.steps.end_punctuation import EndPunctuationCheck
from pipelines.steps.exact_dedup import ExactPairDedup
from pipelines.steps.language_id import LanguageIdFilter
from pipelines.steps.length_ratio import LengthRatioCheck
from pipelines.steps.lexical_check import LexicalCheck
from pipelines.steps.mix import MixInstructions
from pipelines.steps.near_dedup import NearDuplicateDedup
from pipelines.steps.normalize import NormalizeText
from pipelines.steps.pair_filters import PairFilter
from pipelines.steps.partition_shards import PartitionShards
from pipelines.steps.pivot_join import PivotJoin
from pipelines.steps.prepare_chat import PrepareChat
from pipelines.steps.read_pairs import PairReader
from pipelines.steps.token_check import TokenCheck
from pipelines.steps.write import PairWriter
from pipelines.steps.write_manifest import WriteManifest
from pipelines.steps.write_shards import WriteShards
from schemas.text.udhr import udhr_provenance

# The pivot stage's one language. Its pairs with English are cleaned first, on their own, because the pairs stage
# needs them whole: the pivot join makes X <-> zho_Hans pairs from X <-> eng_Latn pairs that share their English,
# and the language-ID verdicts on their English side are shared with the pairs tasks.
PIVOT_STAGE_LANGUAGE = "zho_Hans"


@dataclass
class BuildContext:
    """What the stages of one build share: the recipe (options applied), the languages, the sources' languages
    (read once, by the driver), the evaluation sets, the staging folder and the manifest's first keys."""

    recipe: recipes.Recipe
    x_langs: list[str]  # the non-pivot languages, and zho_Hans (the pivot stage's) where asked
    source_languages: list
    eval_sets: list[tuple[str, str]]
    staging: Staging
    manifest_base: dict
    tasks: int = 4

    @property
    def work(self) -> Path:
        return self.staging.work

    @property
    def other_langs(self) -> list[str]:
        """The pairs stage's languages: all but the pivot stage's."""
        return [lang for lang in self.x_langs if lang != PIVOT_STAGE_LANGUAGE]

    @property
    def multiway(self) -> set[str]:
        return {s.name for s in self.recipe.parallel if getattr(s, "multiway", False)}

    @cached_property
    def chat_chunks(self) -> list:
        return chat_chunks(self.recipe.instructions)  # once, by the driver: it reads every file's size


@dataclass(frozen=True)
class Stage:
    """One stage: `steps` and `tasks` of the context; it runs where `applies`. `plan`, where given, runs first
    (before `applies`, which may read it): it writes the work file this stage and later ones read."""

    name: str
    steps: Callable[[BuildContext], list]
    tasks: Callable[[BuildContext], int]
    applies: Callable[[BuildContext], bool] = lambda context: True
    plan: Callable[[BuildContext], None] | None = None


def pair_checks(removed: RemovedRows, filters) -> list:
    """The pair checks beyond language ID that a recipe's `filters` ask for, in a fixed order: a pair two checks
    would drop is removed by the first, the most specific (broken encoding, then a token, punctuation, length, and
    the lexicon, which reads the length table)."""
    steps = []
    if filters.encoding:
        steps.append(EncodingCheck(removed))
    if filters.tokens:
        steps.append(TokenCheck(removed, filters.tokens))
    if filters.end_punctuation:
        steps.append(EndPunctuationCheck(removed, filters.end_punctuation))
    if filters.length is not None:
        length = filters.length
        steps.append(LengthRatioCheck(removed, length.max_deviation, length.table or None, length.max_deviation_unended))
    if filters.lexical is not None:
        lexical, length_table = filters.lexical, (filters.length.table or None) if filters.length is not None else None
        steps.append(LexicalCheck(removed, lexical.max_coverage, lexical.cut_words, lexical.lexicon or None, length_table))
    return steps


def task_bars() -> bool:
    """A bar per pairs task reading its sources: with -v only; the default shows a bar per stage instead."""
    return sys.stderr.isatty() and console.shows("INFO")


def pair_pipeline(recipe, sources, source_languages, langs, work: Path, run: str, pivot_join: PivotJoin | None, report_unpaired: bool,
                  eval_sets: list):  # fmt: skip
    removed = RemovedRows(work / "removed", run)
    near, align = recipe.dedup.near, recipe.filters.alignment
    return [
        PairReader(sources, langs, source_languages, removed if report_unpaired else None, progress=task_bars()),
        NormalizeText(),
        PairFilter(removed, recipe.filters.min_chars, recipe.filters.max_chars, recipe.filters.max_length_ratio),
        *pair_checks(removed, recipe.filters),
        Decontaminate(removed, eval_sets, recipe.decontamination.ngram, index_folder=work / "eval_index"),
        LanguageIdFilter(removed, recipe.langid.models, recipe.langid.threshold, recipe.langid.min_script_fraction, recipe.langid.min_model_chars,
                         work / "langid_verdicts"),
        *([AlignmentFilter(removed, align.model, align.min_similarity, align.batch_size, align.device)] if align.model else []),
        *([pivot_join] if pivot_join else []),
        ExactPairDedup(removed, recipe.dedup.max_targets_per_source),
        *([NearDuplicateDedup(removed, near.ngram, near.num_buckets, near.hashes_per_bucket, near.seed)] if near.enabled else []),
        PairWriter(work / "pairs"),
    ]


def pivot_steps(context: BuildContext) -> list:
    # pairs without a pivot side are reported once: by the pairs stage if there is one
    return pair_pipeline(context.recipe, context.recipe.parallel, context.source_languages, [PIVOT_STAGE_LANGUAGE], context.work, "pivot",
                         None, not context.other_langs, context.eval_sets)  # fmt: skip


def pairs_steps(context: BuildContext) -> list:
    recipe, work = context.recipe, context.work
    joiner = PivotJoin(work / "pairs" / f"{PIVOT_STAGE_LANGUAGE}.parquet", context.multiway) if recipe.pivot_join else None
    return pair_pipeline(recipe, recipe.parallel, context.source_languages, context.other_langs, work, "pairs", joiner, True, context.eval_sets)


def chat_steps(context: BuildContext) -> list:
    recipe = context.recipe
    return [PrepareChat(recipe.instructions, context.chat_chunks, context.work, context.eval_sets, recipe.decontamination.ngram, recipe.strict)]


def plan_mixture(context: BuildContext) -> None:
    """plan.json, which the mix stage reads: the train budgets, and where each zh/en bucket's rows stop. A build
    without a train row stops here, naming the steps that removed them."""
    work = context.work
    cross_supply, chat_supply = supply(work / "pairs", work / "chat")
    if not sum(cross_supply.values()) + sum(chat_supply.values()):
        raise BuildError(f"{no_train_rows(work, context.x_langs)}; the version was not written (the stages' logs: {work / 'logs'})")
    budgets = plan(context.recipe.mixture, cross_supply, chat_supply)
    (work / "plan.json").write_text(json.dumps({**budgets, "chat_cutoffs": chat_cutoffs(work / "chat", budgets)}, sort_keys=True))


def mixture_budgets(work: Path) -> dict:
    """The train budgets of plan.json (`plan_mixture`), as the manifest records them."""
    budgets = json.loads((work / "plan.json").read_text())
    del budgets["chat_cutoffs"]
    return budgets


def plan_shards(context: BuildContext) -> None:
    """shards.json, which shard_parts and shards read: each config's files and shard count, from the mix stage's
    files."""
    shards = shard_plan(context.work, parse_size(context.recipe.shard_size))
    (context.work / "shards.json").write_text(json.dumps(shards, sort_keys=True))


def several_shards(context: BuildContext) -> bool:
    return any(job["shards"] > 1 for job in json.loads((context.work / "shards.json").read_text()))


def manifest_steps(context: BuildContext) -> list:
    recipe, work = context.recipe, context.work
    mixture = {"plan": json.dumps(mixture_budgets(work), sort_keys=True), "recipe": json.dumps(recipe.to_dict()["mixture"])}
    license_text = license_summary(context.manifest_base["sources"], udhr_provenance()["license_text"] if context.multiway else "")
    recipe_text = Path(recipe.path).read_text(encoding="utf-8") if recipe.path else ""
    return [WriteManifest(work, context.staging.path, {**context.manifest_base, "mixture": mixture}, license_text, recipe_text)]


def one_task(context: BuildContext) -> int:
    return 1


def every_task(context: BuildContext) -> int:
    return context.tasks


STAGES = [
    Stage("pivot", pivot_steps, one_task, applies=lambda c: PIVOT_STAGE_LANGUAGE in c.x_langs),
    Stage("pairs", pairs_steps, every_task, applies=lambda c: bool(c.other_langs)),
    Stage("chat", chat_steps, lambda c: max(1, min(c.tasks, len(c.chat_chunks))), applies=lambda c: bool(c.recipe.instructions)),
    Stage("chat_dedup", lambda c: [DedupChat(c.work, c.recipe.seed)], every_task, applies=lambda c: bool(c.recipe.instructions)),
    Stage("mix", lambda c: [MixInstructions(c.work, c.work / "plan.json", c.recipe.seed, c.recipe.templates, c.recipe.mixture is None)],
          every_task, plan=plan_mixture),  # fmt: skip
    Stage("shard_parts", lambda c: [PartitionShards(c.work / "shards.json", c.work / "shard_parts")], every_task,
          applies=several_shards, plan=plan_shards),  # fmt: skip
    Stage("shards", lambda c: [WriteShards(c.work / "shards.json", c.staging.path, c.work / "shard_parts", c.work / "tmp")], every_task),
    Stage("manifest", manifest_steps, one_task),
]


def run_stages(context: BuildContext, runtime: Runtime, stages: list[Stage] = STAGES) -> dict[str, list[float]]:
    """Run every stage that applies into the staging folder; returns when each ran (stage -> [start, end], seconds
    since the epoch)."""
    timings: dict[str, list[float]] = {}
    with runtime.session():
        staging = context.staging
        for stage in stages:
            staging.pull()  # where the staging folder is kept on a store: what the last stage's tasks wrote
            if stage.plan is not None:
                stage.plan(context)
                staging.push()
            if not stage.applies(context):
                continue
            started = time.time()
            runtime.run(stage.steps(context), stage.tasks(context), storage.join(staging.logs, stage.name), staging.mirror)
            timings[stage.name] = [started, time.time()]
        staging.pull()
    return timings


def removed_train_rows(work: Path) -> pl.DataFrame:
    """The train rows each step removed per language and unit, from the steps' removed rows in the work folder: a
    pair counts for its non-pivot side (zho_Hans for the pivot pairs), an instruction for its language."""
    pair_files = [f for f in sorted((work / "removed").glob("*/*.parquet")) if f.parent.name != "chat"]
    chat_files = sorted((work / "removed" / "chat").glob("*.parquet"))
    frames = [pl.DataFrame(schema={"step": pl.String, "lang": pl.String, "unit": pl.String, "len": pl.UInt32})]
    if pair_files:
        side = pl.when(pl.col("src_lang") == "eng_Latn").then("tgt_lang").when(pl.col("tgt_lang") == "eng_Latn").then("src_lang")
        lang = side.when(pl.col("src_lang") == "zho_Hans").then("tgt_lang").otherwise("src_lang")
        pairs = pl.scan_parquet(pair_files).filter(pl.col("split") == "train").group_by(pl.col("stage").alias("step"), lang.alias("lang")).len()
        frames.append(pairs.with_columns(unit=pl.lit("pairs")).select(frames[0].columns).collect())
    if chat_files:  # instructions have no split: they are all train rows
        chat = pl.scan_parquet(chat_files).group_by(pl.format("chat ({})", "reason").alias("step"), "lang").len()
        frames.append(chat.with_columns(unit=pl.lit("instructions")).select(frames[0].columns).collect())
    return pl.concat(frames, how="vertical_relaxed").sort("len", "step", descending=[True, False])


def no_train_rows(work: Path, langs: list[str]) -> str:
    """Why a build has no train rows: which steps removed the train rows of each language (`removed_train_rows`)."""
    removed = removed_train_rows(work)
    if removed.is_empty():
        return f"0 train rows: the sources gave no train rows for {', '.join(langs) or 'the instructions'}"
    reasons = []
    for (language, unit), steps in sorted(removed.group_by("lang", "unit", maintain_order=True), key=lambda group: group[0]):
        counts = list(zip(steps["step"], steps["len"]))
        if len(counts) == 1:
            reasons.append(f"{counts[0][0]} removed all {counts[0][1]:,} train {unit} of {language}")
        else:
            reasons.append(f"of the {sum(n for _, n in counts):,} train {unit} of {language}, " + ", ".join(f"{s} removed {n:,}" for s, n in counts))
    return "0 train rows: " + "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more languages" if len(reasons) > 5 else "")


def license_summary(sources: list[dict], texts: str) -> str:
    """LICENSE: the license of every source, then the full texts the sources ship."""
    lines = [f"- {s['name']} {s['version']} ({s['origin'] or 'local files'}): {s['license'] or 'not stated'}"
             + (" -- NON-COMMERCIAL: its rows may not be used commercially" if flagged(s) else "") for s in sources]
    return "This dataset is made of the following sources; each row's `source` column names its source, whose\n" \
           "license applies to that row.\n\n" + "\n".join(lines) + "\n" + (f"\n{texts.strip()}\n" if texts.strip() else "")  # fmt: skip
