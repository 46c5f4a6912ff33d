"""`encoding_check`: broken encoding on either side: U+FFFD replacement characters, and mojibake that ftfy can
undo (UTF-8 read as cp1252, latin-1, MacRoman, ...)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.batch import SIDES, TEXTS, BatchFilter, RemovedRows, verdict_frame


def badness_pattern() -> str:
    """ftfy's badness heuristic (`ftfy.badness.BADNESS_RE`, a Python regex in verbose mode) as a pattern for polars'
    regex engine, so that a whole column is screened at once: the white space and comments of the verbose pattern
    taken out, `[`, `&` and `~` escaped inside character classes (set operators there), and `\\w` widened to every
    number (Python's `\\w` takes ² and ³, the engine's does not). tests/pipelines/steps/test_pair_checks.py checks
    that it flags the same texts as `ftfy.badness.is_bad`."""
    from ftfy.badness import BADNESS_RE

    out, in_class, escaped, comment, first = [], False, False, False, False
    for ch in BADNESS_RE.pattern:
        if comment:
            comment = ch != "\n"
        elif escaped:
            out.append(ch)
            if ch == "w" and not in_class:
                out[-2:] = ["[\\w\\p{N}]"]
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif in_class:
            in_class = first or ch != "]"  # a "]" first in a class is a literal
            out.append("\\" + ch if ch in "[&~" else ch)
        elif ch == "[":
            in_class, first = True, True
            out.append(ch)
            continue
        elif ch == "#":
            comment = True
        elif ch not in " \t\n\r\v\f":  # what Python's verbose mode leaves out
            out.append(ch)
        first = False
    return "".join(out)


class EncodingCheck(BatchFilter):
    """Drops pairs with a side that has U+FFFD (`replacement_char`: bytes were lost on decoding) or is mojibake
    (`mojibake`: `ftfy.fix_encoding` finds the text it was, shown in the detail). ftfy's own first test, its badness
    heuristic, is run on the whole column by polars (`badness_pattern`); `fix_encoding` leaves every other text as it
    is, so it runs only on those it flags."""

    name = "encoding_check"

    def __init__(self, removed: RemovedRows):
        super().__init__(removed)
        self.badness = badness_pattern()

    def suspicious(self, texts: pl.Series) -> pl.Series:
        """The row numbers of the texts ftfy's badness heuristic flags."""
        try:
            return texts.str.contains(self.badness).arg_true()
        except pl.exceptions.ComputeError:  # a later ftfy's pattern the translation does not handle: its own regex
            from ftfy.badness import is_bad

            return pl.Series([i for i, text in enumerate(texts.to_list()) if is_bad(text)], dtype=pl.UInt32)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        import ftfy

        frame = pl.from_arrow(batch.select(list(TEXTS)))
        found: dict[int, tuple[str, str]] = {}  # row: (reason, detail), the source side's first
        for side, column in zip(SIDES, TEXTS):
            texts = frame[column]
            replaced = texts.str.count_matches("\ufffd")
            for row, count in zip((replaced > 0).arg_true().to_list(), replaced.filter(replaced > 0).to_list()):
                found.setdefault(row, ("replacement_char", f"{side} has {count} U+FFFD"))
            rows = self.suspicious(texts)
            for row, text in zip(rows.to_list(), texts.gather(rows).to_list()):
                if row not in found and (fixed := ftfy.fix_encoding(text)) != text:
                    found[row] = ("mojibake", f"{side} looks like mojibake of {_clip(fixed)!r}")
        rows = sorted(found)
        return verdict_frame(frame.height, pl.Series(rows, dtype=pl.UInt32), pl.Series([found[r][0] for r in rows], dtype=pl.String),
                        pl.Series([found[r][1] for r in rows], dtype=pl.String))  # fmt: skip


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
