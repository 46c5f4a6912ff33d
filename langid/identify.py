"""Check that texts are in the language they are labelled with: the one entry point the pipeline uses.

A text is rejected on evidence, not for a lack of it. Real parallel text is mostly short (half the strings of a
software UI are under 20 characters), and a model that is unsure of a word or two says nothing about its language;
a model that is sure of *another* language does. So, on whole batches:
- the models (those that know the language), cheapest first: a text that some model puts its language first for
  is confirmed (through the macrolanguage where the model lacks the exact label: lid.176's `ar`, `fa`, `zh`). Only
  texts no model has confirmed are asked of the next model.
- a text that no model confirmed is rejected when a model named another language with at least that model's
  reject threshold for the labelled language and the text's length (langid.thresholds: calibrated per length
  bucket on known-good short and long text, so that a model rejects a fixed small share of good text at any
  length). Otherwise it passes.
- the script: at least `min_script_fraction` of the letters must be in the expected script (Han, kana and Hangul
  weighing three; a text without letters passes), and Chinese text must not be in the other Han variety
  (simplified where traditional is expected, or the reverse). The default, a quarter, leaves room for the
  product names in Latin letters that UI strings of other scripts carry ("ابحث في addons.mozilla.org"), while text
  in another script, or untranslated text, has next to none.
A language no model knows is checked by its script alone; `covers` tells which is which. Both checks read the
text without its URLs, placeholders, markup and numbers (langid.tokens), which carry no language.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from langid.matching import LabelMatcher, macro_language  # noqa: F401  (macro_language: part of this module's API)
from langid.models import FastTextModel
from langid.scripts import han_variants, weighted_script_fraction
from langid.tokens import without_tokens
from langid.thresholds import TOP_K, Thresholds, margins


class ModelCheck:
    """One model with its thresholds: which languages it knows, and what it says of texts."""

    def __init__(self, model: FastTextModel, thresholds: Thresholds):
        self.model = model
        self.thresholds = thresholds
        self.labels = LabelMatcher(model)

    def knows_exactly(self, lang: str) -> bool:
        return self.labels.knows_exactly(lang)

    def covers(self, lang: str) -> bool:
        return self.labels.covers(lang)

    def matches(self, predicted: np.ndarray, lang: str) -> np.ndarray:
        return self.labels.matches(predicted, lang)

    def confirms(self, texts: list[str], lang: str) -> np.ndarray:
        """Whether the model puts `lang` first, for each text."""
        codes, _ = self.model.predict(texts)
        return self.matches(np.array([c[0] for c in codes], dtype=object), lang)

    def doubts(self, texts: list[str], lang: str):
        """For texts the model does not put `lang` first for: whether its evidence for another language (`margins`
        over its top k) reaches the reject threshold, and a function that says what it said of text i (called only
        for the texts rejected in the end: formatting every answer would cost more than deciding)."""
        codes, scores = self.model.predict(texts, k=TOP_K)
        margin, top = margins(codes, scores, self.labels, lang)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        threshold = self.thresholds.rejection(lang, lengths)
        against = margin >= threshold

        def said(i: int) -> str:
            return f"{self.model.name}: {top[i]} ({scores[i, 0]:.2f}, margin {margin[i]:.1f}{' >= ' if against[i] else ' < '}{threshold[i]:.1f})"

        return against, said


@dataclass
class SideVerdict:
    """Per text: whether it passed, which check failed ("language_id", "script" or None) and a readable detail."""

    passed: np.ndarray
    failed_check: list[str | None]
    detail: list[str]


class LanguageIdentifier:
    def __init__(self, checks: list[ModelCheck], min_script_fraction: float = 0.25, min_model_chars: int = 1):
        self.checks = checks
        self.min_script_fraction = min_script_fraction
        self.min_model_chars = min_model_chars  # shorter texts are checked by script only

    @classmethod
    def load(cls, models: str | None = None, global_margin: float | None = None, min_script_fraction: float = 0.25, min_model_chars: int = 1):
        """Models by spec, comma-separated (see langid.models; `check` asks the cheapest first, and details follow
        this order), each with its shipped per-language thresholds; `global_margin` is the reject margin where
        those have none (see langid.thresholds)."""
        from langid.models import DEFAULT_MODELS, load_identifier

        specs = [s.strip() for s in (models or DEFAULT_MODELS).split(",") if s.strip()]
        checks = []
        for spec in specs:
            model = load_identifier(spec)
            checks.append(ModelCheck(model, Thresholds.for_model(model, global_margin)))
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
        first = {}  # pivot sides repeat: each distinct text once (a dict: np.unique sorts strings, which is slower)
        inverse = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64, count=n)
        # what models and the script check read: URLs, placeholders, markup and numbers say nothing of the language
        unique = np.array(without_tokens(pl.Series(list(first), dtype=pl.String)).to_list(), dtype=object)
        long_enough = np.fromiter((len(t) >= self.min_model_chars for t in unique), dtype=bool, count=len(unique))
        open_ = np.flatnonzero(long_enough)  # not confirmed by any model yet
        evidence = np.zeros(len(unique), dtype=bool)  # a model named another language surely enough
        answers = []  # (model's place in self.checks, what it said of the j-th open text)
        # The cheapest model first: whether a text passes does not depend on the order (confirmed by any model, or
        # rejected on the evidence of any); the order only decides how many texts the dearer models are asked about.
        # lid176 (16 dimensions, hierarchical softmax) costs a fraction of a 64-dimension softmax model per text.
        # The top k, which costs more than the top-1, is asked only of the texts that no model confirmed.
        covering = sorted((c for c in self.checks if c.covers(lang)), key=lambda c: c.model.cost)
        for check in covering:
            if not len(open_):
                break
            open_ = open_[~check.confirms(unique[open_].tolist(), lang)]
        if len(open_):
            for check in covering:
                against, said = check.doubts(unique[open_].tolist(), lang)
                answers.append((self.checks.index(check), said))
                evidence[open_[against]] = True
        answers.sort(key=lambda answer: answer[0])  # details in the recipe's order
        place_in_open = {u: j for j, u in enumerate(open_.tolist())}
        rejected = np.zeros(len(unique), dtype=bool)
        rejected[open_] = evidence[open_]
        for i in np.flatnonzero(rejected[inverse]):
            passed[i] = False
            failed[i] = "language_id"
            j = place_in_open[int(inverse[i])]
            detail[i] = f"expected {lang}, predicted " + "; ".join(said(j) for _, said in answers)
        script = lang.split("_")[1]
        fractions = weighted_script_fraction(unique, script)[inverse]
        for i in np.flatnonzero(passed & (fractions < self.min_script_fraction)):  # NaN (no letters) passes
            passed[i] = False
            failed[i] = "script"
            detail[i] = f"{fractions[i]:.0%} of letters in {script}, expected at least {self.min_script_fraction:.0%}"
        if script in ("Hans", "Hant"):
            candidates = np.flatnonzero(passed)
            other = "Hant" if script == "Hans" else "Hans"
            for i, variant in zip(candidates, han_variants([unique[inverse[i]] for i in candidates])):
                if variant == other:
                    passed[i] = False
                    failed[i] = "script"
                    detail[i] = f"written in {other}, expected {script}"
        return SideVerdict(passed, failed, detail)
