"""Labelled text for training, thresholds and evaluation: a frame of (text, lang) from a named source.

- `udhr:train`, `udhr:validation`, `udhr:test`, `udhr:heldout` (validation + test): paragraphs of the embedded
  corpus (articles 0-24 / 25-27 / 28-30), primary declarations; add `+variants` for every declaration
  (`udhr:train+variants`). Paragraphs not mostly in their declaration's script are left out.
- `firefox:train`, `firefox:calibration`, `firefox:heldout` (add `+pivot` to keep the English side too): the
  user-interface strings of the Firefox benchmark corpus (../shared/data/bench/firefox_l10n, MPL-2.0; another
  folder with `BAYLING_FIREFOX_L10N`), split by English string (`firefox_split`): a held-out string is held out in every
  locale, so nothing fitted on train or calibration has seen it, in any language.
- a Parquet file with `text` and `lang` columns, or with pair columns (`src_text`, `src_lang`, `tgt_text`,
  `tgt_lang`, as in the builder's pair files), whose two sides are both used.
"""

from __future__ import annotations

from pathlib import Path

import os

import polars as pl
import polars_hash  # noqa: F401  (registers the `nchash` namespace)

from langid.scripts import script_fraction
from pipelines.corpus import UDHR_PATH, load_udhr
from pipelines.steps.normalize import normalize_text

FIREFOX_L10N = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench" / "firefox_l10n"
FIREFOX_SPLITS = ("train", "calibration", "heldout")


def firefox_folder() -> Path:
    return Path(os.environ.get("BAYLING_FIREFOX_L10N", FIREFOX_L10N))


def firefox_split(english: pl.Expr) -> pl.Expr:
    """The split of each Firefox pair by its English string, so the same in every locale and for every message
    that repeats the string: 8 in 10 strings train, 1 calibration (thresholds), 1 held out (evaluation only)."""
    bucket = english.nchash.xxh3_64() % 10  # XXH3: the same split in every version of the libraries
    return pl.when(bucket < 8).then(pl.lit("train")).when(bucket == 8).then(pl.lit("calibration")).otherwise(pl.lit("heldout"))


def load_firefox(split: str, with_pivot: bool = False, folder: Path | None = None) -> pl.DataFrame:
    """(text, lang, id) of one split of the Firefox corpus: the locale side, and the English side too with
    `with_pivot` (each English string once)."""
    if split not in FIREFOX_SPLITS:
        raise ValueError(f"unknown Firefox split {split!r}: use one of {', '.join(FIREFOX_SPLITS)}")
    folder = folder or firefox_folder()
    files = sorted(folder.glob("*-eng_Latn.parquet"))
    if not files:
        raise FileNotFoundError(f"no Firefox corpus in {folder} (set BAYLING_FIREFOX_L10N to its folder)")
    pairs = pl.concat([pl.read_parquet(f, columns=["id", "src_lang", "src_text", "tgt_lang", "tgt_text"]) for f in files])
    pairs = pairs.filter(firefox_split(pl.col("tgt_text")) == split)
    frame = pairs.select(text="src_text", lang="src_lang", id="id")
    if with_pivot:
        english = pairs.select(text="tgt_text", lang="tgt_lang", id=pl.col("id").str.splitn(":", 2).struct.field("field_1"))
        frame = pl.concat([frame, english.unique("text", keep="first", maintain_order=True)])
    return frame


UDHR_SPLITS = {"train": ["train"], "validation": ["validation"], "test": ["test"], "heldout": ["validation", "test"]}


def in_declared_script(frame: pl.DataFrame, min_fraction: float = 0.5) -> pl.DataFrame:
    """Rows whose letters are mostly in the script of their label: a few declarations carry paragraphs in
    another script (Chinese characters in a Latin-script declaration), which are not good text of the label."""
    parts = []
    for (lang,), group in frame.group_by("lang", maintain_order=True):
        fraction = script_fraction(group["text"].to_list(), lang.split("_")[1])
        parts.append(group.filter(pl.Series(fraction >= min_fraction)))
    return pl.concat(parts) if parts else frame


def clauses(data: pl.DataFrame, shortest: int = 20, longest: int = 60) -> pl.DataFrame:
    """The texts cut at sentence and clause punctuation, keeping pieces of `shortest`..`longest` characters: short
    text like a software UI string or a subtitle, which the paragraphs of the UDHR are not."""
    pieces = data.select("text", "lang").with_columns(
        pl.col("text").str.replace_all(r"[.;:!?\u3002\uff1b\uff1a\uff01\uff1f\u0964]", "\n").str.split("\n")
    ).explode("text")
    return pieces.with_columns(pl.col("text").str.strip_chars()).filter(pl.col("text").str.len_chars().is_between(shortest, longest))


def with_clauses(data: pl.DataFrame) -> pl.DataFrame:
    """The texts and, after them, their clauses (see `clauses`) that are not texts of their own."""
    pieces = clauses(data).join(data.select("text", "lang"), on=["text", "lang"], how="anti")
    return pl.concat([data.select("text", "lang"), pieces.unique(maintain_order=True)])


def load_texts(spec: str) -> pl.DataFrame:
    """(text, lang) rows of `spec`, normalized as the builder normalizes, empty texts dropped."""
    if spec.startswith("udhr:"):
        split, _, extra = spec.removeprefix("udhr:").partition("+")
        if split not in UDHR_SPLITS or extra not in ("", "variants"):
            raise ValueError(f"unknown text source {spec!r}: use udhr:<{'|'.join(UDHR_SPLITS)}>[+variants] or a Parquet file")
        corpus = load_udhr(UDHR_PATH, primary_only=extra != "variants")
        frame = in_declared_script(corpus.filter(pl.col("split").is_in(UDHR_SPLITS[split])).select("text", "lang"))
    elif spec.startswith("firefox:"):
        split, _, extra = spec.removeprefix("firefox:").partition("+")
        if extra not in ("", "pivot"):
            raise ValueError(f"unknown text source {spec!r}: use firefox:<{'|'.join(FIREFOX_SPLITS)}>[+pivot]")
        frame = load_firefox(split, with_pivot=extra == "pivot").select("text", "lang")
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
