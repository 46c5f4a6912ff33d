"""Build an instruction dataset from a recipe (default: the embedded corpus, offline).

    python pipelines/build.py --langs all
    python pipelines/build.py --langs deu_Latn,swh_Latn,yor_Latn --output out/three --executor ray
    python pipelines/build.py --recipe bayling2 --langs all --total 3200000

Stages, each a list of datatrove PipelineSteps run by its Local or Ray executor:
1. pivot: the zho_Hans <-> eng_Latn pairs, cleaned (they feed the pivot join);
2. pairs: read -> normalize -> pair filters -> decontaminate -> language ID of both sides -> pivot join -> dedup
   -> one Parquet file per language (tasks own whole languages);
3. chat: the zh/en instruction sources, normalized and decontaminated, chunks of files spread over the tasks;
   chat_dedup: instruction-level exact dedup, tasks own buckets of a hash of the normalized instruction;
4. mix: the mixture plan (totals, shares, temperature budgets) sampled by a seeded hash, then templated;
5. split_shards: each instruction file split by shard, a task per file; shards: data/<split>-NNNNN-of-NNNNN.parquet,
   a task per shard; 6. manifest, card, removed/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python pipelines/build.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langid.identify import LanguageIdentifier
from langid.models import file_sha256
from pipelines import recipe as recipes
from pipelines.corpus import UDHR_PATH, udhr_provenance
from pipelines.manifest import code_version, read_manifest, sha256_file
from pipelines.mixture import MixtureError
from pipelines.sources import SourceError
from pipelines.steps.base import RemovedRows
from pipelines.steps.chat import DedupChat, PrepareChat, chat_chunks
from pipelines.steps.decontaminate import Decontaminate
from pipelines.steps.dedup import ExactPairDedup
from pipelines.steps.finalize import SplitShards, WriteManifest, WriteShards
from pipelines.steps.language_id import LanguageIdFilter
from pipelines.steps.mix import MixInstructions, chat_cutoffs, plan, supply
from pipelines.steps.normalize import NormalizeText
from pipelines.steps.pair_filters import PairFilter
from pipelines.steps.pivot_join import PivotJoin
from pipelines.steps.read_pairs import PairReader
from pipelines.steps.write import PairWriter
from schemas.language_codes import PIVOTS, UnknownLanguageCode, to_flores, unknown_code_error
from schemas.records import stable_id

REPO_ROOT = Path(__file__).resolve().parents[1]


class BuildError(Exception):
    """A problem with the arguments or the output folder, reported without a traceback."""


def resolve_languages(spec: str, available: list[str]) -> list[str]:
    """`all`, or codes separated by commas or spaces in any form to_flores reads (deu_Latn, de, zh-Hant)."""
    if spec.strip().lower() == "all":
        return list(available)
    chosen = []
    for code in spec.replace(",", " ").split():
        try:
            flores = to_flores(code)
        except UnknownLanguageCode:
            flores = code
        if flores not in available:
            raise unknown_code_error(code, available, what="language (not in the recipe's sources)")
        chosen.append(flores)
    return sorted(set(chosen) | ({p for p in PIVOTS} & set(available) if chosen else set()))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="embedded", help="recipe name (pipelines/recipes/<name>.yaml) or path")
    parser.add_argument("--langs", default=None, help="'all' or FLORES-200 codes, comma-separated (default: the recipe's)")
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: out/<recipe name>)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", default=None, help="address of an existing Ray cluster (default: start a local one)")
    parser.add_argument("--tasks", type=int, default=4, help="datatrove tasks (the rows do not depend on it)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="tasks run at the same time")
    parser.add_argument("--seed", type=int, default=None, help="seed for sampling and phrasings (default: the recipe's)")
    parser.add_argument("--total", type=int, default=None, help="instructions in the train split (the mixture's total)")
    parser.add_argument("--share", default=None, help="mixture shares, e.g. zh=0.432,en=0.262,cross_lingual=0.306")
    parser.add_argument("--langid-model", default=None, help="language-ID models, comma-separated, asked in order (see langid.models)")
    parser.add_argument("--langid-threshold", type=float, default=None,
                        help="score a model must give the expected language where it has no per-language threshold (0.5)")
    parser.add_argument("--min-script-fraction", type=float, default=None, help="minimum share of letters in the expected script")
    parser.add_argument("--max-length-ratio", type=float, default=None, help="maximum length ratio of the two sides")
    parser.add_argument("--rows-per-shard", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace a finished build made with other arguments")
    args = parser.parse_args(argv)
    for name in ("tasks", "workers", "rows_per_shard", "total"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def apply_overrides(recipe: recipes.Recipe, args: argparse.Namespace) -> recipes.Recipe:
    """Command-line options win over the recipe."""
    if args.langs is not None:
        recipe.languages = args.langs
    if args.seed is not None:
        recipe.seed = args.seed
    overrides = {"langid_model": ("langid", "models"), "langid_threshold": ("langid", "threshold"),
                 "min_script_fraction": ("langid", "min_script_fraction"), "max_length_ratio": ("filters", "max_length_ratio")}  # fmt: skip
    for option, (section, key) in overrides.items():
        if getattr(args, option) is not None:
            setattr(getattr(recipe, section), key, getattr(args, option))
    if args.rows_per_shard is not None:
        recipe.rows_per_shard = args.rows_per_shard
    if args.total is not None or args.share is not None:
        recipe.mixture = recipe.mixture or recipes.Mixture()
        if args.total is not None:
            recipe.mixture.total = args.total
        if args.share is not None:
            try:
                shares = {k.strip(): float(v) for k, v in (item.split("=") for item in args.share.split(","))}
            except ValueError:
                raise recipes.RecipeError(f"--share: expected name=value pairs like zh=0.4,en=0.3,cross_lingual=0.3, got {args.share!r}") from None
            recipes.validate_shares(shares, "--share")
            recipe.mixture.shares = shares
    return recipe


def row_arguments(recipe: recipes.Recipe, langs: list[str], identifier: LanguageIdentifier, sources: list[dict]) -> dict[str, str]:
    """What the rows depend on; their hash is the build key (executor, tasks and workers are not in it)."""
    settings = {k: v for k, v in recipe.to_dict().items() if k not in ("parallel", "instructions", "path", "languages")}
    return {
        "recipe": recipe.name,
        "langs": ",".join(langs),
        "settings": json.dumps(settings, sort_keys=True),
        "sources": json.dumps([[s["name"], s["sha256"], s["version"]] for s in sources]),
        "langid_models": ",".join(f"{c.model.name}:{c.model.sha256}" for c in identifier.checks),
        "corpus_sha256": file_sha256(UDHR_PATH),
        "code_package": code_version()["package"],
        "code": code_fingerprint(),
    }


CODE_FOLDERS = ("pipelines", "langid", "schemas")  # the code the rows depend on


def code_fingerprint() -> str:
    """What identifies the code, so that a rerun after a code change rebuilds: in a git checkout whose code folders
    have no changes, their git tree ids (a commit touching only docs or training/ keeps the build); otherwise a hash
    of their .py files."""
    try:
        status = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", *CODE_FOLDERS],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        if not status.strip():
            trees = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", *(f"HEAD:{folder}" for folder in CODE_FOLDERS)],
                                   capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            return "git:" + stable_id(*trees)
    except (OSError, subprocess.CalledProcessError):
        pass  # not a git checkout (an installed package, an unpacked archive)
    files = sorted(p for folder in CODE_FOLDERS for p in (REPO_ROOT / folder).rglob("*.py"))
    return "files:" + stable_id(*(f"{p.relative_to(REPO_ROOT).as_posix()}:{sha256_file(p)}" for p in files))


def check_output(output: Path, build_key: str, overwrite: bool) -> bool:
    """True when `output` already holds this very build. Refuses to touch a folder holding anything else."""
    manifest = read_manifest(output)
    if manifest is not None:
        if manifest.get("build_key") == build_key:
            return True
        if not overwrite:
            raise BuildError(
                f"{output} holds a build made with other arguments (build key {manifest.get('build_key')}); "
                "pass --overwrite to replace it, or choose another --output"
            )
        shutil.rmtree(output)
    elif output.exists() and any(p.name != ".work" for p in output.iterdir()):
        if not overwrite:
            raise BuildError(f"{output} exists and is not a build output; choose another --output or pass --overwrite")
        shutil.rmtree(output)
    return False


def make_executor(args, pipeline, logging_dir: Path, tasks: int):
    if args.executor == "ray":
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, tasks=tasks, workers=min(args.workers, tasks), logging_dir=str(logging_dir),
                                   cpus_per_task=1, mem_per_cpu_gb=1)  # fmt: skip
    from datatrove.executor import LocalPipelineExecutor

    return LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(args.workers, tasks), logging_dir=str(logging_dir))


def start_ray(args) -> bool:
    """Connect to the cluster given by --ray-address, or start a local Ray; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    # Workers must import this repository's packages even when it is not installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    if args.ray_address:
        ray.init(address=args.ray_address, log_to_driver=False)
        return False
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    return True


def print_summary(manifest: dict, output: Path, seconds: float | None) -> None:
    splits = manifest["rows_per_split"]
    langs = manifest["rows_per_language"]
    both = [
        lang for lang in langs
        if all(manifest["rows_per_direction"].get(d, 0) for d in (f"{lang}->eng_Latn", f"eng_Latn->{lang}",
                                                                  f"{lang}->zho_Hans", f"zho_Hans->{lang}"))
    ]  # fmt: skip
    lines = [
        f"{'split':<12}{'rows':>10}",
        *[f"{split:<12}{n:>10}" for split, n in splits.items()],
        f"{'total':<12}{sum(splits.values()):>10}",
        "",
        f"languages with instructions: {len(langs)} ({len(both)} linked to both pivots in both directions)",
        f"checked by script only (no model label): {len(manifest['language_id']['checked_by_script_only'])}",
        "removed pairs:",
        *[f"  {stage:<18}{reason:<18}{n:>8}" for stage, reasons in manifest["removed"].items() for reason, n in reasons.items()],
        f"output: {output}" + (f"  ({seconds:.0f} s)" if seconds is not None else ""),
    ]
    print("\n".join(lines))


def pair_pipeline(recipe, sources, source_languages, langs, work: Path, run: str, pivot_join: PivotJoin | None, report_unpaired: bool):
    removed = RemovedRows(work / "removed", run)
    return [
        PairReader(sources, langs, source_languages, removed if report_unpaired else None, progress=sys.stderr.isatty()),
        NormalizeText(),
        PairFilter(removed, recipe.filters.min_chars, recipe.filters.max_chars, recipe.filters.max_length_ratio),
        Decontaminate(removed, recipe.decontamination.eval_sets, recipe.decontamination.ngram),
        LanguageIdFilter(removed, recipe.langid.models, recipe.langid.threshold, recipe.langid.min_script_fraction, recipe.langid.min_model_chars),
        *([pivot_join] if pivot_join else []),
        ExactPairDedup(removed, recipe.dedup.max_targets_per_source),
        PairWriter(work / "pairs"),
    ]


def build(args: argparse.Namespace) -> dict:
    recipe = apply_overrides(recipes.load(args.recipe), args)
    sources = recipe.parallel
    source_languages = [s.languages() for s in sources]  # once: each reads the language columns of every file
    available = sorted(set().union(*source_languages)) if sources else []
    spec = recipe.languages if isinstance(recipe.languages, str) else ",".join(recipe.languages)
    langs = resolve_languages(spec, available)
    identifier = LanguageIdentifier.load(recipe.langid.models, recipe.langid.threshold, recipe.langid.min_script_fraction)
    provenance = [s.provenance() for s in sources] + [s.provenance() for s in recipe.instructions]
    arguments = row_arguments(recipe, langs, identifier, provenance)
    build_key = stable_id(json.dumps(arguments, sort_keys=True))
    output = args.output or Path("out") / recipe.name
    if check_output(output, build_key, args.overwrite):
        manifest = read_manifest(output)
        print(f"{output} already holds this build (build key {build_key}): nothing to do.")
        print_summary(manifest, output, None)
        return manifest

    work = output / ".work" / build_key
    for stale in (output / ".work").glob("*"):  # an unfinished run with other arguments cannot be resumed
        if stale != work:
            shutil.rmtree(stale)
    x_langs = [lang for lang in langs if lang not in PIVOTS or lang == "zho_Hans"]
    manifest_base = {
        "name": recipe.name,
        "build_key": build_key,
        "arguments": {**arguments, "recipe_file": recipe.path, "command_line": shlex.join(sys.argv[1:]),
                      "executor": args.executor, "tasks": str(args.tasks)},  # fmt: skip
        "code_version": code_version(),
        "sources": provenance,
        "language_id": {
            "models": [{"name": c.model.name, "sha256": c.model.sha256, "thresholds": c.thresholds.source} for c in identifier.checks],
            "checked_by_model": [lang for lang in x_langs if identifier.covers(lang)],
            "checked_by_script_only": [lang for lang in x_langs if not identifier.covers(lang)],
        },
    }

    started = time.time()
    ray_started = start_ray(args) if args.executor == "ray" else False
    timings: dict[str, list[float]] = {}  # stage -> [start, end] (seconds since the epoch)

    def run_stage(stage: str, pipeline: list, tasks: int) -> None:
        stage_started = time.time()
        make_executor(args, pipeline, work / "logs" / stage, tasks).run()
        timings[stage] = [stage_started, time.time()]

    try:
        multiway = {s.name for s in sources if getattr(s, "multiway", False)}
        others = [lang for lang in x_langs if lang != "zho_Hans"]
        if "zho_Hans" in x_langs:  # pairs without a pivot side are reported once: by the pairs stage if there is one
            run_stage("pivot", pair_pipeline(recipe, sources, source_languages, ["zho_Hans"], work, "pivot", None, not others), 1)
        joiner = PivotJoin(work / "pairs" / "zho_Hans.parquet", multiway) if recipe.pivot_join else None
        if others:
            run_stage("pairs", pair_pipeline(recipe, sources, source_languages, others, work, "pairs", joiner, True), args.tasks)
        if recipe.instructions:
            chunks = chat_chunks(recipe.instructions)
            chat = [PrepareChat(recipe.instructions, chunks, work, recipe.decontamination.eval_sets, recipe.decontamination.ngram)]
            run_stage("chat", chat, max(1, min(args.tasks, len(chunks))))
            run_stage("chat_dedup", [DedupChat(work)], args.tasks)
        cross_supply, chat_supply = supply(work / "pairs", work / "chat")
        budgets = plan(recipe.mixture, cross_supply, chat_supply)
        plan_path = work / "plan.json"
        plan_path.write_text(json.dumps({**budgets, "chat_cutoffs": chat_cutoffs(work / "chat", recipe.seed, budgets)}, sort_keys=True))
        run_stage("mix", [MixInstructions(work, plan_path, recipe.seed)], args.tasks)
        run_stage("split_shards", [SplitShards(work, recipe.rows_per_shard)], args.tasks)
        run_stage("shards", [WriteShards(work, output, recipe.rows_per_shard)], args.tasks)
        mixture = {"plan": json.dumps(budgets, sort_keys=True), "recipe": json.dumps(recipe.to_dict()["mixture"])}
        license_text = udhr_provenance()["license_text"] if multiway else ""
        finish = [WriteManifest(work, output, {**manifest_base, "mixture": mixture}, license_text)]
        run_stage("manifest", finish, 1)
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    manifest = read_manifest(output)
    if manifest is None or manifest["build_key"] != build_key:
        raise BuildError(f"the build did not finish: see the logs in {work / 'logs'}")
    shutil.copytree(work / "logs", output / "logs", dirs_exist_ok=True)
    (output / "logs" / "timings.json").write_text(json.dumps(timings, indent=1))  # when each stage ran
    shutil.rmtree(output / ".work")
    print_summary(manifest, output, time.time() - started)
    return manifest


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        build(args)
    except (BuildError, UnknownLanguageCode, FileNotFoundError, recipes.RecipeError, SourceError, MixtureError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
