"""Reading a Hub instruction set: `HubInstructionSource.read` (Parquet row groups by range requests, converted a
column at a time) of an alpaca-shaped and a messages-shaped set.

    python tests/benchmarks/bench_hub_instructions.py [--rows 200000]

Both sets are uploaded to the loopback Hub (tests/hub_server.py) and read back chunk by chunk in one fresh process
(HF_ENDPOINT is read at import). Prints rows per second of each.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import HfApi, constants

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.hub_server import HubServer  # noqa: E402

MEASURE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pipelines.hub_instructions import HubInstructionSource

for entry in ({"repo": "bench/alpaca", "format": "alpaca", "lang": "zho_Hans"}, {"repo": "bench/messages", "format": "messages", "lang": "eng_Latn"}):
    source = HubInstructionSource(**entry)
    chunks = source.chunks()  # the driver's part: commit, files, footers
    started = time.perf_counter()
    rows = sum(t.num_rows for chunk in chunks for t in source.read(chunk))
    seconds = time.perf_counter() - started
    print(f"{entry['format']}: {rows} rows in {seconds:.2f} s, {rows / seconds / 1000:.0f}k rows/s ({len(chunks)} chunks)")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    n = parser.parse_args().rows
    constants.HF_HUB_DISABLE_XET = True
    with tempfile.TemporaryDirectory() as tmp, HubServer(Path(tmp) / "hub") as hub:
        api = HfApi(endpoint=hub.url, token="hf_bench")
        tables = {
            "bench/alpaca": pa.table({"instruction": [f"请写第{i}篇短文。" * 3 for i in range(n)], "input": ["" if i % 2 else f"补充{i}" for i in range(n)],
                                      "output": [f"这是第{i}篇短文的内容。" * 8 for i in range(n)]}),
            "bench/messages": pa.table({"messages": [[{"content": f"Question {i} " * 10, "role": "user"}, {"content": f"Answer {i} " * 40, "role": "assistant"}]
                                                     for i in range(n)]}),
        }  # fmt: skip
        for repo, table in tables.items():
            folder = Path(tmp) / repo
            (folder / "data").mkdir(parents=True)
            pq.write_table(table, folder / "data" / "train-00000-of-00001.parquet", row_group_size=50_000)
            api.create_repo(repo, repo_type="dataset")
            api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset")
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(Path(tmp) / "hf-home")}
        done = subprocess.run([sys.executable, "-c", MEASURE, str(REPO)], env=env, capture_output=True, text=True, timeout=600)
        print(done.stdout.strip() or done.stderr[-3000:])


if __name__ == "__main__":
    main()
