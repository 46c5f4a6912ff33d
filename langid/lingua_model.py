"""Lingua (`lingua-language-detector`, Apache-2.0, 75 languages, models inside its wheel) as a LanguageIDModel.

Lingua scores character n-grams of orders 1-5 in its high-accuracy mode, which is meant to be good on short text,
and is much slower than fastText: an optional extra (`pip install bayling-data[lingua]`; its wheel is about
100 MB and the models take about 1 GB of memory once loaded), imported only for the model spec `lingua`.

Scores: Lingua's own confidence values, the languages' summed n-gram log-probabilities turned into a
distribution over its 75 languages (they sum to 1): in [0, 1], higher = surer. A text without letters gets 0
for every language.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np

from langid.scripts import dominant_script, han_codes
from schemas.language_codes import UnknownLanguageCode, to_flores

EXTRA = "lingua"
LABELS = {
    "zho": "zho_Hani",  # Hans or Hant from the text
    "kor": "kor_Hang",  # FLORES-200 writes Korean as Hang (langcodes says Kore)
}
BY_SCRIPT = {"srp": {"Latn": "srp_Latn"}}  # Lingua's Serbian is trained on both scripts


def _import():
    try:
        import lingua
    except ImportError:
        raise ImportError("language-ID model `lingua` needs the optional extra: pip install 'bayling-data[lingua]'") from None
    return lingua


class LinguaModel:
    """Lingua in high-accuracy mode over all its languages; see the module doc for the scores."""

    def __init__(self, detector, languages, path: Path, sha256: str):
        self.name = "lingua"
        self.path = path
        self.detector = detector
        self._sha256 = sha256
        self.labels = sorted(language.iso_code_639_3.name.lower() for language in languages)
        self.codes = {}
        for label in self.labels:
            try:
                self.codes[label] = LABELS.get(label) or to_flores(label)
            except UnknownLanguageCode:
                self.codes[label] = label

    @classmethod
    def load(cls) -> "LinguaModel":
        lingua = _import()
        return cls._load(lingua)

    @classmethod
    @functools.lru_cache(maxsize=1)
    def _load(cls, lingua) -> "LinguaModel":
        distribution = importlib.metadata.distribution("lingua-language-detector")
        digest = hashlib.sha256(f"lingua-language-detector {distribution.version}\n".encode())
        for file in sorted(distribution.files or (), key=str):  # its models are inside the wheel: their recorded sha256
            if file.hash:
                digest.update(f"{file} {file.hash.value}\n".encode())
        detector = lingua.LanguageDetectorBuilder.from_all_languages().build()  # models load lazily, as texts need them
        return cls(detector, lingua.Language.all(), Path(lingua.__file__).parent, digest.hexdigest())

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def cost(self) -> int:
        """In fastText's units (per text, a multiply-add per dimension and label): Lingua sums the
        log-probabilities of every n-gram of orders 1-5 of the text in each of its languages' models, with a hash
        lookup each, far more than any of our fastText models: it is asked last."""
        return 5 * 60 * len(self.labels) * 16

    def predict(self, texts: list[str], k: int = 1) -> tuple[list[list[str]], np.ndarray]:
        scores = np.zeros((len(texts), k), dtype=np.float32)
        codes = []
        for i, text in enumerate(texts):
            values = self.detector.compute_language_confidence_values(text.replace("\n", " "))[:k]
            scores[i, : len(values)] = [v.value for v in values]
            codes.append([self.code(v.language.iso_code_639_3.name.lower(), text) for v in values])
        return han_codes(codes, texts), np.clip(scores, 0.0, 1.0, out=scores)

    def code(self, label: str, text: str) -> str:
        by_script = BY_SCRIPT.get(label)
        if by_script and (script := dominant_script(text)) in by_script:
            return by_script[script]
        return self.codes.get(label, label)
