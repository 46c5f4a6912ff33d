"""Unicode script of text: the second language check, and the only one for languages the model lacks.

Script membership comes from the Unicode `Script` property through regular expressions (`\\p{sc=Latn}`), which
take ISO 15924 codes: per script, a lookup table over the code points filled in as texts bring them, for batches;
the `regex` module for single strings.
"""

from __future__ import annotations

import collections
import functools
import re

import numpy as np
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


@functools.cache
def _letter_classes(script: str) -> tuple[np.ndarray, str]:
    """Per code point: 0 not a letter, 1 a letter of another script, 2 a letter of `script` (FLORES composites
    included), -1 not asked yet; and the pattern for `script`. Filled in for the code points texts bring (a batch has
    a few hundred distinct ones), not for all 1.1M code points in every process and for every script. One table
    answers both questions with one lookup per code point, where two tables would take two."""
    parts = _COMPOSITE.get(script, (script,))
    if not all(p in known_scripts() for p in parts):
        raise ValueError(f"unknown script code {script!r} (expected an ISO 15924 code such as Latn, Cyrl, Hans)")
    pattern = "[\\p{L}&&[" + "".join(rf"\p{{sc={p}}}" for p in parts) + "]]"
    return np.full(0x110000, -1, dtype=np.int8), pattern


def _classes(code_points: np.ndarray, script: str) -> np.ndarray:
    """For each code point: 0 not a letter, 1 a letter of another script, 2 a letter of `script`."""
    table, pattern = _letter_classes(script)
    known = table[code_points]
    if (known < 0).any():
        new = np.unique(code_points[known < 0])
        chars = pl.Series([chr(c) if not 0xD800 <= c <= 0xDFFF else "" for c in new.tolist()], dtype=pl.String)
        letter = chars.str.contains(r"\p{L}").fill_null(False).to_numpy()
        in_script = chars.str.contains(pattern).fill_null(False).to_numpy()
        table[new] = letter.astype(np.int8) + (letter & in_script)
        known = table[code_points]
    return known


def script_fraction(texts, script: str) -> np.ndarray:
    """For each text, the share of its letters written in `script` (0.0 for a text without letters).

    One pass over the code points of the whole batch against a per-script lookup table, not a regex count per text:
    this runs on both sides of every pair."""
    in_script, letters = _letter_sums(texts, script, wide_weight=1)
    return np.divide(in_script, letters, out=np.zeros(len(letters)), where=letters > 0)


# Han, kana and Hangul letters carry about as much as three Latin letters (a word is one to three of them), so a
# Chinese, Japanese or Korean string that names a product in Latin letters ("Firefox 계정") is still mostly in its
# own script by weight.
WIDE = np.zeros(0x110000, dtype=bool)
for _lo, _hi in ((0x1100, 0x11FF), (0x2E80, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xF900, 0xFAFF), (0x20000, 0x3FFFF)):
    WIDE[_lo : _hi + 1] = True


def weighted_script_fraction(texts, script: str) -> np.ndarray:
    """For each text, the weighted share of its letters in `script`, Han, kana and Hangul counted three (see WIDE);
    NaN for a text without letters, whose script says nothing ("×2", "1.25×")."""
    in_script, letters = _letter_sums(texts, script, wide_weight=3)
    return np.divide(in_script, letters, out=np.full(len(letters), np.nan), where=letters > 0)


def _letter_sums(texts, script: str, wide_weight: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the (weighted) count of letters in `script` and of all letters."""
    texts = list(texts)
    if not texts:
        return np.zeros(0), np.zeros(0)
    code_points = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
    starts = np.concatenate(([0], ends[:-1]))

    def per_text(letter: np.ndarray) -> np.ndarray:
        total = np.concatenate(([0], np.cumsum(letter, dtype=np.int64)))
        return total[ends] - total[starts]

    classes = _classes(code_points, script)
    weight = np.where(WIDE[code_points], wide_weight, 1) if wide_weight != 1 else 1
    return per_text((classes == 2) * weight), per_text((classes > 0) * weight)


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


def han_variants(texts: list[str]) -> list[str | None]:
    """For each text: "Hans" (simplified), "Hant" (traditional), or None where its characters do not tell
    (common to both, mixed, or no Han at all). hanzidentifier does the character lookup."""
    import hanzidentifier

    variant = {hanzidentifier.SIMPLIFIED: "Hans", hanzidentifier.TRADITIONAL: "Hant"}
    return [variant.get(hanzidentifier.identify(text)) for text in texts]


_HAN = re.compile(r"[\u2E80-\u9FFF\uF900-\uFAFF\U00020000-\U0003FFFF]")


def han_codes(codes: list[list[str]], texts: list[str], hani: frozenset[str] | None = None) -> list[list[str]]:
    """`codes` with each `xxx_Hani` made `xxx_Hans` or `xxx_Hant` by its text (in place, and returned). A text without
    Han characters has no variant to tell: its Han codes are given the default at once. `hani`: the model's codes
    that end in `_Hani`, where the caller knows them."""
    if hani is None:
        hani = frozenset(c for row in codes for c in row if c.endswith("_Hani"))
    if not hani:
        return codes
    han = [i for i, row in enumerate(codes) if not hani.isdisjoint(row)]
    if han:
        variants = dict(zip(told := [i for i in han if _HAN.search(texts[i])], han_variants([texts[i] for i in told])))
        for i in han:
            codes[i] = [_han_code(c, variants.get(i)) for c in codes[i]]
    return codes


def _han_code(code: str, variant: str | None) -> str:
    if not code.endswith("_Hani"):
        return code
    language = code[:3]
    return f"{language}_{variant or ('Hant' if language == 'yue' else 'Hans')}"
