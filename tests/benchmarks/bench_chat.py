"""CPU time of the zh/en instruction stage (`PrepareChat`) per chunk, in one process, with no executor around it.

    python tests/benchmarks/bench_chat.py                                   # this checkout
    python tests/benchmarks/bench_chat.py --against /path/to/other/checkout # both, interleaved: before/after

The instruction files are the synthetic ones of bench_build.py (real zh/en rows, copied with a numbered note), made
in --workdir if missing. Each chunk is prepared --repeat times, each time in a new process, and the least CPU time
(user + system, all threads) is kept: the machine is shared, and the least is the one least disturbed. With
--against, the two checkouts take turns, and both must write the same files (compared by hash) or the benchmark fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def measure(code: Path, path: Path, chunks: int, repeat: int, out: Path) -> dict:
    """In this process, with the pipeline code of checkout `code`: least CPU seconds per chunk, and a hash per file."""
    sys.path.insert(0, str(code))
    from pipelines.sources import InstructionSource
    try:
        from pipelines.steps.prepare_chat import PrepareChat
    except ImportError:  # a baseline checkout from before the chat steps had a module each
        from pipelines.steps.chat import PrepareChat

    try:
        from pipelines.planning import chat_chunks
    except ImportError:  # a baseline checkout from before pipelines/planning.py
        from pipelines.steps.chat import chat_chunks
    from schemas.text.overlap import eval_index

    if not Path(sys.modules[PrepareChat.__module__].__file__).is_relative_to(code):
        raise SystemExit(f"imported the pipeline code from {sys.modules[PrepareChat.__module__].__file__}, not from {code}")
    source = InstructionSource(format="messages", path=str(path), lang="zho_Hans" if "zho" in path.name else "eng_Latn", name="bench")
    work = chat_chunks([source])[:chunks]
    step = PrepareChat([source], work, out, [], 13)
    index = eval_index((), 13)
    step.prepare_chunk(0, source.read(work[0][1]), index)  # warm-up: regexes compiled, pools started
    seconds = []
    for number, (_, chunk) in enumerate(work):
        best = float("inf")
        for _ in range(repeat):
            started = time.process_time()
            step.prepare_chunk(number, source.read(chunk), index)
            best = min(best, time.process_time() - started)
        seconds.append(best)
    files = {str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(out.rglob("*.parquet"))}
    return {"seconds": seconds, "files": files}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bayling-bench-chat"))
    parser.add_argument("--total", type=int, default=400_000, help="mixture size the synthetic files are made for")
    parser.add_argument("--chunks", type=int, default=3, help="chunks of each file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout to measure the same way, e.g. main")
    parser.add_argument("--measure", nargs=3, metavar=("CODE", "FILE", "OUT"), help=argparse.SUPPRESS)  # one child run
    args = parser.parse_args(argv)
    if args.measure:
        code, path, out = args.measure
        print(json.dumps(measure(Path(code), Path(path), args.chunks, args.repeat, Path(out))))
        return
    sys.path.insert(0, str(REPO / "tests" / "benchmarks"))
    from bench_build import prepare

    prepare(args.workdir, args.total, 1)
    checkouts = {"this": REPO, **({"against": args.against.resolve()} if args.against else {})}
    for path in sorted(args.workdir.glob("synthetic-*.jsonl")):
        results = {name: {"seconds": None, "files": None} for name in checkouts}
        for _ in range(args.repeat):  # the checkouts take turns, so that both see the same load on a shared machine
            for name, code in checkouts.items():
                with tempfile.TemporaryDirectory() as out:
                    command = [sys.executable, __file__, "--chunks", str(args.chunks), "--repeat", "1", "--measure", str(code), str(path), out]
                    run = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
                best = results[name]["seconds"] or run["seconds"]
                results[name] = {"seconds": [min(a, b) for a, b in zip(best, run["seconds"])], "files": run["files"]}
        for name, result in results.items():
            seconds = result["seconds"]
            print(f"{path.name} {name:8s} ({checkouts[name]}): {sum(seconds) / len(seconds):.3f} CPU s per chunk "
                  f"({', '.join(f'{s:.3f}' for s in seconds)})")  # fmt: skip
        if args.against:
            this, other = (sum(results[n]["seconds"]) for n in ("this", "against"))
            same = results["this"]["files"] == results["against"]["files"]
            print(f"  this / against: {this / other:.2f}; files identical: {same} ({len(results['this']['files'])} files)")
            if not same:
                raise SystemExit("the two checkouts wrote different files")


if __name__ == "__main__":
    main()
