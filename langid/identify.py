"""Check that texts are in the language they are labelled with: the one entry point the pipeline uses.

Two checks, both on whole batches:
- the model: its top-1 label, mapped to a FLORES-200 code, must name the expected language (or the
  macrolanguage that contains it: lid.176 says `ar` for any Arabic, `fa` for Dari and Persian) with a score of
  at least the threshold;
- the script: at least `min_script_fraction` of the letters must be in the expected script.
A language the model has no label for is checked by script alone; `covers` tells which is which.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import langcodes
import numpy as np
import polars as pl

from langid.models import FastTextModel
from langid.scripts import script_fraction
from schemas.language_codes import from_lid176_label, to_flores


@functools.lru_cache(maxsize=8192)
def _macro_language(flores_code: str) -> str:
    """The macrolanguage-level BCP-47 language of a FLORES code: arb_Arab -> ar, prs_Arab -> fa, nob_Latn -> nb."""
    language = flores_code.split("_")[0]
    return langcodes.standardize_tag(language, macro=True).split("-")[0]


def label_to_flores(label: str) -> str:
    """FLORES code for a model label: lid.176 labels are ISO 639-1 or Wikipedia codes, GlotLID/OpenLID/NLLB labels
    are already `xxx_Scrp`."""
    return to_flores(label) if "_" in label else from_lid176_label(label)


@dataclass
class SideVerdict:
    """Per text: whether it passed, which check failed ("language_id", "script" or None) and a readable detail."""

    passed: np.ndarray
    failed_check: list[str | None]
    detail: list[str]


class LanguageIdentifier:
    def __init__(self, model: FastTextModel, threshold: float = 0.5, min_script_fraction: float = 0.5):
        self.model = model
        self.threshold = threshold
        self.min_script_fraction = min_script_fraction
        self._label_code = {}
        for label in model.labels:
            try:
                self._label_code[label] = label_to_flores(label)
            except ValueError:
                self._label_code[label] = label  # a label we cannot map never matches an expected language
        self._covered = {_macro_language(code) for code in self._label_code.values() if "_" in code}

    def covers(self, lang: str) -> bool:
        """Whether the model has a label for `lang` (directly or through its macrolanguage)."""
        return _macro_language(lang) in self._covered

    def check(self, texts: list[str], lang: str) -> SideVerdict:
        """Check texts that should all be in `lang` (a FLORES-style code)."""
        n = len(texts)
        passed = np.ones(n, dtype=bool)
        failed: list[str | None] = [None] * n
        detail = [""] * n
        if self.covers(lang):
            unique = list(dict.fromkeys(texts))  # pivot sides repeat: predict each distinct text once
            labels, scores = self.model.predict(unique)
            by_text = dict(zip(unique, zip(labels, scores)))
            expected = _macro_language(lang)
            for i, text in enumerate(texts):
                label, score = by_text[text]
                code = self._label_code.get(label, label)
                if "_" not in code or _macro_language(code) != expected or score < self.threshold:
                    passed[i] = False
                    failed[i] = "language_id"
                    detail[i] = f"predicted {code} ({score:.2f}), expected {lang}"
        script = lang.split("_")[1]
        fractions = script_fraction(pl.Series(texts, dtype=pl.String), script).to_numpy()
        for i in np.flatnonzero(passed & (fractions < self.min_script_fraction)):
            passed[i] = False
            failed[i] = "script"
            detail[i] = f"{fractions[i]:.0%} of letters in {script}, expected at least {self.min_script_fraction:.0%}"
        return SideVerdict(passed, failed, detail)
