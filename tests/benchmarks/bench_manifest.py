"""Memory of merging the removed rows (the manifest stage) as their number grows.

    python tests/benchmarks/bench_manifest.py                  # 0.5M and 2M removed rows in 8 task files
    python tests/benchmarks/bench_manifest.py --rows 1000000 4000000

For each size it writes the removed rows of one step as 8 task files (REMOVED_SCHEMA, ~80-character texts on both
sides), then merges them in a fresh process two ways and prints the peak RSS of each: `merge_removed` (streamed:
a range of ids at a time) and, for comparison, what the manifest stage did before (read every file, concatenate,
sort, write). Both give one file sorted by id.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

MERGE = {
    "streamed": "from pipelines.steps.write_manifest import merge_removed; merge_removed(Path(sys.argv[1]), Path(sys.argv[2]))",
    "all in memory (before)": (
        "import polars as pl; from pipelines.batch import write_parquet_atomic\n"
        "parts = [pl.read_parquet(f) for f in sorted(Path(sys.argv[1]).glob('*.parquet'))]\n"
        "removed = pl.concat(parts, how='vertical_relaxed').sort('id')\n"
        "write_parquet_atomic(Path(sys.argv[2]), removed.to_arrow(), row_group_size=10_000)\n"
        "removed.group_by('reason').len()"
    ),
}


def make_rows(folder: Path, rows: int, tasks: int = 8) -> None:
    import hashlib

    import polars as pl

    folder.mkdir(parents=True, exist_ok=True)
    for rank in range(tasks):
        n = rows // tasks
        i = pl.int_range(rank * n, (rank + 1) * n, eager=True)
        ids = [hashlib.blake2b(str(k).encode(), digest_size=16).hexdigest() for k in range(rank * n, (rank + 1) * n)]
        text = pl.lit("Removed pair number ") + i.cast(pl.String) + pl.lit(" of the benchmark, with some more words to it")
        frame = pl.DataFrame({"i": i}).select(
            id=pl.Series(ids), src_lang=pl.lit("deu_Latn"), src_text=text, tgt_lang=pl.lit("eng_Latn"),
            tgt_text=text.str.to_uppercase(), source=pl.lit("bench"), source_id=pl.lit("bench:") + i.cast(pl.String),
            split=pl.lit("train"), stage=pl.lit("language_id"), reason=pl.lit("language_id"),
            detail=pl.lit("src: expected deu_Latn, predicted x"),
        )  # fmt: skip
        frame.write_parquet(folder / f"pairs-{rank:05d}.parquet", compression="zstd")


def peak_rss(code: str, source: Path, target: Path) -> tuple[float, float]:
    script = f"import sys; from pathlib import Path; sys.path.insert(0, {str(REPO)!r})\n{code}\n"
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-c", script, str(source), str(target)], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 2**20, time.perf_counter() - started  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 2_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bayling-bench-manifest"))
    args = parser.parse_args()
    # children's max RSS is a running maximum: measure the small sizes first and each way in its own run
    for rows in sorted(args.rows):
        folder = args.workdir / f"removed-{rows}"
        if not folder.exists():
            make_rows(folder, rows)
        for name, code in MERGE.items():
            probe = subprocess.run([sys.executable, __file__, "--probe", name, str(folder), str(args.workdir / f"merged-{rows}.parquet")],
                                   capture_output=True, text=True, check=True)  # fmt: skip
            print(f"{rows:>10,} removed rows  {name:<24}{probe.stdout.strip()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        gib, seconds = peak_rss(MERGE[sys.argv[2]], Path(sys.argv[3]), Path(sys.argv[4]))
        print(f"peak RSS {gib:.2f} GiB  {seconds:.1f} s")
    else:
        main()
