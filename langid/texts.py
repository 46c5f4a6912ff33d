"""Labelled text for training, thresholds and evaluation: a frame of (text, lang) from a named source.

- `udhr:train`, `udhr:validation`, `udhr:test`, `udhr:heldout` (validation + test): paragraphs of the embedded
  corpus (articles 0-24 / 25-27 / 28-30), primary declarations; add `+variants` for every declaration
  (`udhr:train+variants`). Paragraphs not mostly in their declaration's script are left out.
- a Parquet file with `text` and `lang` columns, or with pair columns (`src_text`, `src_lang`, `tgt_text`,
  `tgt_lang`, as in the builder's pair files), whose two sides are both used.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from langid.scripts import script_fraction
from pipelines.corpus import UDHR_PATH, load_udhr
from pipelines.steps.normalize import normalize_text

UDHR_SPLITS = {"train": ["train"], "validation": ["validation"], "test": ["test"], "heldout": ["validation", "test"]}


def in_declared_script(frame: pl.DataFrame, min_fraction: float = 0.5) -> pl.DataFrame:
    """Rows whose letters are mostly in the script of their label: a few declarations carry paragraphs in
    another script (Chinese characters in a Latin-script declaration), which are not good text of the label."""
    parts = []
    for (lang,), group in frame.group_by("lang", maintain_order=True):
        fraction = script_fraction(group["text"].to_list(), lang.split("_")[1])
        parts.append(group.filter(pl.Series(fraction >= min_fraction)))
    return pl.concat(parts) if parts else frame


def load_texts(spec: str) -> pl.DataFrame:
    """(text, lang) rows of `spec`, normalized as the builder normalizes, empty texts dropped."""
    if spec.startswith("udhr:"):
        split, _, extra = spec.removeprefix("udhr:").partition("+")
        if split not in UDHR_SPLITS or extra not in ("", "variants"):
            raise ValueError(f"unknown text source {spec!r}: use udhr:<{'|'.join(UDHR_SPLITS)}>[+variants] or a Parquet file")
        corpus = load_udhr(UDHR_PATH, primary_only=extra != "variants")
        frame = in_declared_script(corpus.filter(pl.col("split").is_in(UDHR_SPLITS[split])).select("text", "lang"))
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"text source not found: {path}")
        columns = set(pl.read_parquet_schema(path))
        if {"text", "lang"} <= columns:
            frame = pl.read_parquet(path, columns=["text", "lang"])
        elif {"src_text", "src_lang", "tgt_text", "tgt_lang"} <= columns:
            sides = pl.read_parquet(path, columns=["src_text", "src_lang", "tgt_text", "tgt_lang"])
            frame = pl.concat(
                [
                    sides.select(text="src_text", lang="src_lang"),
                    sides.select(text="tgt_text", lang="tgt_lang"),
                ]
            )
        else:
            raise ValueError(f"{path}: needs columns text and lang, or src_text, src_lang, tgt_text, tgt_lang; has {sorted(columns)}")
    frame = frame.with_columns(normalize_text(frame["text"]))
    return frame.filter(pl.col("text").str.len_chars() > 0)
