"""Which languages a model knows, and whether what it predicted names the language a text is labelled with.

A model that has no label for the exact language but one for its macrolanguage names it through that: lid.176
says `ar` for any Arabic, `fa` for Dari and Persian, `zh` for Chinese. Where the model has the exact label, only
that label names the language.
"""

from __future__ import annotations

import functools

import langcodes
import numpy as np


@functools.lru_cache(maxsize=8192)
def macro_language(flores_code: str) -> str:
    """The macrolanguage-level BCP-47 language of a FLORES code: arb_Arab -> ar, prs_Arab -> fa, nob_Latn -> nb."""
    language = flores_code.split("_")[0]
    try:
        return langcodes.standardize_tag(language, macro=True).split("-")[0]
    except ValueError:
        return language


def script_family(flores_code: str) -> str:
    """The script of a code as far as a model's labels tell it: a Han label (`zho_Hani`) covers both varieties."""
    script = flores_code.split("_")[1] if "_" in flores_code else ""
    return "Hani" if script in ("Hans", "Hant") else script


class LabelMatcher:
    """The FLORES codes of one model's labels, and what they name. A label names a language of its macrolanguage
    only in its own script: a model that knows Belarusian in Cyrillic knows nothing of Belarusian in Latin letters
    (it reads it as Polish), so it neither covers nor confirms it."""

    def __init__(self, model):
        self.exact = {code for code in model.codes.values() if "_" in code}
        self.by_macro = {(macro_language(code), script_family(code)) for code in self.exact}

    def knows_exactly(self, lang: str) -> bool:
        return lang in self.exact

    def covers(self, lang: str) -> bool:
        return lang in self.exact or (macro_language(lang), script_family(lang)) in self.by_macro

    def matches(self, predicted: np.ndarray, lang: str) -> np.ndarray:
        """Which predicted codes name `lang`: exactly where the model has its label, else by macrolanguage."""
        predicted = np.asarray(predicted, dtype=object)
        if self.knows_exactly(lang):
            return predicted == lang
        unique, inverse = np.unique(predicted, return_inverse=True)
        expected = (macro_language(lang), script_family(lang))
        return np.array([(macro_language(code), script_family(code)) == expected for code in unique], dtype=bool)[inverse]
