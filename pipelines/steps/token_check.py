"""`token_check`: what a translation carries over unchanged differs between the sides, compared as multisets: URLs
and e-mail addresses, placeholders (printf, ICU, Fluent, mustache, `$VAR`, entities), markup tags, numbers (digits
of every script read as ASCII digits)."""

from __future__ import annotations

import sys
import unicodedata

import polars as pl
import pyarrow as pa
import regex

from langid.tokens import MARKUP, NUMBER, PLACEHOLDER, URL
from pipelines.batch import TEXTS, BatchFilter, RemovedRows, verdict_frame

# A number written at the start of a text as a list or clause marker ("2. ", "29.3.- ", "(1) "), which one side of
# a clean pair may have and the other not; a mismatch is forgiven where it goes away without them on both sides.
LIST_MARKER = r"^\(?\d+(?:\.\d+)*[.)]\S*\s"
# Numbers up to this are often written as words in a translation ("24 hours" / "יממה", "up to 5" / "tot vijf"): numbers
# on one side only, all this small, with nothing on the other side that the first lacks, are not a mismatch.
SPELLED_OUT_UP_TO = 100
TOKEN_KINDS = ("urls", "placeholders", "markup", "numbers")
_TRIGGER = r"\p{Nd}|[%{$&<@]|://|www\."


def _unicode_digits() -> tuple[list[str], list[str]]:
    """Every non-ASCII decimal digit (Arabic-Indic, Devanagari, Bengali, Thai, full-width, ...) and its ASCII digit."""
    every = "".join(map(chr, range(0x80, 0xD800))) + "".join(map(chr, range(0xE000, sys.maxunicode + 1)))
    # one pass of the regex engine, then Python's own category of the few it finds (the two Unicode versions differ)
    digits = [c for c in regex.findall(r"\p{Nd}", every) if unicodedata.category(c) == "Nd"]
    return digits, [str(unicodedata.digit(c)) for c in digits]


# Once per process, at import: the local executor's workers fork from a process that imported this module
UNICODE_DIGITS = _unicode_digits()


_NORMALIZE = {
    "urls": pl.element().str.to_lowercase().str.replace(r"[.,;:!?)\]}»」』》。、]+$", "").str.replace(r"^(?:https?|ftp)://|^www\.", "").str.replace(r"[/?#].*$", ""),
    "placeholders": pl.element().str.replace_all(r"^\{+\s*|\s*(?:\}+|,|->)$", ""),
    "markup": pl.element().str.extract(r"^</?[A-Za-z][\w:-]*", 0).str.to_lowercase(),
    "numbers": pl.element().str.replace(r"[.,]0$", "").str.replace_all(r"\D", ""),
}  # fmt: skip
_PATTERN = {"urls": URL, "placeholders": PLACEHOLDER, "markup": MARKUP, "numbers": NUMBER}
_PLURAL = r"->|,\s*(?:plural|select)"  # a Fluent select expression, an ICU plural or select


def _extract(texts: pl.Series, kind: str) -> pl.Series:
    return texts.str.extract_all(_PATTERN[kind]).list.eval(_NORMALIZE[kind]).list.sort()


class TokenCheck(BatchFilter):
    """Drops pairs whose sides differ in what a translation carries over as it is, each kind compared as a
    multiset (a reason per kind: `urls`, `placeholders`, `markup`, `numbers`; the detail lists both sides'):

    - URLs by host (a localized path, `/de/` for `/en-US/`, is not a difference), e-mail addresses whole;
    - placeholders by name (`{ $n }` and `{$n}` are one), as sets where a side has a plural or select expression
      (its variants repeat them as many times as the language has plural forms);
    - markup tags by name and whether they close;
    - numbers by their digits, after the rest is taken out, digits of every script read as ASCII, group and decimal
      separators ignored (1,000 = 1.000 = 1 000). Forgiven: a list marker on one side only (LIST_MARKER), and
      numbers up to SPELLED_OUT_UP_TO on one side only (a changed number is on both sides: still a mismatch).

    Only the rows where a side has a digit or a character that starts one of them are looked at."""

    name = "token_check"

    def __init__(self, removed: RemovedRows, kinds=TOKEN_KINDS):
        super().__init__(removed)
        unknown = set(kinds) - set(TOKEN_KINDS)
        if unknown:
            raise ValueError(f"unknown token kinds {sorted(unknown)} (expected some of {', '.join(TOKEN_KINDS)})")
        self.kinds = [k for k in TOKEN_KINDS if k in kinds]  # urls and placeholders come out before the numbers
        self.digits = UNICODE_DIGITS

    def _ascii_digits(self, texts: pl.Series) -> pl.Series:
        other = texts.str.contains(r"[\p{Nd}--0-9]")
        if not other.any():
            return texts
        rows = other.arg_true()
        return texts.scatter(rows, texts.gather(rows).str.replace_many(*self.digits))

    def tokens(self, texts: pl.Series) -> dict[str, pl.Series]:
        """Each kind's normalized tokens of each text, sorted: lists of strings."""
        found, rest = {}, texts
        for kind in ("urls", "placeholders", "markup"):
            if kind in self.kinds:
                found[kind] = _extract(rest, kind)
            if "numbers" in self.kinds:  # their digits are not numbers of the text
                rest = rest.str.replace_all(_PATTERN[kind], " ")
        if "numbers" in self.kinds:
            rest = self._ascii_digits(rest)
            found["numbers"] = _extract(rest, "numbers")
            found["numbers_unmarked"] = _extract(rest.str.replace(LIST_MARKER, ""), "numbers")
        return found

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        frame = pl.from_arrow(batch.select(list(TEXTS)))
        rows = (frame["src_text"].str.contains(_TRIGGER) | frame["tgt_text"].str.contains(_TRIGGER)).arg_true()
        src_texts, tgt_texts = frame["src_text"].gather(rows), frame["tgt_text"].gather(rows)
        src, tgt = self.tokens(src_texts), self.tokens(tgt_texts)
        plural = src_texts.str.contains(_PLURAL) | tgt_texts.str.contains(_PLURAL)
        columns = {}
        for kind in self.kinds:
            columns[f"src_{kind}"], columns[f"tgt_{kind}"] = src[kind], tgt[kind]
        if "numbers" in self.kinds:
            columns.update(src_unmarked=src["numbers_unmarked"], tgt_unmarked=tgt["numbers_unmarked"])
        found = pl.DataFrame({**columns, "plural": plural})
        reason, detail = pl.lit(None, pl.String), pl.lit(None, pl.String)
        for kind in reversed(self.kinds):  # the first kind that differs names the reason
            a, b = pl.col(f"src_{kind}"), pl.col(f"tgt_{kind}")
            differs = a != b
            if kind == "placeholders":
                differs = pl.when(pl.col("plural")).then(a.list.unique().list.sort() != b.list.unique().list.sort()).otherwise(differs)
            if kind == "numbers":
                src_only, tgt_only = a.list.set_difference(b), b.list.set_difference(a)
                spelled = ((src_only.list.len() == 0) & (_largest(tgt_only) <= SPELLED_OUT_UP_TO)) | (
                    (tgt_only.list.len() == 0) & (_largest(src_only) <= SPELLED_OUT_UP_TO)
                )
                differs = differs & (pl.col("src_unmarked") != pl.col("tgt_unmarked")) & ~spelled.fill_null(False)
            text = pl.format("{}: src [{}] vs tgt [{}]", pl.lit(kind), a.list.join(", "), b.list.join(", "))
            reason = pl.when(differs).then(pl.lit(kind)).otherwise(reason)
            detail = pl.when(differs).then(text).otherwise(detail)
        found = found.select(reason=reason, detail=detail).with_columns(row=pl.Series(rows))
        dropped = found.filter(pl.col("reason").is_not_null())
        return verdict_frame(frame.height, dropped["row"], dropped["reason"], dropped["detail"])


def _largest(numbers: pl.Expr) -> pl.Expr:
    return numbers.cast(pl.List(pl.Float64), strict=False).list.max()
