"""Reading a Hub source: `HubSource.read` (Arrow batches) against iterating the same stream as Python rows.

    python tests/benchmarks/bench_hub_read.py [--rows 300000]

A 300k-row opus-100-shaped config is uploaded to the loopback Hub (tests/hub_server.py) and streamed back with
`datasets` both ways, in one run, in a fresh process (HF_ENDPOINT is read at import). Prints rows per second.
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
import datasets
from pipelines.sources import HubSource

source = HubSource(name="bench", preset="opus-100", configs=["de-en"])
source.languages()  # the driver's part: the commit and the configs
started = time.perf_counter()
pairs = sum(t.num_rows for t in source.read({"deu_Latn"}))
arrow = time.perf_counter() - started
started = time.perf_counter()
rows = 0
for row in datasets.load_dataset(source.repo, "de-en", split="train", revision=source.commit(), streaming=True):
    rows += bool(row["translation"]["de"]) + bool(row["translation"]["en"]) - 1
python = time.perf_counter() - started
print(f"HubSource.read (Arrow batches, ids, orientation): {pairs:,} pairs in {arrow:.2f} s, {pairs / arrow:,.0f} pairs/s")
print(f"the same stream as Python rows (no other work):   {rows:,} rows in {python:.2f} s, {rows / python:,.0f} rows/s")
print(f"ratio: {python / arrow:.1f}x")
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args(argv)
    constants.HF_HUB_DISABLE_XET = True  # the loopback Hub speaks LFS
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "repo" / "de-en"
        data.mkdir(parents=True)
        translation = [{"de": f"Das ist der deutsche Satz Nummer {i}, mit etwas mehr Text.", "en": f"This is English sentence number {i}, with some more text."}
                       for i in range(args.rows)]  # fmt: skip
        pq.write_table(pa.table({"translation": translation}), data / "train-00000-of-00001.parquet", row_group_size=50_000)
        (root / "repo" / "README.md").write_text("---\nconfigs:\n- config_name: de-en\n  data_files:\n  - split: train\n    path: de-en/train-*\n---\n")
        with HubServer(root / "hub") as hub:
            api = HfApi(endpoint=hub.url, token="hf_bench")
            api.create_repo("Helsinki-NLP/opus-100", repo_type="dataset")
            api.upload_folder(folder_path=str(root / "repo"), repo_id="Helsinki-NLP/opus-100", repo_type="dataset")
            env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_bench", "HF_HOME": str(root / "hf-home")}
            done = subprocess.run([sys.executable, "-c", MEASURE, str(REPO)], env=env, capture_output=True, text=True)
            print(done.stdout.strip() or done.stderr[-3000:])


if __name__ == "__main__":
    main()
