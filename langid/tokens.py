"""Tokens that carry no language: URLs and e-mail addresses, placeholders, markup tags, numbers.

The pair checks compare them between the two sides of a pair (pipelines/steps/token_check.py); language
identification leaves them out (`without_tokens`): a model reads `%1$S`, `<b>` or `https://` as evidence of some
language, and software strings are full of them.
"""

from __future__ import annotations

import polars as pl

URL = r"(?:https?|ftp)://[\w\[][^\s<>\"'\u3000]*|www\.[^\s<>\"'\u3000]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
PLACEHOLDER = (
    r"\{\{\s*[\w.$-]+\s*\}\}"  # mustache {{x}}
    r"|\{\s*[$-]?[\w.-]+\s*(?:\}|,|->)"  # ICU {name} {0} {count, plural ...}, Fluent { $var } { -term } { $n -> ...
    r"|%(?:\d+\$)?[-+#0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z)?[sSdiufxXeEgGcp@]"  # printf %s %1$S %d %.2f
    r"|%\(\w+\)[sdrf]"  # Python %(name)s
    r"|\$[A-Z][A-Z0-9_]*\$?"  # $VAR, $BRAND$
    r"|&[A-Za-z][\w.-]*;"  # XML/DTD entities &brandShortName;
)
MARKUP = r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>"
# 1,000 1.000 1'000 1.5 1,5 and 1 000 (normalization made its no-break space a space; a space only before a group of
# three, so "X.509 1." stays two numbers): the digits alone; a decimal ".0" is dropped (2,0× for 2×)
NUMBER = r"\d+(?:[.,'’\u066B\u066C]\d+|\s\d{3}\b)*"

LANGUAGE_NEUTRAL = "|".join((URL, PLACEHOLDER, MARKUP, NUMBER))
# What every match of LANGUAGE_NEUTRAL contains: the texts without any (most UI strings) are left as they are, which
# is far cheaper than running the whole pattern over them
_TRIGGER = r"\d|[%{$&<@]|://|www\."


def without_tokens(texts: pl.Series) -> pl.Series:
    """The texts with their URLs, placeholders, markup and numbers taken out, white space runs made one space."""
    rows = texts.str.contains(_TRIGGER).fill_null(False).arg_true()
    if not len(rows):
        return texts
    rewritten = texts.gather(rows).str.replace_all(LANGUAGE_NEUTRAL, " ").str.replace_all(r"\s+", " ").str.strip_chars()
    return texts.clone().scatter(rows, rewritten)
