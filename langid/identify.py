"""Check that texts are in the language they are labelled with: the one entry point the pipeline uses.

Two checks, both on whole batches:
- the models, in order: a text is confirmed when a model that knows the language puts it first with at least
  that language's threshold (see langid.thresholds). A model that has no label for the exact language but one
  for its macrolanguage confirms through it: lid.176 says `ar` for any Arabic, `fa` for Dari and Persian, `zh`
  for Chinese. Later models only see what earlier ones did not confirm. A text that every model knowing the
  language (two or more) puts first is confirmed too, even when no score clears its threshold: the thresholds
  come from UDHR paragraphs, and on short text two independent models agreeing is the stronger evidence (on
  UDHR held-out text it accepts no more wrong labels and more right ones; see `langid.evaluate --verify`).
- the script: at least `min_script_fraction` of the letters must be in the expected script, and Chinese text
  must not be in the other Han variety (simplified where traditional is expected, or the reverse).
A language no model knows is checked by its script alone; `covers` tells which is which. So is a text shorter
than `min_model_chars`: language identification of a word or two is noise (half the strings of a software UI
are under 20 characters), and rejecting them on its word would throw away good pairs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import langcodes
import numpy as np

from langid.models import FastTextModel
from langid.scripts import han_variants, script_fraction
from langid.thresholds import Thresholds


@functools.lru_cache(maxsize=8192)
def macro_language(flores_code: str) -> str:
    """The macrolanguage-level BCP-47 language of a FLORES code: arb_Arab -> ar, prs_Arab -> fa, nob_Latn -> nb."""
    language = flores_code.split("_")[0]
    try:
        return langcodes.standardize_tag(language, macro=True).split("-")[0]
    except ValueError:
        return language


class ModelCheck:
    """One model with its thresholds: which languages it knows, and which texts it confirms."""

    def __init__(self, model: FastTextModel, thresholds: Thresholds):
        self.model = model
        self.thresholds = thresholds
        self.exact = {code for code in model.codes.values() if "_" in code}
        self.by_macro = {macro_language(code) for code in self.exact}

    def knows_exactly(self, lang: str) -> bool:
        return lang in self.exact

    def covers(self, lang: str) -> bool:
        return lang in self.exact or macro_language(lang) in self.by_macro

    def matches(self, predicted: np.ndarray, lang: str) -> np.ndarray:
        """Which predicted codes name `lang`: exactly where the model has its label, else by macrolanguage."""
        if self.knows_exactly(lang):
            return predicted == lang
        unique, inverse = np.unique(predicted, return_inverse=True)
        expected = macro_language(lang)
        return np.array([macro_language(code) == expected for code in unique], dtype=bool)[inverse]

    def confirm(self, texts: list[str], lang: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(confirmed, predicted code, score) for each text."""
        codes, scores = self.model.predict(texts)
        predicted = np.array([c[0] for c in codes], dtype=object)
        score = scores[:, 0]
        return self.matches(predicted, lang) & (score >= self.thresholds.get(lang)), predicted, score


@dataclass
class SideVerdict:
    """Per text: whether it passed, which check failed ("language_id", "script" or None) and a readable detail."""

    passed: np.ndarray
    failed_check: list[str | None]
    detail: list[str]


class LanguageIdentifier:
    def __init__(self, checks: list[ModelCheck], min_script_fraction: float = 0.5, min_model_chars: int = 20, agreement: bool = True):
        self.checks = checks
        self.min_script_fraction = min_script_fraction
        self.min_model_chars = min_model_chars
        self.agreement = agreement  # False: thresholds alone (to measure what agreement adds, langid.evaluate --verify)

    @classmethod
    def load(cls, models: str | None = None, global_threshold: float | None = None, min_script_fraction: float = 0.5, min_model_chars: int = 20):
        """Models by spec, comma-separated (see langid.models; `check` asks the cheapest first, and details follow
        this order), each with its shipped per-language thresholds; `global_threshold` is the fallback for
        languages without one."""
        from langid.models import DEFAULT_MODELS, load_identifier

        specs = [s.strip() for s in (models or DEFAULT_MODELS).split(",") if s.strip()]
        checks = []
        for spec in specs:
            model = load_identifier(spec)
            checks.append(ModelCheck(model, Thresholds.for_model(model, global_threshold)))
        return cls(checks, min_script_fraction, min_model_chars)

    def covers(self, lang: str) -> bool:
        """Whether some model has a label for `lang` (directly or through its macrolanguage)."""
        return any(check.covers(lang) for check in self.checks)

    def check(self, texts: list[str], lang: str) -> SideVerdict:
        """Check texts that should all be in `lang` (a FLORES-style code)."""
        n = len(texts)
        passed = np.ones(n, dtype=bool)
        failed: list[str | None] = [None] * n
        detail = [""] * n
        first = {}  # pivot sides repeat: each distinct text once (a dict: np.unique sorts strings, 2x slower)
        inverse = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64, count=n)
        unique = np.array(list(first), dtype=object)
        long_enough = np.fromiter((len(t) >= self.min_model_chars for t in unique), dtype=bool, count=len(unique))
        open_ = np.flatnonzero(long_enough)
        heard: list[dict[int, str]] = [{} for _ in unique]  # model's place in self.checks -> what it said
        covering = [check for check in self.checks if check.covers(lang)]
        ranked_first = np.ones(len(unique), dtype=bool)  # by every model asked so far
        # The cheapest model first: a text is confirmed when any model is sure of it (and, by agreement, when all
        # rank it first), so the order changes what is asked, not what is decided; details list the recipe's order.
        # lid176 (16 dimensions) costs a third of udhr-lid (64 dimensions, 459 labels) per text, and is sure of
        # most texts in the languages it knows.
        for check in sorted(covering, key=lambda c: c.model.cost):
            if not len(open_):
                break
            confirmed, predicted, score = check.confirm(unique[open_].tolist(), lang)
            ranked_first[open_] &= check.matches(predicted, lang)
            place = self.checks.index(check)
            for i in np.flatnonzero(~confirmed):
                heard[open_[i]][place] = f"{check.model.name}: {predicted[i]} ({score[i]:.2f})"
            open_ = open_[~confirmed]
        if self.agreement and len(covering) >= 2:  # all models put it first, none sure enough alone: their agreement confirms it
            open_ = open_[~ranked_first[open_]]
        if self.covers(lang):  # else the script check below is the only one; and for short texts
            rejected = np.zeros(len(unique), dtype=bool)
            rejected[open_] = True
            for i in np.flatnonzero(rejected[inverse]):
                passed[i] = False
                failed[i] = "language_id"
                detail[i] = f"expected {lang}, predicted " + "; ".join(said for _, said in sorted(heard[inverse[i]].items()))
        script = lang.split("_")[1]
        fractions = script_fraction(texts, script)
        for i in np.flatnonzero(passed & (fractions < self.min_script_fraction)):
            passed[i] = False
            failed[i] = "script"
            detail[i] = f"{fractions[i]:.0%} of letters in {script}, expected at least {self.min_script_fraction:.0%}"
        if script in ("Hans", "Hant"):
            candidates = np.flatnonzero(passed)
            other = "Hant" if script == "Hans" else "Hans"
            for i, variant in zip(candidates, han_variants([texts[i] for i in candidates])):
                if variant == other:
                    passed[i] = False
                    failed[i] = "script"
                    detail[i] = f"written in {other}, expected {script}"
        return SideVerdict(passed, failed, detail)
