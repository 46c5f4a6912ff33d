"""The embedded corpus as X <-> pivot pairs, aligned by paragraph, one batch per language pair."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
import pyarrow as pa

from pipelines.corpus import UDHR_PATH, UDHR_SOURCE, load_udhr
from schemas.language_codes import PIVOTS
from schemas.records import PAIR_SCHEMA, stable_id


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
