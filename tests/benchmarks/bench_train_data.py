"""The training data path on the CPU: read Parquet + chat format + tokenize + pack, in tokens per second.

    python tests/benchmarks/bench_train_data.py                      # one tokenizer thread: the rate per core
    python tests/benchmarks/bench_train_data.py --threads 2          # the tokenizer's batch encoding on 2 threads
    python tests/benchmarks/bench_train_data.py --workers 2          # 2 encoding processes (data.workers)
    python tests/benchmarks/bench_train_data.py --path out/bayling2 --formats auto

Data (real rows, read through `training.data.build_batches` exactly as the trainer does): the embedded corpus
built with `--langs all` (built into --workdir when no --path is given), and the zh/en instruction rows of
../shared/data/instructions written as a dataset version. Tokenizer: the real Llama-3 tokenizer
(`load_tokenizer("llama3")`), or --tokenizer.

Prints, per dataset and chat format: packed tokens per second of wall time and per CPU-second of the process
(all its threads and its encoding workers: on a shared machine this is the fair rate per core), the same per
CPU-second of the main process alone (with --workers, the most the in-order main process can take, however many
workers encode), the packing efficiency (real tokens / token slots), and the ratio to the token rate of one GPU: a ~1B-parameter model at 45% MFU on an H100 is
989e12 * 0.45 / (6 * 1e9) = 74k tokens/s. The goal is a data path >= 10x that per GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTRUCTIONS = REPO.parent / "shared" / "data" / "instructions"
GPU_TOKENS_PER_S = 989e12 * 0.45 / (6 * 1e9)


def instruction_version(workdir: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from schemas.records import MESSAGE_TYPE

    root = workdir / "instructions"
    target = root / "data" / "train-00000-of-00001.parquet"
    if not target.is_file():
        rows = [json.loads(line) for f in sorted(INSTRUCTIONS.glob("*.jsonl")) for line in f.read_text().splitlines() if line]
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({"id": [r["id"] for r in rows], "messages": pa.array([r["messages"] for r in rows], pa.list_(MESSAGE_TYPE))})
        pq.write_table(table, target)
    return root


def embedded_build(workdir: Path) -> Path:
    output = workdir / "embedded-all"
    if not (output / "manifest.json").is_file():
        from pipelines.build import main

        assert main(["--langs", "all", "--output", str(output), "--tasks", "2", "--workers", "2"]) == 0
    return output


def cpu_seconds() -> tuple[float, float]:
    """CPU time of this process and of it with its live children (the encoding workers), all threads."""
    import psutil

    me = psutil.Process()
    own = sum(me.cpu_times()[:2])
    return own, own + sum(sum(p.cpu_times()[:2]) for p in me.children(recursive=True))


def measure(path: Path, style: str, tokenizer, seq_len: int, min_tokens: int, workers: int) -> dict:
    from training.data import DataConfig, build_batches

    batches = build_batches(DataConfig(path=str(path), chat_format=style, workers=workers), tokenizer, 0, 1, 0, seq_len, 1)
    if workers:  # start the workers (they import transformers) before the clock
        next(batches)
        batches.load_state_dict(build_batches(DataConfig(path=str(path), chat_format=style, workers=workers), tokenizer, 0, 1, 0, seq_len, 1).state_dict())
    wall, cpu = time.perf_counter(), cpu_seconds()
    for _ in batches:
        if batches.stats()["real_tokens"] >= min_tokens:
            break
    wall, (main_cpu, cpu) = time.perf_counter() - wall, [b - a for a, b in zip(cpu, cpu_seconds())]
    stats = batches.stats()
    batches.close()
    return {"tokens": stats["real_tokens"], "wall_s": wall, "cpu_s": cpu, "main_cpu_s": main_cpu, "stats": stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", action="append", help="dataset version(s) to read; default: the embedded build and the instruction rows")
    parser.add_argument("--formats", default="bayling-llama3,bayling-llama2,auto")
    parser.add_argument("--tokenizer", default="llama3")
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--tokens", type=float, default=4e6, help="packed tokens to time per run (epochs repeat)")
    parser.add_argument("--threads", type=int, default=1, help="threads of the tokenizer's batch encoding")
    parser.add_argument("--workers", type=int, default=0, help="data.workers: encoding processes (0: in the main process)")
    parser.add_argument("--workdir", default="/tmp/bench_train_data")
    args = parser.parse_args(argv)

    # Before tokenizers is imported: its thread pool is sized once.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if args.threads > 1 else "false"
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(1)
    from training.tokenizers import load_tokenizer

    workdir = Path(args.workdir)
    paths = [Path(p) for p in args.path] if args.path else [embedded_build(workdir), instruction_version(workdir)]
    tokenizer = load_tokenizer(args.tokenizer)
    print(f"tokenizer {args.tokenizer} ({len(tokenizer)} tokens), seq_len {args.seq_len}, {args.threads} tokenizer thread(s), {args.workers} workers, "
          f"{os.cpu_count()} CPUs; GPU rate for comparison: {GPU_TOKENS_PER_S:,.0f} tokens/s")  # fmt: skip
    header = f"{'dataset':<16} {'format':<15} {'tokens':>10} {'tok/s wall':>11} {'tok/CPU-s':>10} {'x GPU/core':>10} {'cores for 10x':>13} {'packing':>8} {'truncated':>9} {'main tok/CPU-s':>14}"
    print(header)
    for path in paths:
        for style in args.formats.split(","):
            result = measure(path, style, tokenizer, args.seq_len, int(args.tokens), args.workers)
            per_cpu = result["tokens"] / result["cpu_s"]
            stats = result["stats"]
            print(f"{path.name:<16} {style:<15} {result['tokens']:>10,} {result['tokens'] / result['wall_s']:>11,.0f} {per_cpu:>10,.0f} "
                  f"{per_cpu / GPU_TOKENS_PER_S:>10.1f} {10 * GPU_TOKENS_PER_S / per_cpu:>13.1f} "
                  f"{stats['packing_efficiency']:>8.2%} {stats['truncated']:>9} {result['tokens'] / result['main_cpu_s']:>14,.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
