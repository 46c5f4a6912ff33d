"""Build an instruction dataset from a recipe (default: the embedded corpus, offline).

    python pipelines/build.py --langs all
    python pipelines/build.py --langs deu_Latn,swh_Latn,yor_Latn --output out/three --executor ray
    python pipelines/build.py --recipe bayling2 --langs all --total 3200000
    python pipelines/build.py --langs all --bump minor --push-to-hub my-org/bayling-data

Each build is a version: out/<recipe name>/<version>/ (see --store, --version, --bump), never overwritten.

Stages, each a list of datatrove PipelineSteps run by its Local or Ray executor:
1. pivot: the zho_Hans <-> eng_Latn pairs, cleaned (they feed the pivot join);
2. pairs: read -> normalize -> pair filters -> decontaminate -> language ID of both sides -> pivot join -> dedup
   -> near-duplicate removal (MinHash) -> one Parquet file per language (tasks own whole languages);
3. chat: the zh/en instruction sources, normalized and decontaminated, chunks of files spread over the tasks;
   chat_dedup: instruction-level exact dedup, tasks own buckets of a hash of the normalized instruction;
4. mix: the mixture plan (totals, shares, temperature budgets) sampled by a seeded hash, then templated (sentences,
   documents, dialogues);
5. shards: data/<config>/<split>-NNNNN-of-NNNNN.parquet, a task per shard (a config of several shards is split by
   shard first, a task per input file: shard_parts); 6. manifest, card, removed/.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

if __package__ in (None, ""):  # run as `python pipelines/build.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langid.identify import LanguageIdentifier
from langid.models import file_sha256
from pipelines import recipe as recipes
from pipelines.batch import RemovedRows
from pipelines.manifest import bump, code_version, damaged_files, finished_versions, parse_version, read_manifest, sha256_file
from pipelines.mixture import MixtureError
from pipelines.planning import chat_chunks, chat_cutoffs, parse_size, plan, shard_plan, supply
from pipelines.publish import PublishError
from pipelines.sources import SourceError, first_malformed
from pipelines.staging import BuildError, Staging
from pipelines.steps.alignment import AlignmentFilter
from pipelines.steps.chat import DedupChat, PrepareChat
from pipelines.steps.decontaminate import Decontaminate
from pipelines.steps.dedup import ExactPairDedup, NearDuplicateDedup
from pipelines.steps.language_id import LanguageIdFilter
from pipelines.steps.mix import MixInstructions
from pipelines.steps.normalize import NormalizeText
from pipelines.steps.pair_checks import pair_checks
from pipelines.steps.pair_filters import PairFilter
from pipelines.steps.partition_shards import PartitionShards
from pipelines.steps.pivot_join import PivotJoin
from pipelines.steps.read_pairs import PairReader
from pipelines.steps.write import PairWriter
from pipelines.steps.write_manifest import WriteManifest
from pipelines.steps.write_shards import WriteShards
from schemas.config import set_key
from schemas.language_codes import PIVOTS, UnknownLanguageCode, resolve_languages
from schemas.records import stable_id
from schemas.text.overlap import named_eval_set
from schemas.text.udhr import UDHR_PATH, udhr_provenance

# What is imported lives as long as the process: the cyclic garbage collector need not walk it again at each full
# collection, in this process or in the workers forked from the forkserver, which imports this module last.
gc.freeze()

REPO_ROOT = Path(__file__).resolve().parents[1]
# What the tasks import. datatrove's local executor forks a stage's workers from a forkserver; preloaded there once,
# they are imported once, not by each worker of each stage (0.7 s of CPU per worker, about 0.75 s of wall per stage
# on 2 cores). pyarrow.compute, hanzidentifier and language_data.name_data are imported on first use, and pandas by
# pyarrow's first `Array.to_numpy()` (0.34 s in each of the 9 tasks of the Firefox benchmark's pairs path); this
# module comes last, so that what they all create is frozen for the collector (see the end of the imports).
TASK_IMPORTS = ["__main__", "pyarrow.compute", "hanzidentifier", "language_data.name_data", "pandas", "pipelines.build"]




def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="embedded", help="recipe name (pipelines/recipes/<name>.yaml) or path")
    parser.add_argument("--langs", default=None, help="'all' or FLORES-200 codes, comma-separated (default: the recipe's)")
    parser.add_argument("--store", type=Path, default=Path("out"), help="folder of versions: <store>/<recipe name>/<version>/")
    parser.add_argument("--version", default=None, help="version id, e.g. v1.0.0 (default: v1.0.0, or the latest if it is this build)")
    parser.add_argument("--bump", choices=["major", "minor", "patch"], default=None, help="the latest version in the store, bumped")
    parser.add_argument("--output", type=Path, default=None, help="write the version to this folder instead of the store")
    parser.add_argument("--verify", action="store_true",
                        help="where the version already exists, check every file's sha256 against its manifest (default: sizes only)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", default=None, help="address of an existing Ray cluster (default: start a local one)")
    parser.add_argument("--tasks", type=int, default=4, help="datatrove tasks (the rows do not depend on it)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="tasks run at the same time")
    parser.add_argument("--seed", type=int, default=None, help="seed for sampling and phrasings (default: the recipe's)")
    parser.add_argument("--total", type=int, default=None, help="instructions in the train split (the mixture's total)")
    parser.add_argument("--share", default=None, help="mixture shares, e.g. zh=0.432,en=0.262,cross_lingual=0.306")
    parser.add_argument("--langid-model", default=None, help="language-ID models, comma-separated, asked in order (see langid.models)")
    parser.add_argument("--langid-threshold", type=float, default=None,
                        help="reject margin, log(top-1 score / score of the labelled language), for models and languages "
                        "without calibrated thresholds (3.0; see langid.thresholds)")
    parser.add_argument("--min-script-fraction", type=float, default=None, help="minimum share of letters in the expected script")
    parser.add_argument("--max-length-ratio", type=float, default=None, help="maximum length ratio of the two sides")
    parser.add_argument("--shard-size", default=None, help="uncompressed data per shard, e.g. 256MB (default: the recipe's)")
    parser.add_argument("--push-to-hub", metavar="ORG/NAME", default=None, help="publish the version to this Hub dataset after the build")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    parser.add_argument("--strict", action="store_true", help="stop at the first malformed input record (default: to removed/)")
    args = parser.parse_args(argv)
    if args.version and args.bump:
        parser.error("give --version or --bump, not both")
    if args.bump and args.output:
        parser.error("--bump bumps the latest version of the store; with --output, give --version")
    for name in ("tasks", "workers", "total"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def apply_overrides(recipe: recipes.Recipe, args: argparse.Namespace) -> recipes.Recipe:
    """Command-line options win over the recipe; each is checked as the recipe's key is, and named as the option."""
    if args.langs is not None:
        if not args.langs.replace(",", " ").split():
            raise recipes.RecipeError(f"--langs: no language given in {args.langs!r} (expected all, or codes separated by commas)")
        recipe.languages = args.langs
    recipe.strict = recipe.strict or args.strict
    overrides = {"seed": "seed", "langid_model": "langid.models", "langid_threshold": "langid.threshold",
                 "min_script_fraction": "langid.min_script_fraction", "max_length_ratio": "filters.max_length_ratio",
                 "shard_size": "shard_size"}  # fmt: skip
    for option, key in overrides.items():
        if getattr(args, option) is not None:
            set_key(recipe, key, getattr(args, option), f"--{option.replace('_', '-')}", recipes.RecipeError, name_key=False)
    parse_size(recipe.shard_size, "--shard-size" if args.shard_size is not None else f"{recipe.path}: shard_size")
    if args.total is not None or args.share is not None:
        recipe.mixture = recipe.mixture or recipes.Mixture()
        if args.total is not None:
            set_key(recipe, "mixture.total", args.total, "--total", recipes.RecipeError, name_key=False)
        if args.share is not None:
            try:
                shares = {k.strip(): float(v) for k, v in (item.split("=") for item in args.share.split(","))}
            except ValueError:
                raise recipes.RecipeError(f"--share: expected name=value pairs like zh=0.4,en=0.3,cross_lingual=0.3, got {args.share!r}") from None
            set_key(recipe, "mixture.shares", shares, "--share", recipes.RecipeError, name_key=False)
    return recipe


def row_arguments(recipe: recipes.Recipe, langs: list[str], identifier: LanguageIdentifier, sources: list[dict]) -> dict[str, str]:
    """What the rows depend on; their hash is the build key (executor, tasks and workers are not in it)."""
    settings = {k: v for k, v in recipe.to_dict().items() if k not in ("parallel", "instructions", "path", "languages", "strict")}
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


def choose_version(args: argparse.Namespace, name: str, build_key: str) -> tuple[str, Path]:
    """The version id and its folder: --output, or <store>/<name>/<version>."""
    if args.output is not None:
        manifest = read_manifest(args.output)
        version = args.version or (manifest or {}).get("version") or "v1.0.0"
        parse_version(version)
        return version, args.output
    folder = args.store / name
    versions = finished_versions(folder)
    if args.version:
        parse_version(args.version)
        if args.version not in versions:
            warn_if_same_build(folder, versions, args.version, build_key)
        return args.version, folder / args.version
    if args.bump or not versions:
        version = bump(versions[-1], args.bump) if versions else "v1.0.0"
        warn_if_same_build(folder, versions, version, build_key)
        return version, folder / version
    latest = read_manifest(folder / versions[-1])
    if latest.get("build_key") == build_key:
        return versions[-1], folder / versions[-1]
    raise BuildError(
        f"the latest version, {folder / versions[-1]}, was built with other arguments (build key {latest.get('build_key')}) "
        "and a finished version is never overwritten: pass --bump patch|minor|major or --version for a new one"
    )


def warn_if_same_build(folder: Path, versions: list[str], version: str, build_key: str) -> None:
    """A new version of the same build key as an existing one holds the same rows: it is built (a Hub user may
    want the same data under a new tag), with a one-line warning naming the latest such version."""
    same = [v for v in versions if (read_manifest(folder / v) or {}).get("build_key") == build_key]
    if same:
        print(f"warning: {version} has the same build key as {same[-1]} ({build_key}): it will hold the same rows", file=sys.stderr)


def check_output(output: Path, version: str, build_key: str, hashes: bool = False) -> bool:
    """True when `output` already holds this very build. A finished version is never overwritten: this refuses
    a folder that holds another version or is not a finished build, or whose files do not match its manifest
    (sizes; with `hashes`, sha256 too); a build with other arguments under the same version is built aside and
    compared when done (see `keep_version`)."""
    manifest = read_manifest(output)
    if manifest is None:
        if output.exists() and any(output.iterdir()):
            raise BuildError(f"{output} exists and is not a finished build; choose another --output, or remove it")
        return False
    if "version" not in manifest:
        raise BuildError(f"{output} holds a build made before versions existed; choose another --output, or remove it")
    if manifest.get("version") != version:
        raise BuildError(f"{output} holds version {manifest.get('version')}, not {version}: a finished version is never overwritten")
    damaged = damaged_files(output, manifest, hashes)
    if damaged:
        raise BuildError(f"version {version} in {output} does not match its manifest: {'; '.join(damaged[:3])}"
                         + (f" (and {len(damaged) - 3} more)" if len(damaged) > 3 else "")
                         + "; a finished version is never overwritten: restore it (e.g. from the Hub) or remove it and build again")  # fmt: skip
    return manifest.get("build_key") == build_key


def keep_version(staging: Path, output: Path) -> dict:
    """Move a finished build into place as its version, or compare it with the version already there: the same
    content hash is a no-op, another is refused and the existing version stays as it was."""
    built = read_manifest(staging)
    existing = read_manifest(output)
    if existing is None:
        output.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, output)
        return built
    shutil.rmtree(staging)
    if existing["content_hash"] != built["content_hash"]:
        raise BuildError(
            f"version {existing['version']} already exists in {output} with content hash {existing['content_hash']}; "
            f"this build gives {built['content_hash']}. A finished version is never overwritten: "
            "pass --bump patch|minor|major or another --version"
        )
    print(f"{output} already holds these rows (content hash {existing['content_hash']}): nothing changed.")
    return existing


def reproduce_command(argv: list[str], recipe: recipes.Recipe, version: str) -> str:
    """The build command without the options that do not change the rows (executor, tasks, output, Hub)."""
    skip = {"--output", "--store", "--executor", "--ray-address", "--tasks", "--workers", "--push-to-hub", "--bump", "--version"}
    flags = {"--private", "--verify"}  # options without a value
    kept, i = [], 0
    while i < len(argv):
        option = argv[i].split("=")[0]
        if option in flags:
            i += 1
            continue
        if option in skip:
            i += 1 if "=" in argv[i] else 2
            continue
        if option == "--recipe":
            value = argv[i].split("=", 1)[1] if "=" in argv[i] else argv[i + 1]
            kept += ["--recipe", value if recipe.path.startswith(str(recipes.RECIPES_DIR)) else "recipe.yaml"]
            i += 1 if "=" in argv[i] else 2
            continue
        kept.append(argv[i])
        i += 1
    return shlex.join(["python", "pipelines/build.py", *kept, "--version", version])


RAY_CPUS_PER_TASK = 1


def thread_limits(cpus: int) -> dict[str, str]:
    """Environment that holds a task's thread pools to the CPUs Ray reserved for it. Ray caps OpenMP (and with it
    Arrow's pool) but not polars, whose pool otherwise spans every core: a 1-CPU task then used both cores of a
    2-core machine, and 2 workers oversubscribed them."""
    return {name: str(cpus) for name in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "RAYON_NUM_THREADS")}


def make_executor(args, pipeline, logging_dir: Path, tasks: int):
    if args.executor == "ray" and tasks > 1:  # a stage of one task runs here: an actor would only add its start-up (2-4 s)
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, tasks=tasks, workers=min(args.workers, tasks), logging_dir=str(logging_dir),
                                   cpus_per_task=RAY_CPUS_PER_TASK, mem_per_cpu_gb=1)  # fmt: skip
    from datatrove.executor import LocalPipelineExecutor

    return LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(args.workers, tasks), logging_dir=str(logging_dir))


def start_forkserver() -> None:
    """Start the forkserver datatrove's local executor forks each stage's workers from, preloading TASK_IMPORTS: it
    imports them while the driver reads its sources and runs the pivot stage. Once per build, before any stage."""
    import multiprocess
    from multiprocess import forkserver

    multiprocess.set_forkserver_preload(TASK_IMPORTS)
    forkserver.ensure_running()


def start_ray(args) -> bool:
    """Connect to the cluster given by --ray-address, or start a local Ray; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    # Workers must import this repository's packages even when it is not installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    if args.ray_address:  # the cluster's workers get the limits through the job's runtime environment
        ray.init(address=args.ray_address, log_to_driver=False, runtime_env={"env_vars": thread_limits(RAY_CPUS_PER_TASK)})
        return False
    # a local Ray's workers inherit the environment its processes start with (a runtime environment would start
    # each worker through a setup process); this process keeps its own
    saved = dict(os.environ)
    os.environ.update(thread_limits(RAY_CPUS_PER_TASK))
    try:
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
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


def gather_eval_sets(entries: list) -> tuple[list[tuple[str, str]], list[dict]]:
    """(name, local path) of every evaluation set and a record of each for the manifest. Hub sets are fetched here,
    in the driver, before any stage: a set that cannot be had stops the build before anything is written, unless
    the recipe marks it optional (FLORES "when reachable"), in which case the manifest says it was skipped."""
    found, records = [], []
    for entry in entries:
        if isinstance(entry, str):
            if not Path(entry).is_file():
                raise FileNotFoundError(f"decontamination.eval_sets: evaluation set not found: {entry}")
            name, path = named_eval_set(entry)
            found.append((name, path))
            records.append({"name": name, "origin": path, "sha256": file_sha256(path)})
            continue
        try:
            local, record = entry.fetch()
        except SourceError as e:
            if not entry.optional:
                raise
            print(f"warning: {e}; building without it (optional)", file=sys.stderr)
            records.append({"name": entry.name, "origin": f"hf://datasets/{entry.hub}", "revision": entry.revision, "skipped": str(e)})
            continue
        found.append((entry.name, str(local)))
        records.append(record)
    return found, records


def pair_pipeline(recipe, sources, source_languages, langs, work: Path, run: str, pivot_join: PivotJoin | None, report_unpaired: bool,
                  eval_sets: list):  # fmt: skip
    removed = RemovedRows(work / "removed", run)
    near, align = recipe.dedup.near, recipe.filters.alignment
    return [
        PairReader(sources, langs, source_languages, removed if report_unpaired else None, progress=sys.stderr.isatty()),
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


def build(args: argparse.Namespace, argv: list[str] | None = None) -> dict:
    if args.executor == "local" and args.workers > 1:  # one worker runs the tasks in this process
        start_forkserver()
    recipe = apply_overrides(recipes.load(args.recipe), args)
    sources = recipe.parallel
    source_languages = [s.languages() for s in sources]  # once: each reads the language columns of every file
    if recipe.strict:
        first_malformed(sources, recipe.instructions)
    available = sorted(set().union(*source_languages)) if sources else []
    spec = recipe.languages if isinstance(recipe.languages, str) else ",".join(recipe.languages)
    langs = resolve_languages(spec, available)
    identifier = LanguageIdentifier.load(recipe.langid.models, recipe.langid.threshold, recipe.langid.min_script_fraction)
    provenance = [s.provenance() for s in sources] + [s.provenance() for s in recipe.instructions]
    eval_sets, eval_records = gather_eval_sets(recipe.decontamination.eval_sets)
    arguments = {**row_arguments(recipe, langs, identifier, provenance), "eval_sets": json.dumps(eval_records, sort_keys=True)}
    build_key = stable_id(json.dumps(arguments, sort_keys=True))
    version, output = choose_version(args, recipe.name, build_key)
    with Staging(output, build_key) as staging:  # held until the version is in place: one build of a folder at a time
        if check_output(output, version, build_key, hashes=args.verify):
            manifest = read_manifest(output)
            print(f"{output} already holds this build (version {version}, build key {build_key}): nothing to do.")
            print_summary(manifest, output, None)
        else:
            staging.prepare()  # a folder left by a build of other arguments is emptied here, before any work
            x_langs = [lang for lang in langs if lang not in PIVOTS or lang == "zho_Hans"]
            manifest_base = {
                "name": recipe.name,
                "build_key": build_key,
                "version": version,
                "arguments": {**arguments, "recipe_file": recipe.path, "command_line": shlex.join(sys.argv[1:]),
                              "reproduce": reproduce_command(sys.argv[1:] if argv is None else argv, recipe, version),
                              "executor": args.executor, "tasks": str(args.tasks)},  # fmt: skip
                "code_version": code_version(),
                "sources": provenance,
                "eval_sets": eval_records,
                "language_id": {
                    "models": [{"name": c.model.name, "sha256": c.model.sha256, "thresholds": c.thresholds.source} for c in identifier.checks],
                    "checked_by_model": [lang for lang in x_langs if identifier.covers(lang)],
                    "checked_by_script_only": [lang for lang in x_langs if not identifier.covers(lang)],
                },
            }
            started = time.time()
            timings = run_stages(args, recipe, source_languages, x_langs, eval_sets, staging, manifest_base)
            manifest = finish(staging, timings)
            print_summary(manifest, output, time.time() - started)
    return publish_if_asked(args, output, manifest)


def run_stages(args, recipe: recipes.Recipe, source_languages: list, x_langs: list[str], eval_sets: list, staging: Staging,
               manifest_base: dict) -> dict[str, list[float]]:  # fmt: skip
    """Run every stage into the staging folder; returns when each ran (stage -> [start, end], seconds since the
    epoch)."""
    work, sources = staging.work, recipe.parallel
    ray_started = start_ray(args) if args.executor == "ray" else False
    timings: dict[str, list[float]] = {}

    def run_stage(stage: str, pipeline: list, tasks: int) -> None:
        stage_started = time.time()
        make_executor(args, pipeline, work / "logs" / stage, tasks).run()
        timings[stage] = [stage_started, time.time()]

    try:
        multiway = {s.name for s in sources if getattr(s, "multiway", False)}
        others = [lang for lang in x_langs if lang != "zho_Hans"]
        if "zho_Hans" in x_langs:  # pairs without a pivot side are reported once: by the pairs stage if there is one
            run_stage("pivot", pair_pipeline(recipe, sources, source_languages, ["zho_Hans"], work, "pivot", None, not others, eval_sets), 1)
        joiner = PivotJoin(work / "pairs" / "zho_Hans.parquet", multiway) if recipe.pivot_join else None
        if others:
            run_stage("pairs", pair_pipeline(recipe, sources, source_languages, others, work, "pairs", joiner, True, eval_sets), args.tasks)
        if recipe.instructions:
            chunks = chat_chunks(recipe.instructions)
            chat = [PrepareChat(recipe.instructions, chunks, work, eval_sets, recipe.decontamination.ngram, recipe.strict)]
            run_stage("chat", chat, max(1, min(args.tasks, len(chunks))))
            run_stage("chat_dedup", [DedupChat(work, recipe.seed)], args.tasks)
        cross_supply, chat_supply = supply(work / "pairs", work / "chat")
        if not sum(cross_supply.values()) + sum(chat_supply.values()):
            raise BuildError(f"{no_train_rows(work, x_langs)}; the version was not written (the stages' logs: {work / 'logs'})")
        budgets = plan(recipe.mixture, cross_supply, chat_supply)
        plan_path = work / "plan.json"
        plan_path.write_text(json.dumps({**budgets, "chat_cutoffs": chat_cutoffs(work / "chat", budgets)}, sort_keys=True))
        run_stage("mix", [MixInstructions(work, plan_path, recipe.seed, recipe.templates, recipe.mixture is None)], args.tasks)
        shards_path = work / "shards.json"
        shards = shard_plan(work, parse_size(recipe.shard_size))
        shards_path.write_text(json.dumps(shards, sort_keys=True))
        if any(job["shards"] > 1 for job in shards):
            run_stage("shard_parts", [PartitionShards(shards_path, work / "shard_parts")], args.tasks)
        run_stage("shards", [WriteShards(shards_path, staging.path, work / "shard_parts", work / "tmp")], args.tasks)
        mixture = {"plan": json.dumps(budgets, sort_keys=True), "recipe": json.dumps(recipe.to_dict()["mixture"])}
        license_text = license_summary(manifest_base["sources"], udhr_provenance()["license_text"] if multiway else "")
        recipe_text = Path(recipe.path).read_text(encoding="utf-8") if recipe.path else ""
        finish = [WriteManifest(work, staging.path, {**manifest_base, "mixture": mixture}, license_text, recipe_text)]
        run_stage("manifest", finish, 1)
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    return timings


def finish(staging: Staging, timings: dict[str, list[float]]) -> dict:
    """Check the built folder against its manifest and move it into place (see `keep_version`)."""
    manifest = read_manifest(staging.path)
    if manifest is None or manifest["build_key"] != staging.build_key:
        raise BuildError(f"the build did not finish: see the logs in {staging.work / 'logs'}")
    shutil.copytree(staging.work / "logs", staging.path / "logs", dirs_exist_ok=True)
    (staging.path / "logs" / "timings.json").write_text(json.dumps(timings, indent=1))  # when each stage ran
    staging.seal(manifest)
    return keep_version(staging.path, staging.output)


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
    lines = [f"- {s['name']} {s['version']} ({s['origin'] or 'local files'}): {s['license'] or 'not stated'}" for s in sources]
    return "This dataset is made of the following sources; each row's `source` column names its source, whose\n" \
           "license applies to that row.\n\n" + "\n".join(lines) + "\n" + (f"\n{texts.strip()}\n" if texts.strip() else "")  # fmt: skip


def publish_if_asked(args: argparse.Namespace, output: Path, manifest: dict) -> dict:
    if args.push_to_hub:
        from pipelines.publish import publish

        publish(output, args.push_to_hub, private=args.private)
    return manifest


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        build(args, argv)
    except (BuildError, UnknownLanguageCode, FileNotFoundError, recipes.RecipeError, SourceError, MixtureError, PublishError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    code = main()
    gc.freeze()  # exit would walk every object the build left for a last collection (0.3-0.5 s); none needs it
    sys.exit(code)
