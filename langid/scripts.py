"""Unicode script of text: the second language check, and the only one for languages the model lacks.

Script membership comes from the Unicode `Script` property through regular expressions (`\\p{sc=Latn}`):
polars (Rust regex) for batches, the `regex` module for single strings. Both take ISO 15924 codes.
"""

from __future__ import annotations

import collections
import functools

import polars as pl
import regex

# FLORES-style script codes that are unions or subsets of Unicode scripts.
_COMPOSITE = {
    "Hans": ("Hani",),
    "Hant": ("Hani",),
    "Jpan": ("Hani", "Hira", "Kana"),
    "Kore": ("Hang", "Hani"),
    "Hang": ("Hang", "Hani"),
}

# ISO 15924 codes of the Unicode scripts (Unicode 15); ones the regex engines here do not know are skipped.
_ISO15924 = """
Adlm Aghb Ahom Arab Armi Armn Avst Bali Bamu Bass Batk Beng Bhks Bopo Brah Brai Bugi Buhd Cakm Cans Cari Cham Cher
Chrs Copt Cpmn Cprt Cyrl Deva Diak Dogr Dsrt Dupl Egyp Elba Elym Ethi Geor Glag Gong Gonm Goth Gran Grek Gujr Guru
Hang Hani Hano Hatr Hebr Hira Hluw Hmng Hmnp Hung Ital Java Kali Kana Kawi Khar Khmr Khoj Kits Knda Kthi Lana Laoo
Latn Lepc Limb Lina Linb Lisu Lyci Lydi Mahj Maka Mand Mani Marc Medf Mend Merc Mero Mlym Modi Mong Mroo Mtei Mult
Mymr Nagm Nand Narb Nbat Newa Nkoo Nshu Ogam Olck Orkh Orya Osge Osma Ougr Palm Pauc Perm Phag Phli Phlp Phnx Plrd
Prti Rjng Rohg Runr Samr Sarb Saur Sgnw Shaw Shrd Sidd Sind Sinh Sogd Sogo Sora Soyo Sund Sylo Syrc Tagb Takr Tale
Talu Taml Tang Tavt Telu Tfng Tglg Thaa Thai Tibt Tirh Tnsa Toto Ugar Vaii Vith Wara Wcho Xpeo Xsux Yezi Yiii Zanb
""".split()


def _compiles(code: str) -> bool:
    try:
        regex.compile(rf"\p{{sc={code}}}")
        pl.Series([""]).str.count_matches(rf"\p{{sc={code}}}")
        return True
    except Exception:
        return False


@functools.cache
def known_scripts() -> tuple[str, ...]:
    return tuple(code for code in _ISO15924 if _compiles(code))


def _letter_class(script: str) -> str:
    """Regex class of the letters of `script` (a FLORES script code, composites included)."""
    parts = _COMPOSITE.get(script, (script,))
    if not all(p in known_scripts() for p in parts):
        raise ValueError(f"unknown script code {script!r} (expected an ISO 15924 code such as Latn, Cyrl, Hans)")
    return "[\\p{L}&&[" + "".join(rf"\p{{sc={p}}}" for p in parts) + "]]"


def script_fraction(texts: pl.Series, script: str) -> pl.Series:
    """For each text, the share of its letters written in `script` (0.0 for a text without letters)."""
    in_script = texts.str.count_matches(_letter_class(script))
    letters = texts.str.count_matches(r"\p{L}")
    return (in_script / letters).fill_nan(0.0).fill_null(0.0).rename("script_fraction")


@functools.lru_cache(maxsize=65536)
def _script_of_char(char: str) -> str | None:
    for code in known_scripts():
        if regex.match(rf"\p{{sc={code}}}", char):
            return code
    return None


def letter_scripts(text: str) -> collections.Counter:
    """How many letters of `text` each Unicode script (ISO 15924) has."""
    return collections.Counter(_script_of_char(c) for c in text if c.isalpha())


def dominant_script(text: str) -> str | None:
    """The ISO 15924 code of the script most letters of `text` are in, with Japanese and Korean mixes named as
    FLORES-200 names them (Jpan, Hang); None for a text without letters."""
    counts = letter_scripts(text)
    if not counts:
        return None
    if counts["Hira"] + counts["Kana"] > 0.05 * sum(counts.values()):
        return "Jpan"
    if counts["Hang"] > 0.3 * sum(counts.values()):
        return "Hang"
    return counts.most_common(1)[0][0]
