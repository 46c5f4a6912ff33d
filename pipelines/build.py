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
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python pipelines/build.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.console import LEVELS
from pipelines.driver import build
from pipelines.mixture import MixtureError
from pipelines.options import BuildOptions
from pipelines.publish import PublishError
from pipelines.recipe import RecipeError
from pipelines.runtime import freeze_imported
from pipelines.sources import SourceError
from pipelines.staging import BuildError
from schemas.language_codes import UnknownLanguageCode

freeze_imported()  # everything the build and its tasks import is imported by now (see runtime.TASK_IMPORTS)


def parse_args(argv=None) -> BuildOptions:
    """The options of the command line (`argv`, default sys.argv[1:]) as BuildOptions."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="embedded", help="recipe name (pipelines/recipes/<name>.yaml) or path")
    parser.add_argument("--langs", default=None, help="'all' or FLORES-200 codes, comma-separated (default: the recipe's)")
    parser.add_argument("--store", default="out",
                        help="folder of versions, <store>/<recipe name>/<version>/: a path or a URL (s3://, gs://, hf://, file://)")
    parser.add_argument("--version", default=None, help="version id, e.g. v1.0.0 (default: v1.0.0, or the latest if it is this build)")
    parser.add_argument("--bump", choices=["major", "minor", "patch"], default=None, help="the latest version in the store, bumped")
    parser.add_argument("--output", default=None, help="write the version to this folder (a path or a URL) instead of the store")
    parser.add_argument("--verify", action="store_true",
                        help="where the version already exists, check every file's sha256 against its manifest (default: sizes only)")
    parser.add_argument("--work-on-store", action="store_true",
                        help="with an --output or --store URL: keep the intermediate files, logs and completion markers on the "
                        "object store too, for a cluster whose workers share no folder (each syncs a copy in /tmp/bayling-work)")
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
    parser.add_argument("--exclude-noncommercial", action="store_true",
                        help="leave out every source whose license forbids commercial use (NC, research only)")
    parser.add_argument("--plan", action="store_true",
                        help="a dry run: resolve every source (commit, files, rows, license) and write plan.json and plan.png")
    console_group = parser.add_mutually_exclusive_group()
    console_group.add_argument("-q", "--quiet", dest="log_level", action="store_const", const="ERROR",
                               help="only errors and a short summary on the terminal (the task logs still go to the version's logs/)")
    console_group.add_argument("-v", "--verbose", dest="log_level", action="store_const", const="INFO",
                               help="datatrove's task logs on the terminal too (INFO)")
    console_group.add_argument("--log-level", type=str.upper, choices=LEVELS,
                               help="what reaches the terminal (default WARNING: warnings, errors, a progress bar per stage)")
    parser.set_defaults(log_level="WARNING")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    try:
        return BuildOptions(**vars(args), command_line=tuple(sys.argv[1:]), argv=tuple(given))
    except ValueError as e:  # options that do not go together: a usage error, as argparse reports its own
        parser.error(str(e))


def main(argv=None) -> int:
    options = parse_args(argv)
    try:
        if options.plan:
            from pipelines.plan import run_plan

            run_plan(options)
        else:
            build(options)
    except (BuildError, UnknownLanguageCode, RecipeError, SourceError, MixtureError, PublishError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a missing file, a full disk, a file too large: what the system said, with its file
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    code = main()
    freeze_imported()  # exit would walk every object the build left for a last collection; none needs it
    sys.exit(code)
