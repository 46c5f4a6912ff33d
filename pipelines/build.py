"""Build a cross-lingual instruction dataset from the embedded corpus.

    python pipelines/build.py --langs all
    python pipelines/build.py --langs deu_Latn,swh_Latn,yor_Latn --output out/three --executor ray

Steps (datatrove PipelineSteps, run by its Local or Ray executor): read pairs -> normalize -> pair filters ->
held-out filter -> language ID of both sides -> exact dedup -> instruction templates -> per-task Parquet; then
one task merges everything into data/, removed/, manifest.json and the dataset card.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python pipelines/build.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langid.identify import LanguageIdentifier
from langid.models import DEFAULT_MODELS, file_sha256
from pipelines.corpus import UDHR_PATH, UDHR_SOURCE, udhr_languages, udhr_provenance
from pipelines.manifest import code_version, read_manifest
from pipelines.steps.base import RemovedRows
from pipelines.steps.decontaminate import HeldOutFilter
from pipelines.steps.dedup import ExactPairDedup
from pipelines.steps.finalize import FinalizeBuild
from pipelines.steps.language_id import LanguageIdFilter
from pipelines.steps.normalize import NormalizeText
from pipelines.steps.pair_filters import PairFilter
from pipelines.steps.read_udhr import UdhrPairReader, language_pairs
from pipelines.steps.templates import TranslationInstructions
from pipelines.steps.write import TaskInstructionWriter
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
            raise unknown_code_error(code, available, what="language (not in the corpus)")
        chosen.append(flores)
    return sorted(set(chosen) | ({p for p in PIVOTS} & set(available) if chosen else set()))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--langs", default="all", help="'all' or FLORES-200 codes, comma-separated (default: all)")
    parser.add_argument("--output", type=Path, default=Path("out/udhr-cross-lingual"), help="output folder")
    parser.add_argument("--name", default="udhr-cross-lingual", help="dataset name for the card and manifest")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", default=None, help="address of an existing Ray cluster (default: start a local one)")
    parser.add_argument("--tasks", type=int, default=4, help="datatrove tasks (the rows do not depend on it)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="tasks run at the same time")
    parser.add_argument("--seed", type=int, default=0, help="seed for the choice of instruction phrasings")
    parser.add_argument("--langid-model", default=DEFAULT_MODELS,
                        help=f"language-ID models, comma-separated, asked in order (default: {DEFAULT_MODELS}; see langid.models)")
    parser.add_argument("--langid-threshold", type=float, default=None,
                        help="score a model must give the expected language where it has no per-language threshold (default: 0.5)")
    parser.add_argument("--min-script-fraction", type=float, default=0.5, help="minimum share of letters in the expected script")
    parser.add_argument("--max-length-ratio", type=float, default=3.0, help="maximum length ratio of the two sides")
    parser.add_argument("--rows-per-shard", type=int, default=250_000)
    parser.add_argument("--overwrite", action="store_true", help="replace a finished build made with other arguments")
    parser.add_argument("--corpus", type=Path, default=UDHR_PATH, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("tasks", "workers", "rows_per_shard"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def row_arguments(args: argparse.Namespace, langs: list[str], identifier: LanguageIdentifier) -> dict[str, str]:
    """The arguments the rows depend on; their hash is the build key (executor, tasks and workers are not)."""
    return {
        "langs": ",".join(langs),
        "seed": str(args.seed),
        "langid_models": ",".join(f"{c.model.name}:{c.model.sha256}" for c in identifier.checks),
        "langid_threshold": str(args.langid_threshold),
        "min_script_fraction": str(args.min_script_fraction),
        "max_length_ratio": str(args.max_length_ratio),
        "rows_per_shard": str(args.rows_per_shard),
        "corpus_sha256": file_sha256(args.corpus),
        "code_package": code_version()["package"],
        "name": args.name,
    }


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


def build(args: argparse.Namespace) -> dict:
    available = udhr_languages(args.corpus)
    langs = resolve_languages(args.langs, available)
    identifier = LanguageIdentifier.load(args.langid_model, args.langid_threshold, args.min_script_fraction)
    arguments = row_arguments(args, langs, identifier)
    build_key = stable_id(json.dumps(arguments, sort_keys=True))
    output = args.output
    if check_output(output, build_key, args.overwrite):
        manifest = read_manifest(output)
        print(f"{output} already holds this build (build key {build_key}): nothing to do.")
        print_summary(manifest, output, None)
        return manifest

    work = output / ".work" / build_key
    for stale in (output / ".work").glob("*"):  # an unfinished run with other arguments cannot be resumed
        if stale != work:
            shutil.rmtree(stale)
    removed = RemovedRows(work / "removed")
    x_langs = sorted({x for pair in language_pairs(langs) for x in pair})
    provenance = udhr_provenance(args.corpus)
    manifest_base = {
        "name": args.name,
        "build_key": build_key,
        "arguments": {**arguments, "command_line": shlex.join(sys.argv[1:]), "executor": args.executor, "tasks": str(args.tasks)},
        "code_version": code_version(),
        "sources": [
            {
                "name": "udhr",
                "version": provenance["version"],
                "origin": provenance["origin"],
                "license": provenance["license"],
                "sha256": provenance["tarball_sha256"],
                "details": {"npm_integrity": provenance["npm_integrity"], "embedded_file_sha256": arguments["corpus_sha256"],
                            "source_tag": UDHR_SOURCE, "heldout": "articles 25-27 validation, 28-30 test"},
            }
        ],  # fmt: skip
        "language_id": {
            "models": [
                {"name": c.model.name, "sha256": c.model.sha256, "thresholds": c.thresholds.source} for c in identifier.checks
            ],
            "checked_by_model": [lang for lang in x_langs if identifier.covers(lang)],
            "checked_by_script_only": [lang for lang in x_langs if not identifier.covers(lang)],
        },
    }

    started = time.time()
    ray_started = start_ray(args) if args.executor == "ray" else False
    try:
        pairs_pipeline = [
            UdhrPairReader(langs, args.corpus, progress=sys.stderr.isatty()),
            NormalizeText(),
            PairFilter(removed, max_length_ratio=args.max_length_ratio),
            HeldOutFilter(removed, args.corpus),
            LanguageIdFilter(removed, args.langid_model, args.langid_threshold, args.min_script_fraction),
            ExactPairDedup(removed),
            TranslationInstructions(seed=args.seed),
            TaskInstructionWriter(work / "instructions"),
        ]
        make_executor(args, pairs_pipeline, work / "logs" / "pairs", args.tasks).run()
        finalize = [FinalizeBuild(work, output, manifest_base, args.rows_per_shard, provenance["license_text"])]
        make_executor(args, finalize, work / "logs" / "finalize", 1).run()
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    manifest = read_manifest(output)
    if manifest is None or manifest["build_key"] != build_key:
        raise BuildError(f"the build did not finish: see the logs in {work / 'logs'}")
    shutil.copytree(work / "logs", output / "logs", dirs_exist_ok=True)
    shutil.rmtree(output / ".work")
    print_summary(manifest, output, time.time() - started)
    return manifest


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        build(args)
    except (BuildError, UnknownLanguageCode, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
