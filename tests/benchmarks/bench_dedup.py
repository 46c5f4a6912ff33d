"""Deduplication throughput against language identification, as ratios measured in one run on one core.

    python tests/benchmarks/bench_dedup.py [--locales 30] [--repeats 3]

Pairs: the first --locales files of ../shared/data/bench/firefox_l10n (real Firefox strings, X <-> eng_Latn),
and the embedded corpus (long UDHR paragraphs, every language and both pivots). Measured, best of --repeats,
single process, each step alone over the same batches (one per file or language pair, as the pairs stage sees
them):
  langid      LanguageIdFilter (the default cascade, both sides): the floor of the pairs stage;
  exact       ExactPairDedup;
  near        NearDuplicateDedup with the recipes' settings (5-word shingles, 14 buckets x 8 hashes);
  datatrove   datatrove's own MinhashDedupSignature.get_shingles + get_signature per pair (its stage 1 only).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402

from pipelines.batch import RemovedRows  # noqa: E402
from pipelines.dedup import MinhashSigner, minhash_config  # noqa: E402
from pipelines.steps.exact_dedup import ExactPairDedup  # noqa: E402
from pipelines.steps.near_dedup import NearDuplicateDedup  # noqa: E402
from pipelines.steps.language_id import LanguageIdFilter  # noqa: E402
from schemas.records import PAIR_SCHEMA  # noqa: E402
from schemas.text.udhr import language_pairs, udhr_languages, udhr_pairs  # noqa: E402

FIREFOX = Path(__file__).resolve().parents[3] / "shared" / "data" / "bench" / "firefox_l10n"


def firefox(locales: int) -> list[pa.Table]:
    files = sorted(FIREFOX.glob("*.parquet"))[:locales]
    return [
        pl.read_parquet(f).with_columns(source_id="id", split=pl.lit("train")).select(PAIR_SCHEMA.names).to_arrow().cast(PAIR_SCHEMA)
        for f in files
    ]


def best_of(repeats: int, make_step, batches: list[pa.Table]) -> tuple[float, int]:
    best, kept = float("inf"), 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as removed:
            step = make_step(RemovedRows(removed))
            started = time.perf_counter()
            kept = sum(t.num_rows for t in step.run(iter(batches)))
            best = min(best, time.perf_counter() - started)
    return best, kept


def datatrove_stage1(batches: list[pa.Table]) -> float:
    """datatrove's own per-document stage 1 (shingles hashed as joined strings, one signature per call)."""
    signer = MinhashSigner(minhash_config())
    # datatrove hashes the n-gram str; xxhash 4 (installed here through datasets) hashes bytes only (datatrove asks
    # for xxhash<4 in its `processing` extra), so the str is encoded first, as xxhash 3 does inside
    signer.stage1._hash_func = lambda text: signer.hash(text.encode())
    started = time.perf_counter()
    for batch in batches:
        for src, tgt in zip(batch.column("src_text").to_pylist(), batch.column("tgt_text").to_pylist()):
            shingles = np.concatenate([signer.stage1.get_shingles(src), signer.stage1.get_shingles(tgt)])
            if shingles.size:
                signer.stage1.get_signature(shingles)
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--locales", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    corpora = {"firefox": firefox(args.locales), "udhr": list(udhr_pairs(language_pairs(udhr_languages())))}
    print(f"{'corpus':<9}{'step':<11}{'pairs':>9}{'kept':>9}{'seconds':>9}{'pairs/s':>10}{'vs langid':>11}")
    for name, batches in corpora.items():
        pairs = sum(t.num_rows for t in batches)
        steps = {
            "langid": lambda removed: LanguageIdFilter(removed),
            "exact": lambda removed: ExactPairDedup(removed),
            "near": lambda removed: NearDuplicateDedup(removed),
        }
        seconds = {step: best_of(args.repeats, make, batches) for step, make in steps.items()}
        seconds["datatrove"] = (datatrove_stage1(batches[: max(1, len(batches) // 10)]) * len(batches) / max(1, len(batches) // 10), pairs)
        for step, (s, kept) in seconds.items():
            print(f"{name:<9}{step:<11}{pairs:>9}{kept:>9}{s:>9.2f}{pairs / s:>10.0f}{seconds['langid'][0] / s:>11.2f}")


if __name__ == "__main__":
    main()
