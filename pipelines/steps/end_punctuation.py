"""`end_punctuation`: one side ends in a question mark, an exclamation mark or an ellipsis and the other does not:
the cheap signal that best separates off-by-one misaligned pairs from clean ones
(tests/benchmarks/bench_pair_checks.py)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.batch import SIDES, TEXTS, BatchFilter, RemovedRows

END_PUNCTUATION = {
    "question": r"[?？؟՞⸮፧]",  # Armenian "՞" is a question mark; Greek's is below
    "exclamation": r"[!！՜]",
    "ellipsis": r"…|\.\.\.|⋯",
    "colon": r"[:：]",
}
_CLOSING = r"[\s\"'»«”“’)\]}」』》]*$"  # quotes and brackets after the mark
# The Greek question mark U+037E is ";" once normalized (NFC): a question on a Greek-script side only.
GREEK_QUESTION = ";"


class EndPunctuationCheck(BatchFilter):
    """Drops pairs where one side ends with a mark of one of `kinds` (question, exclamation, ellipsis, colon) and the
    other does not (reason `end_punctuation`): a translation keeps a question a question. Off-by-one misaligned
    pairs break this far more often than clean ones; a colon drops more clean pairs for fewer misaligned ones, hence
    not on by default, and a capitalized first letter on one side only separates them worse and is not checked
    (tests/benchmarks/bench_pair_checks.py --split calibration)."""

    name = "end_punctuation"

    def __init__(self, removed: RemovedRows, kinds=("question", "exclamation", "ellipsis")):
        super().__init__(removed)
        unknown = set(kinds) - set(END_PUNCTUATION)
        if unknown:
            raise ValueError(f"unknown end punctuation {sorted(unknown)} (expected some of {', '.join(END_PUNCTUATION)})")
        self.kinds = [k for k in END_PUNCTUATION if k in kinds]

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        frame = pl.from_arrow(batch.select(["src_lang", "tgt_lang", *TEXTS]))
        reason, detail = pl.lit(None, pl.String), pl.lit(None, pl.String)
        for kind in reversed(self.kinds):
            src, tgt = (self._ends_with(kind, pl.col(f"{side}_text"), pl.col(f"{side}_lang")) for side in SIDES)
            text = pl.format("{} ends with {} and {} does not", pl.when(src).then(pl.lit("src")).otherwise(pl.lit("tgt")), pl.lit(kind),
                             pl.when(src).then(pl.lit("tgt")).otherwise(pl.lit("src")))  # fmt: skip
            reason = pl.when(src != tgt).then(pl.lit("end_punctuation")).otherwise(reason)
            detail = pl.when(src != tgt).then(text).otherwise(detail)
        return frame.select(reason=reason, detail=detail)

    @staticmethod
    def _ends_with(kind: str, texts: pl.Expr, langs: pl.Expr) -> pl.Expr:
        ends = texts.str.contains(f"(?:{END_PUNCTUATION[kind]}){_CLOSING}")
        if kind == "ellipsis":  # some translations move it to the front ("…ਨੂੰ ਇੰਪੋਰਟ" for "Import…")
            ends = ends | texts.str.contains(f"^(?:{END_PUNCTUATION[kind]})")
        if kind == "question":
            ends = ends | (langs.str.ends_with("_Grek") & texts.str.contains(f"{GREEK_QUESTION}{_CLOSING}"))
        return ends
