"""Unicode and whitespace normalization of texts, and the folded form dedup and the pivot join compare: shared by
the build's steps (pipelines/steps/normalize.py applies it to both sides of a pair) and language ID's text sources."""

from __future__ import annotations

import polars as pl

SPACING = r"\s{2,}|[\s--\x20]"  # the runs of `\s+` that are not already one space: rewriting only those gives the
# same text as replacing every `\s+` by a space, and most real texts have none (tests/benchmarks/bench_pair_steps.py)


# The characters NFC may change or that may change under NFC next to another: combining marks (\p{M}: reordered or
# composed with the character before), the rest of those polars' normalizer decomposes or composes (singletons and
# excluded compositions: U+2126 OHM SIGN, CJK compatibility ideographs, Devanagari QA...; Hangul vowel and final
# jamo), and what the regex engine's Unicode has not assigned (\p{Cn}: its normalizer's is newer, Unicode 17). A
# text with none of them is its own NFC (Unicode's quick check, UAX #15); most non-ASCII text (accented Latin,
# Cyrillic, Han) has none. tests/pipelines/steps/test_pair_steps.py derives the list from polars' normalizer.
NFC_UNSAFE = (
    r"[\p{M}\p{Cn}\u0374\u037E\u0387\u0958-\u095F\u09DC\u09DD\u09DF\u0A33\u0A36\u0A59-\u0A5B\u0A5E\u0B5C\u0B5D\u0F43\u0F4D"
    r"\u0F52\u0F57\u0F5C\u0F69\u1161-\u1175\u11A8-\u11C2\u1F71\u1F73\u1F75\u1F77\u1F79\u1F7B\u1F7D\u1FBB\u1FBE\u1FC9"
    r"\u1FCB\u1FD3\u1FDB\u1FE3\u1FEB\u1FEE\u1FEF\u1FF9\u1FFB\u1FFD\u2000\u2001\u2126\u212A\u212B\u2329\u232A\u2ADC"
    r"\uF900-\uFA0D\uFA10\uFA12\uFA15-\uFA1E\uFA20\uFA22\uFA25\uFA26\uFA2A-\uFA6D\uFA70-\uFAD9\uFB1D\uFB1F\uFB2A-\uFB36"
    r"\uFB38-\uFB3C\uFB3E\uFB40\uFB41\uFB43\uFB44\uFB46-\uFB4E\U00016D67\U0001D15E-\U0001D164\U0001D1BB-\U0001D1C0"
    r"\U0002F800-\U0002FA1D]"
)
# What else `normalize_text` rewrites: the white space it turns into a space, the characters it removes, two spaces,
# a newline next to a space or newline, white space at either end. A text with none of these nor NFC_UNSAFE is left
# as it is (most real text), so only the others go through the five rewrites.
_REWRITTEN = (
    r"[\t\x0B\x0C\r\u00A0\u2000-\u200A\u202F\u205F\u3000]|[\p{Cc}\u200B\u2060-\u2064\uFEFF--\n]|  | \n|\n[\n ]|^\s|\s$"
    r"|[\x00-\x7F][\u200C\u200D]|[\u200C\u200D][\x00-\x7F]|^[\u200C\u200D]|[\u200C\u200D]$"
)
_CHANGING = f"{NFC_UNSAFE}|{_REWRITTEN}"


def nfc(texts: pl.Series) -> pl.Series:
    """`str.normalize("NFC")` of every string, done only on those with a character of NFC_UNSAFE: polars' normalize
    costs as much on a text it leaves alone as on any other."""
    return _only_where(texts, texts.str.contains(NFC_UNSAFE), lambda changing: changing.str.normalize("NFC"))


def _only_where(texts: pl.Series, mask: pl.Series, rewrite) -> pl.Series:
    """`texts` with rewrite(the texts where mask is true) in their places."""
    rows = mask.fill_null(False).arg_true()
    return texts.clone().scatter(rows, rewrite(texts.gather(rows))) if len(rows) else texts


def normalize_text(texts: pl.Series) -> pl.Series:
    """NFC; control characters, byte-order marks, word joiners and the zero-width joiners that join nothing removed
    (newlines kept); runs of spaces and of blank lines
    collapsed; ends stripped. (`"  +"`, not `" +"`: a single space needs no rewriting.) Only on the texts that have
    something to rewrite (`_REWRITTEN`, NFC_UNSAFE), which most do not (see tests/benchmarks/bench_pair_steps.py)."""
    return _only_where(texts, texts.str.contains(_CHANGING), _rewrite)


def normalize_if_changed(texts: pl.Series) -> pl.Series | None:
    """`normalize_text(texts)`, or None where it would change no text: the caller keeps its column as it is."""
    changing = texts.str.contains(_CHANGING)
    return _only_where(texts, changing, _rewrite) if changing.any() else None


def _rewrite(texts: pl.Series) -> pl.Series:
    return (
        texts.str.normalize("NFC")
        .str.replace_all(r"[\t\x0B\x0C\r\u00A0\u2000-\u200A\u202F\u205F\u3000]", " ")
        .str.replace_all(r"[\p{Cc}\u200B\u2060-\u2064\uFEFF--\n]", "")
        # zero-width (non-)joiners shape the letters of Arabic or Indic scripts and join emoji; next to ASCII or at
        # either end they join nothing and are left-overs of broken text
        .str.replace_all(r"([\x00-\x7F])[\u200C\u200D]+", "$1")
        .str.replace_all(r"[\u200C\u200D]+([\x00-\x7F])", "$1")
        .str.replace_all(r"^[\u200C\u200D]+|[\u200C\u200D]+$", "")
        .str.replace_all(r"  +", " ")
        .str.replace_all(r" ?\n[\n ]*", "\n")
        .str.strip_chars()
    )


def folded(texts: pl.Expr) -> pl.Expr:
    """Lower-cased, each run of white space one space: texts that differ only so are the same text to dedup."""
    return texts.str.to_lowercase().str.replace_all(SPACING, " ")

