"""One build, as a library call: `build(BuildOptions(...))`. The driver reads the sources' languages, resolves the
languages, models and evaluation sets, computes the build key, chooses the version, and, unless that version
already holds this build, runs the stages (pipelines/stages.py) into a staging folder and moves it into place;
then publishes it where asked."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from langid.identify import LanguageIdentifier
from langid.models import file_sha256
from pipelines import console, storage
from pipelines import recipe as recipes
from pipelines.build_key import key_of, reproduce_command, row_arguments
from pipelines.manifest import code_version, read_manifest
from pipelines.options import BuildOptions, apply_overrides
from pipelines.runtime import Runtime
from pipelines.sources import SourceError, first_malformed
from pipelines.staging import BuildError, Staging
from pipelines.stages import BuildContext, run_stages
from pipelines.versions import check_output, choose_version, keep_version
from schemas.language_codes import PIVOTS, resolve_languages
from schemas.text.overlap import named_eval_set


@dataclass
class BuildInputs:
    """What the driver resolves before any stage: each source's languages, the languages asked, the language
    identifier, the sources' provenance and the evaluation sets (and their records)."""

    source_languages: list
    langs: list[str]
    identifier: LanguageIdentifier
    provenance: list[dict]
    eval_sets: list[tuple[str, str]]
    eval_records: list[dict]

    @property
    def x_langs(self) -> list[str]:
        """The languages the pair stages make: every non-pivot one, and zho_Hans (pivot pairs with English)."""
        return [lang for lang in self.langs if lang not in PIVOTS or lang == "zho_Hans"]


def build(options: BuildOptions) -> dict:
    """Build the version `options` ask for (or find it already built); returns its manifest."""
    console.set_level(options.log_level)
    runtime = Runtime(options.executor, options.workers, options.ray_address, options.log_level)
    runtime.warm_up()
    recipe = apply_overrides(recipes.load(options.recipe), options)
    inputs = gather_inputs(recipe)
    arguments = {**row_arguments(recipe, inputs.langs, inputs.identifier, inputs.provenance),
                 "eval_sets": json.dumps(inputs.eval_records, sort_keys=True)}  # fmt: skip
    build_key = key_of(arguments)
    version, output = choose_version(recipe.name, build_key, options.store, options.output, options.version, options.bump)
    with Staging(output, build_key, options.work_on_store) as staging:  # held until the version is in place: one build of a folder at a time
        if check_output(output, version, build_key, hashes=options.verify):
            manifest = read_manifest(output)
            print(f"{storage.shown(output)} already holds this build (version {version}, build key {build_key}): nothing to do.")
            print_summary(manifest, output, None, brief=not console.shows("WARNING"))
        else:
            staging.prepare()  # a folder left by a build of other arguments is emptied here, before any work
            manifest_base = first_manifest_keys(options, recipe, inputs, arguments, version)
            context = BuildContext(recipe, inputs.x_langs, inputs.source_languages, inputs.eval_sets, staging, manifest_base, options.tasks)
            started = time.time()
            manifest = finish(staging, run_stages(context, runtime))
            print_summary(manifest, output, time.time() - started, brief=not console.shows("WARNING"))
    if options.push_to_hub:
        from pipelines.publish import publish

        publish(output, options.push_to_hub, private=options.private)
    return manifest


def gather_inputs(recipe: recipes.Recipe) -> BuildInputs:
    sources = recipe.parallel
    source_languages = [s.languages() for s in sources]  # once: each reads the language columns of every file
    if recipe.strict:
        first_malformed(sources, recipe.instructions)
    available = sorted(set().union(*source_languages)) if sources else []
    spec = recipe.languages if isinstance(recipe.languages, str) else ",".join(recipe.languages)
    langs = resolve_languages(spec, available)
    identifier = LanguageIdentifier.load(recipe.langid.models, recipe.langid.threshold, recipe.langid.min_script_fraction)
    provenance = [s.provenance() for s in sources] + [s.provenance() for s in recipe.instructions]
    for record, source in zip(provenance, [*sources, *recipe.instructions]):
        if recipes.noncommercial(source):  # flagged in the card and LICENSE
            record["details"] = {**record["details"], "noncommercial": "true"}
    eval_sets, eval_records = gather_eval_sets(recipe.decontamination.eval_sets)
    return BuildInputs(source_languages, langs, identifier, provenance, eval_sets, eval_records)


def first_manifest_keys(options: BuildOptions, recipe: recipes.Recipe, inputs: BuildInputs, arguments: dict, version: str) -> dict:
    """The manifest's keys known before any stage runs (the manifest stage adds the counts, files and hashes)."""
    identifier, x_langs = inputs.identifier, inputs.x_langs
    return {
        "name": recipe.name,
        "build_key": key_of(arguments),
        "version": version,
        "arguments": {**arguments, "recipe_file": recipe.path, "command_line": shlex.join(options.command_line),
                      "reproduce": reproduce_command(list(options.argv), recipe, version),
                      "executor": options.executor, "tasks": str(options.tasks)},  # fmt: skip
        "code_version": code_version(),
        "sources": inputs.provenance,
        "eval_sets": inputs.eval_records,
        "language_id": {
            "models": [{"name": c.model.name, "sha256": c.model.sha256, "thresholds": c.thresholds.source} for c in identifier.checks],
            "checked_by_model": [lang for lang in x_langs if identifier.covers(lang)],
            "checked_by_script_only": [lang for lang in x_langs if not identifier.covers(lang)],
        },
    }


def finish(staging: Staging, timings: dict[str, list[float]]) -> dict:
    """Check the built folder against its manifest and move it into place (see `keep_version`)."""
    manifest = read_manifest(staging.path)
    if manifest is None or manifest["build_key"] != staging.build_key:
        raise BuildError(f"the build did not finish: see the logs in {staging.work / 'logs'}")
    shutil.copytree(staging.work / "logs", staging.path / "logs", dirs_exist_ok=True)
    (staging.path / "logs" / "timings.json").write_text(json.dumps(timings, indent=1))  # when each stage ran
    staging.seal(manifest)
    kept = keep_version(staging.path, staging.output)
    if staging.mirror is not None:  # the version is in place: the staging folder kept on the store goes
        staging.mirror.remove_remote()
    return kept


def gather_eval_sets(entries: list) -> tuple[list[tuple[str, str]], list[dict]]:
    """(name, local path) of every evaluation set and a record of each for the manifest. Hub sets are fetched here,
    in the driver, before any stage: a set that cannot be had stops the build before anything is written, unless
    the recipe marks it optional (FLORES "when reachable"), in which case the manifest says it was skipped."""
    found, records = [], []
    for entry in entries:
        if isinstance(entry, str):
            if storage.is_remote(entry):  # a URL: read from this machine's copy, recorded by its URL
                try:
                    path = str(storage.local_copy(entry))
                except (FileNotFoundError, IsADirectoryError) as e:
                    raise FileNotFoundError(f"decontamination.eval_sets: evaluation set not found: {e}") from None
                name, origin = storage.name(entry), storage.shown(entry)
            elif not Path(entry).is_file():
                raise FileNotFoundError(f"decontamination.eval_sets: evaluation set not found: {entry}")
            else:
                (name, path), origin = named_eval_set(entry), entry
            found.append((name, path))
            records.append({"name": name, "origin": origin, "sha256": file_sha256(path)})
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


def print_summary(manifest: dict, output: Path | str, seconds: float | None, brief: bool = False) -> None:
    """Rows per split, languages and removed pairs by step and reason; `brief` (--quiet): the rows per split, the
    removed pairs' total and the output, a few lines whatever the build."""
    splits = manifest["rows_per_split"]
    removed = sum(n for reasons in manifest["removed"].values() for n in reasons.values())
    if brief:
        print("  ".join([*(f"{split} {n}" for split, n in splits.items()), f"total {sum(splits.values())}", f"removed pairs {removed}"]))
        print(f"output: {output}" + (f"  ({seconds:.0f} s)" if seconds is not None else ""))
        return
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
        f"output: {storage.shown(output)}" + (f"  ({seconds:.0f} s)" if seconds is not None else ""),
    ]
    print("\n".join(lines))
