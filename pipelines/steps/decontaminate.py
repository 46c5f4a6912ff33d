"""Keep held-out text out of the train split: the UDHR articles 25-30 are validation and test in every language."""

from __future__ import annotations

import functools

import ahocorasick
import polars as pl
import pyarrow as pa

from pipelines.corpus import UDHR_PATH, load_udhr
from pipelines.steps.base import BatchFilter, RemovedRows
from pipelines.steps.normalize import normalize_text

# Held-out paragraphs at least this long are also searched for inside train texts (a train text quoting one).
MIN_QUOTE_CHARS = 32


@functools.cache
def heldout_index(corpus_path=UDHR_PATH) -> tuple[pl.Series, ahocorasick.Automaton]:
    """The normalized held-out paragraphs of every language, for exact matches, and an automaton over the long
    ones for containment (built once: polars' contains_any would rebuild it for every batch)."""
    corpus = load_udhr(corpus_path)
    texts = corpus.filter(pl.col("split") != "train").select(normalize_text(pl.col("text")))["text"].unique().sort()
    automaton = ahocorasick.Automaton()
    for text in texts:
        if len(text) >= MIN_QUOTE_CHARS:
            automaton.add_word(text, text)
    automaton.make_automaton()
    return texts, automaton


def _quotes(automaton: ahocorasick.Automaton, texts: pl.Series) -> pl.Series:
    return pl.Series([next(automaton.iter(t), None) is not None for t in texts], dtype=pl.Boolean)


class HeldOutFilter(BatchFilter):
    name = "heldout_filter"

    def __init__(self, removed: RemovedRows, corpus_path=UDHR_PATH):
        super().__init__(removed)
        self.corpus_path = corpus_path

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        exact, automaton = heldout_index(self.corpus_path)
        frame = pl.from_arrow(batch)
        train = frame["split"] == "train"
        equal = frame["src_text"].is_in(exact.implode()) | frame["tgt_text"].is_in(exact.implode())
        quotes = _quotes(automaton, frame["src_text"]) | _quotes(automaton, frame["tgt_text"])
        return pl.DataFrame({"train": train, "equal": equal, "quotes": quotes}).select(
            reason=pl.when(pl.col("train") & (pl.col("equal") | pl.col("quotes"))).then(pl.lit("heldout_overlap")),
            detail=pl.when(pl.col("train") & pl.col("equal"))
            .then(pl.lit("a side equals a held-out paragraph (articles 25-30)"))
            .when(pl.col("train") & pl.col("quotes"))
            .then(pl.lit("a side quotes a held-out paragraph (articles 25-30)")),
        )
