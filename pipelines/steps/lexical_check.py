"""`lexical_check`: does the non-English side say what the English side says, word for word, as far as a small
bilingual lexicon can tell? Catches pairs whose sides are each fine but do not belong together (off-by-one
misalignment) and pairs with a side cut short (truncation), which the other pair checks mostly miss on short text.

The lexicon, its files and how it is learnt (train splits only): pipelines/lexicon.py.

A pair X <-> eng_Latn (either order) is scored by its coverage: of the tokens on both sides that the lexicon knows
(an X token with links; an English token linked to some X token; a token on both sides as it is), the share whose
partner is on the other side. Reasons:

- `lexical_mismatch`: coverage below `max_coverage` with at least the language's `min_known` known tokens
  (detail: the coverage, the known tokens, the unmatched ones); misaligned pairs share almost no words, clean
  ones rarely none;
- `cut_word`: a side ends with a word that is not in the language's words but starts one of them (a word cut in
  two), and is shorter than expected against the other side (the length table, pipelines/length_table.py) by CUT_SHORTER.

A pair of other languages, or of a language without a lexicon, passes. Measured on the dirty corpus:
docs/benchmarks.md.

Regenerate the lexicon and thresholds: `python -m pipelines.lexicon`.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from pipelines.batch import TEXTS, BatchFilter, RemovedRows, verdict_frame
from pipelines.lexicon import (CUT_SHORTER, LEXICON, MAX_COVERAGE, PIVOT, UNSEGMENTED, only_prefix, english_pairs, keyed, last_word,
                               load_lexicon, score, script_of)  # fmt: skip
from pipelines.steps.length_ratio import LengthRatioCheck


class LexicalCheck(BatchFilter):
    """Drops X <-> eng_Latn pairs the lexicon shows not to be translations of each other (`lexical_mismatch`) or
    with a side cut short inside a word (`cut_word`); see the module's docstring."""

    name = "lexical_check"

    def __init__(self, removed: RemovedRows, max_coverage: float = MAX_COVERAGE, cut_words: bool = True,
                 folder: str | Path | None = None, length_table: str | Path | None = None):  # fmt: skip
        super().__init__(removed)
        self.folder = Path(folder) if folder else LEXICON
        self.max_coverage = max_coverage
        self.cut_words = cut_words
        self.length = LengthRatioCheck(removed, table=length_table)  # only for the expected length ratio
        self._loaded = None

    def load(self) -> tuple[pl.DataFrame, dict[str, int], dict[str, list[str]]]:
        """The links, each language's least known tokens and its sorted words, read once per process."""
        if self._loaded is None:
            links, min_known, words = load_lexicon(self.folder)
            words_by_lang = {lang: sorted(group["word"].to_list()) for (lang,), group in words.group_by("lang")}
            self._loaded = (keyed(links), min_known, words_by_lang)
        return self._loaded

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        links, min_known, words = self.load()
        pairs = english_pairs(pl.from_arrow(batch.select(["src_lang", "tgt_lang", *TEXTS])), set(min_known))
        found: dict[int, tuple[str, str]] = {}
        if pairs.height:
            scored = score(pairs, links)
            least = pl.col("lang").replace_strict(min_known, return_dtype=pl.Int64)
            mismatched = scored.filter((pl.col("known") >= least) & (pl.col("coverage") < self.max_coverage))
            for row, coverage, known, unmatched in mismatched.select("row", "coverage", "known", "unmatched").iter_rows():
                found[row] = ("lexical_mismatch", f"{coverage:.0%} of {known} tokens the lexicon knows are matched on the other side "
                                                  f"(< {self.max_coverage:.0%}); unmatched: {', '.join(unmatched[:6])}")  # fmt: skip
            if self.cut_words:
                shorter = self.length.deviations(batch).select(rel=pl.col("ratio") / pl.col("expected"))["rel"]
                for row, side, word in self.cut(scored, words, shorter):
                    found.setdefault(row, ("cut_word", f"{side} ends inside a word: {word!r} is not a word of the lexicon but starts some, "
                                                       f"and {side} is shorter than expected"))  # fmt: skip
        rows = sorted(found)
        return verdict_frame(batch.num_rows, pl.Series(rows, dtype=pl.UInt32), pl.Series([found[r][0] for r in rows], dtype=pl.String),
                        pl.Series([found[r][1] for r in rows], dtype=pl.String))  # fmt: skip

    @staticmethod
    def cut(scored: pl.DataFrame, words: dict[str, list[str]], relative_ratio: pl.Series):
        """(row, side, last word) of each pair one side of which ends with a word that is not in the language's
        words but starts one of them, and is shorter than expected against the other (by CUT_SHORTER at least:
        a cut removes 40-70% of a text, a rare word at the end of a whole text leaves the ratio as it is)."""
        rel = relative_ratio.gather(scored["row"])  # src over tgt, over what is expected
        x_short = pl.when(pl.col("x_side") == "src").then(rel).otherwise(1 / rel)
        candidates = scored.with_columns(x_short=x_short).filter((pl.col("x_short") < CUT_SHORTER) | (1 / pl.col("x_short") < CUT_SHORTER))
        candidates = candidates.select("row", "lang", "x_side", "x_short", x_last=last_word(pl.col("x_text")), e_last=last_word(pl.col("e_text")),
                                       x_tokens=pl.col("x_tokens").list.len(), e_tokens=pl.col("e_tokens").list.len())  # fmt: skip
        english = words.get(PIVOT, [])
        for row, lang, x_side, x_short, x_last, e_last, x_tokens, e_tokens in candidates.iter_rows():
            e_side = "tgt" if x_side == "src" else "src"
            # the other side must have two tokens or more: one word against one says little about length
            if x_short < CUT_SHORTER and e_tokens >= 2 and x_last and script_of(lang) not in UNSEGMENTED and only_prefix(x_last, words.get(lang, [])):
                yield row, x_side, x_last
            elif 1 / x_short < CUT_SHORTER and x_tokens >= 2 and e_last and only_prefix(e_last, english):
                yield row, e_side, e_last
