"""The pairs stage's per-row steps other than language ID and dedup, on the batches one real task of the Firefox
benchmark sees: CPU seconds of each, this checkout against a baseline checkout, interleaved, in one process.

    python tests/benchmarks/bench_pair_steps.py --baseline /work/main              # task 0 of 8, 7 repeats
    python tests/benchmarks/bench_pair_steps.py --baseline ../main --task 3 --repeats 11

First it runs this checkout's pivot stage and the task's pairs pipeline up to the pivot join (language ID included,
a few seconds) and keeps the batches each step receives. Then, per step, it runs the baseline's module (loaded from
the baseline's file by path) and this checkout's on the same batches, alternately, and prints the median and the
least CPU seconds (time.process_time: every thread of the process) of each, their ratio, and whether both gave the
same output. `read` is a task's reading of its languages' files (the driver's `languages()` is not counted);
`decontaminate` is a task's whole step, its evaluation index included (this checkout's loads the one the pivot
stage saved; a baseline without that builds it); `eval_index` is building the index. Both sides import this
checkout's shared modules (pipelines.batch, schemas): only the step files are swapped.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
FIREFOX = REPO.parent / "shared" / "data" / "bench" / "firefox_l10n"
MODULES = {"decontaminate": "steps/decontaminate.py", "normalize": "steps/normalize.py", "pair_filters": "steps/pair_filters.py",
           "pivot_join": "steps/pivot_join.py", "sources": "sources.py"}  # fmt: skip
TAPPED = ("normalize", "pair_filter", "decontaminate", "pivot_join")


def task_batches(work: Path, task: int, tasks: int):
    """(the recipe, the task's languages, the batches each TAPPED step receives), from this checkout's pipeline."""
    from pipelines import recipe as recipes
    from pipelines.stages import pair_pipeline
    from pipelines.steps.pivot_join import PivotJoin
    from pipelines.steps.read_pairs import languages_of_task
    from schemas.language_codes import PIVOTS

    data = yaml.safe_load((REPO / "pipelines" / "recipes" / "bayling2.yaml").read_text(encoding="utf-8"))
    data.update(parallel=[{"type": "parquet", "name": "firefox-l10n", "path": str(FIREFOX / "*.parquet"), "columns": {"source_id": "id"}}],
                instructions=[], decontamination={**data["decontamination"], "eval_sets": []})  # fmt: skip
    recipe = recipes.parse(data, "bench_pair_steps: ")
    sources = recipe.parallel
    source_languages = [s.languages() for s in sources]
    langs = sorted(set().union(*source_languages))
    others = [lang for lang in langs if lang not in PIVOTS and lang != "zho_Hans"]
    data = None
    for step in pair_pipeline(recipe, sources, source_languages, ["zho_Hans"], work, "pivot", None, False, []):
        data = step.run(data, 0, 1)
    for _ in data:
        pass
    steps = pair_pipeline(recipe, sources, source_languages, others, work, "pairs", PivotJoin(work / "pairs" / "zho_Hans.parquet", set()), True, [])
    batches = {name: [] for name in TAPPED}

    def tap(name, stream):
        for batch in stream:
            batches[name].append(batch)
            yield batch

    data = steps[0].run(None, task, tasks)
    for step in steps[1:]:
        data = step.run(tap(step.name, data) if step.name in TAPPED else data, task, tasks)
        if step.name == "pivot_join":
            break
    for _ in data:
        pass
    return set(languages_of_task(others, task, tasks)), batches


def load_modules(checkout: Path) -> dict:
    import pipelines.batch

    # a baseline from before pipelines/batch.py imports the same engine as pipelines.steps.base
    sys.modules.setdefault("pipelines.steps.base", pipelines.batch)
    modules = {}
    for name, relative in MODULES.items():
        spec = importlib.util.spec_from_file_location(f"baseline_{name}", checkout / "pipelines" / relative)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        modules[name] = module
    return modules


def accepts(function, argument: str) -> bool:
    return argument in inspect.signature(function).parameters


def cases(mine: set, batches: dict, work: Path) -> dict:
    from pipelines.batch import RemovedRows

    removed = RemovedRows(work / "bench-removed")
    index_folder = work / "eval_index"
    firefox = dict(format="parquet", path=str(FIREFOX / "*.parquet"), columns={"source_id": "id"}, name="firefox-l10n")
    readers = {}

    def read(m):
        if id(m) not in readers:
            readers[id(m)] = m["sources"].TableSource(**firefox)
            readers[id(m)].languages()  # as the driver does, once
        return list(readers[id(m)].read(mine))

    def normalize(m):
        step = m["normalize"].NormalizeText()
        return [step.process(b) for b in batches["normalize"]]

    def pair_filter(m):
        step = m["pair_filters"].PairFilter(removed)
        return [step.reasons(b) for b in batches["pair_filter"]]

    def eval_index(m):
        m["decontaminate"].eval_index.cache_clear()
        return m["decontaminate"].eval_index((), 13).overlaps(["All human beings are born free and equal in dignity and rights."])

    def decontaminate(m):
        module = m["decontaminate"]
        module.eval_index.cache_clear()
        folder = {"index_folder": index_folder} if accepts(module.Decontaminate, "index_folder") else {}
        step = module.Decontaminate(removed, **folder)
        return [step.reasons(b) for b in batches["decontaminate"]]

    def pivot_join(m):
        return list(m["pivot_join"].PivotJoin(work / "pairs" / "zho_Hans.parquet", set()).run(iter(batches["pivot_join"])))

    return {"read": read, "normalize": normalize, "pair_filter": pair_filter, "eval_index": eval_index,
            "decontaminate": decontaminate, "pivot_join": pivot_join}  # fmt: skip


def same(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (pa.Table, pl.DataFrame)):
        return a.equals(b)
    return a == b


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout to compare against (e.g. main)")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="", help="steps to run, comma-separated (default: all)")
    args = parser.parse_args(argv)
    import pipelines.sources
    import pipelines.steps.decontaminate
    import pipelines.steps.normalize
    import pipelines.steps.pair_filters
    import pipelines.steps.pivot_join

    this = {name: sys.modules[f"pipelines.{relative[:-3].replace('/', '.')}"] for name, relative in MODULES.items()}
    baseline = load_modules(args.baseline.resolve())
    with tempfile.TemporaryDirectory(prefix="bench-pair-steps-") as folder:
        work = Path(folder)
        started = time.perf_counter()
        mine, batches = task_batches(work, args.task, args.tasks)
        rows = {name: sum(b.num_rows for b in found) for name, found in batches.items()}
        print(f"task {args.task} of {args.tasks}: {len(mine)} languages, rows into {rows} ({time.perf_counter() - started:.0f} s to collect)")
        print(f"{'step':14s} {'baseline s':>11s} {'(least)':>8s} {'this s':>8s} {'(least)':>8s} {'this/base':>9s}  same output")
        for name, run in cases(mine, batches, work).items():
            if args.only and name not in args.only.split(","):
                continue
            times, outputs = {"baseline": [], "this": []}, {}
            for _ in range(args.repeats):
                for label, modules in (("baseline", baseline), ("this", this)):
                    start = time.process_time()
                    outputs[label] = run(modules)
                    times[label].append(time.process_time() - start)
            base, new = statistics.median(times["baseline"]), statistics.median(times["this"])
            print(f"{name:14s} {base:11.3f} {min(times['baseline']):8.3f} {new:8.3f} {min(times['this']):8.3f} {new / base:9.2f}  "
                  f"{same(outputs['baseline'], outputs['this'])}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
