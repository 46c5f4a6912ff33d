"""The BayLing-2-sized build: 3.2M instructions from the Firefox corpus plus zh/en instructions.

    python tests/benchmarks/bench_build.py                       # 1x input, local executor, 2 workers
    python tests/benchmarks/bench_build.py --input-scale 4       # 4x input: does memory grow?
    python tests/benchmarks/bench_build.py --executor ray --workers 1,2 --tasks 4   # both, one after the other: the speedup
    python tests/benchmarks/bench_build.py --lid-only            # language ID of both sides alone, same pairs
    python tests/benchmarks/bench_build.py --pairs-only --lid-only   # the parallel-text path alone (its 979,200
                                                                     # cross-lingual rows, no zh/en part) against LID

Input: ../shared/data/bench/firefox_l10n (851k real pairs, 100 locales) as the parallel source, and
../shared/data/instructions (806 zh + 427 en real rows) as the instruction source, with every other setting of
pipelines/recipes/bayling2.yaml (near-duplicate removal included; its FLORES+ evaluation set is on the Hub and is
left out). The recipe asks for the BayLing-2 shares of 3.2M (43.2% zh = 1,382,400; 26.2% en = 838,400; 30.6% cross-lingual = 979,200), more zh/en
rows than exist: for this benchmark only, the instruction files are scaled up synthetically, each row copied with
a numbered note appended to its request ("(variant 12)") so that the copies are distinct instructions. With
--input-scale k the Firefox pairs are copied k times the same way (" [copy 2]" on both sides). None of this is
in the shipped recipes.

Prints wall time, peak memory (all processes of the build together, sampled every 0.2 s), rows per second,
each stage's share of the time, and the throughput of language identification alone on the same pairs.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psutil
import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
FIREFOX = SHARED / "bench" / "firefox_l10n"
SHARES = {"zh": 0.432, "en": 0.262, "cross_lingual": 0.306}


def prepare(workdir: Path, total: int, input_scale: int, pairs_only: bool = False) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    for lang, pattern, share in (("zho_Hans", "*_zh.jsonl", "zh"), ("eng_Latn", "*_en.jsonl", "en")):
        rows = [json.loads(line) for f in sorted((SHARED / "instructions").glob(pattern)) for line in f.read_text().splitlines() if line]
        copies = math.ceil(total * SHARES[share] * 1.02 / len(rows))
        path = workdir / f"synthetic-{lang}.jsonl"
        if not path.is_file():
            with open(path, "w", encoding="utf-8") as out:
                for k in range(copies):
                    for row in rows:
                        messages = [dict(m) for m in row["messages"]]
                        messages[0]["content"] += f" (variant {k})" if k else ""
                        out.write(json.dumps({"id": f"{row['id']}#{k}", "messages": messages}, ensure_ascii=False) + "\n")
    pairs_glob = str(FIREFOX / "*.parquet")
    if input_scale > 1:
        copies = workdir / f"firefox-x{input_scale}"
        copies.mkdir(exist_ok=True)
        for f in sorted(FIREFOX.glob("*.parquet")):
            if (copies / f.name).is_file():
                continue
            frame = pl.read_parquet(f)
            scaled = pl.concat(
                [frame] + [frame.with_columns(pl.col("id") + f"#{k}", pl.col("src_text") + f" [copy {k}]", pl.col("tgt_text") + f" [copy {k}]")
                           for k in range(2, input_scale + 1)]  # fmt: skip
            )
            scaled.write_parquet(copies / f.name)
        pairs_glob = str(copies / "*.parquet")
    # the shipped bayling2 recipe's settings (filters, language ID, exact and near dedup, templates, mixture), with
    # this benchmark's sources; its FLORES+ evaluation set is on the Hub, which cannot be reached here: left out
    # (the held-out UDHR text is always an evaluation set)
    recipe = yaml.safe_load((REPO / "pipelines" / "recipes" / "bayling2.yaml").read_text(encoding="utf-8"))
    recipe.update(
        name=f"bench-bayling2-x{input_scale}",
        description="benchmark only: synthetic copies of the zh/en rows",
        parallel=[{"type": "parquet", "name": "firefox-l10n", "path": pairs_glob, "columns": {"source_id": "id"}, "license": "MPL-2.0"}],
        instructions=[
            {"format": "messages", "path": str(workdir / "synthetic-zho_Hans.jsonl"), "lang": "zho_Hans", "name": "synthetic-zh"},
            {"format": "messages", "path": str(workdir / "synthetic-eng_Latn.jsonl"), "lang": "eng_Latn", "name": "synthetic-en"},
        ],
        decontamination={**recipe["decontamination"], "eval_sets": []},
        mixture={**recipe["mixture"], "total": total, "shares": SHARES},
    )
    if pairs_only:  # where language ID of both sides is the floor: the same cross-lingual rows, no zh/en part
        recipe.update(name=f"bench-pairs-x{input_scale}", instructions=[],
                      mixture={**recipe["mixture"], "total": round(total * SHARES["cross_lingual"]), "shares": {"cross_lingual": 1.0}})
    path = workdir / f"recipe-x{input_scale}{'-pairs' if pairs_only else ''}.yaml"
    path.write_text(json.dumps(recipe, indent=1))  # JSON is YAML
    return path


def run_build(recipe: Path, output: Path, executor: str, workers: int, tasks: int) -> dict:
    command = [sys.executable, str(REPO / "pipelines" / "build.py"), "--recipe", str(recipe), "--output", str(output),
               "--executor", executor, "--workers", str(workers), "--tasks", str(tasks)]  # fmt: skip
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watcher = psutil.Process(process.pid)

    def sample():
        while process.poll() is None:
            try:
                samples.append((time.time(), sum(p.memory_info().rss for p in [watcher, *watcher.children(recursive=True)])))
            except psutil.Error:
                pass
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = process.communicate()
    wall = time.perf_counter() - started
    thread.join()
    if process.returncode:
        raise SystemExit(f"build failed ({process.returncode}):\n{out[-3000:]}")
    timings = json.loads((output / "logs" / "timings.json").read_text())
    manifest = json.loads((output / "manifest.json").read_text())
    stage_peaks = {stage: max((rss for t, rss in samples if start <= t <= end), default=0) for stage, (start, end) in timings.items()}
    return {"wall": wall, "peak_rss": max(rss for _, rss in samples), "stage_peaks": stage_peaks, "timings": timings,
            "manifest": manifest, "summary": out}  # fmt: skip


def lid_only(workers: int) -> float:
    """Pairs per second for language ID of both sides of every Firefox pair, with `workers` processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(str(f) for f in FIREFOX.glob("*.parquet"))
    # spawn, not fork: forking a process that has started polars' thread pool can deadlock the children
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_load_identifier) as pool:
        list(pool.map(time.sleep, [0.5] * workers))  # start the workers and load the models before the clock starts
        started = time.perf_counter()
        pairs = sum(pool.map(_lid_file, files))
    return pairs / (time.perf_counter() - started)


def _load_identifier() -> None:
    sys.path.insert(0, str(REPO))
    from langid.identify import LanguageIdentifier

    global _IDENTIFIER
    _IDENTIFIER = LanguageIdentifier.load()
    _IDENTIFIER.check(["warm up the script tables"], "eng_Latn")


def _lid_file(path: str) -> int:
    from pipelines.sources import orient
    from schemas.language_codes import to_flores

    frame = pl.read_parquet(path, columns=["src_lang", "src_text", "tgt_lang", "tgt_text"])
    codes = {code: to_flores(code) for code in set(frame["src_lang"].unique()) | set(frame["tgt_lang"].unique())}
    frame = orient(frame.with_columns(pl.col("src_lang", "tgt_lang").replace_strict(codes)))
    for (src, tgt), group in frame.group_by("src_lang", "tgt_lang"):
        _IDENTIFIER.check(group["src_text"].to_list(), src)
        _IDENTIFIER.check(group["tgt_text"].to_list(), tgt)
    return frame.height


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=3_200_000)
    parser.add_argument("--input-scale", type=int, default=1)
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--workers", default="2", help="workers, or several comma-separated (1,2): a build for each, then the speedups")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bayling-bench"))
    parser.add_argument("--lid-only", action="store_true", help="also measure language ID alone on the same pairs")
    parser.add_argument("--pairs-only", action="store_true", help="build the cross-lingual part alone (no zh/en instructions)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))

    recipe = prepare(args.workdir, args.total, args.input_scale, args.pairs_only)
    walls = {}
    for workers in [int(w) for w in args.workers.split(",")]:
        walls[workers] = report(args, recipe, workers)
    for workers, wall in list(walls.items())[1:]:
        first = next(iter(walls))
        print(f"{args.executor}: {workers} workers vs {first}: {walls[first] / wall:.2f}x ({walls[first]:.0f} s -> {wall:.0f} s)")


def report(args, recipe: Path, workers: int) -> float:
    """Build with `workers`, print what the build did and took; the wall time."""
    output = args.workdir / f"out-x{args.input_scale}{'-pairs' if args.pairs_only else ''}-{args.executor}-w{workers}"
    for folder in (output, output.with_name(f".{output.name}.partial")):  # a rerun of the same build would be a no-op
        shutil.rmtree(folder, ignore_errors=True)
    # language ID alone before and after the build (never beside it: they would share the cores), and the ratio
    # to their mean: on a shared machine one measurement of it drifted 30% between runs
    lid_before = lid_only(workers) if args.lid_only else None
    result = run_build(recipe, output, args.executor, workers, args.tasks)
    manifest = result["manifest"]
    input_pairs = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in FIREFOX.glob("*.parquet")) * args.input_scale
    rows = sum(manifest["rows_per_split"].values())
    print(f"--- {args.executor}, {workers} workers, {args.tasks} tasks")
    print(result["summary"])
    print(f"input pairs {input_pairs:,}; output rows {rows:,} (train {manifest['rows_per_split']['train']:,}); content hash {manifest['content_hash']}")
    train = pl.read_parquet(output / "data" / "*" / "train-*.parquet", columns=["task", "src_lang", "tgt_lang", "pivot"])
    from schemas.text.templates import CROSS_LINGUAL_TASKS

    shares = {"cross_lingual": 1.0} if args.pairs_only else SHARES
    kinds = train.select(kind=pl.when(pl.col("task").is_in(CROSS_LINGUAL_TASKS)).then(pl.lit("cross_lingual"))
                         .when(pl.col("src_lang") == "zho_Hans").then(pl.lit("zh")).otherwise(pl.lit("en")))  # fmt: skip
    for kind, n in sorted(kinds.group_by("kind").len().iter_rows()):
        print(f"  {kind:<14}{n:>10,}  {n / train.height:.4%} (recipe {shares[kind]:.1%})")
    print(f"wall {result['wall']:.0f} s; peak memory {result['peak_rss'] / 2**30:.2f} GiB; "
          f"{input_pairs / result['wall']:,.0f} input pairs/s; {rows / result['wall']:,.0f} output rows/s")  # fmt: skip
    stages = {stage: end - start for stage, (start, end) in result["timings"].items()}
    for stage, seconds in stages.items():
        print(f"  stage {stage:<10}{seconds:>8.1f} s  {seconds / sum(stages.values()):>6.1%}   peak {result['stage_peaks'][stage] / 2**30:.2f} GiB")
    if args.lid_only:
        lid_after = lid_only(workers)
        lid = (lid_before + lid_after) / 2
        e2e = input_pairs / result["wall"]
        print(f"language ID alone, both sides, {workers} processes: {lid_before:,.0f} pairs/s before the build, {lid_after:,.0f} after; "
              f"end-to-end / LID alone = {e2e / lid:.2f} (against their mean)")
    return result["wall"]

if __name__ == "__main__":
    main()
