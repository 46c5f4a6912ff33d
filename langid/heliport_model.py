"""HeLI-OTS language identification through `heliport` (the Rust port used for HPLT), as a LanguageIDModel.

heliport (https://github.com/ZJaume/heliport) is licensed GPL-3.0, unlike this project (Apache-2.0): it is an
optional extra, `pip install bayling-data[heliport]`, never installed by default, and imported here only when the
model spec `heliport` is asked for. Its wheel carries the model (HeLI-OTS 2.0, 220 languages), so nothing is
downloaded.

Labels are ISO 639-3 codes without a script (`eng`, `cmn`, `hbs`, `msa`); each is mapped to FLORES-200 by
schemas.language_codes.to_flores, with the script the language is written in, and a few choices below.

Scores. HeLI scores a text per language with the mean, over the text's features (words and character n-grams
of orders 1-6), of -log10 of the feature's relative frequency in that language (7 where unseen): lower is
better, and the numbers are comparable between languages of one text. HeLI-OTS's own confidence is the margin
between the best language and the runner-up, s2 - s1 >= 0 (the distribution carries per-language thresholds on
that margin). We report each of the top-k languages' 10 ** -(s_i - s1), how likely language i makes an average
feature relative to the best one, normalized over the k: the top-1 confidence is then a strictly increasing
function of HeLI's own margin (1/2 for a tie, as for a text with no known feature; near 1 as the best language
pulls away), and log(score of the top-1 / score of language i) is HeLI's margin of language i (times ln 10),
which is the evidence langid.identify weighs against a labelled language.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np

from langid.scripts import dominant_script, han_codes
from schemas.language_codes import UnknownLanguageCode, to_flores

EXTRA = "heliport"
# Where langcodes' likely script or FLORES's choice is not what heliport's model was trained on.
LABELS = {
    "cmn": "zho_Hani",  # Mandarin in Han script: Hans or Hant from the text, as for lid.176's `zh`
    "kor": "kor_Hang",  # FLORES-200 writes Korean as Hang (langcodes says Kore)
    "pbt": "pbt_Arab",  # Southern Pashto is written in Arabic script (langcodes says Latn)
}
# Labels of one language written in several scripts: the text's script picks the code. Serbo-Croatian in
# Cyrillic is Serbian; in Latin it stays hbs (it matches Serbian by macrolanguage, see langid.identify).
BY_SCRIPT = {"hbs": {"Cyrl": "srp_Cyrl"}, "uzn": {"Cyrl": "uzn_Cyrl"}, "aze": {"Cyrl": "azj_Cyrl"}}
NO_LANGUAGE = "zxx"  # what heliport answers for a text without letters


def label_to_flores(label: str) -> str:
    return LABELS.get(label) or to_flores(label)


def _import():
    try:
        import heliport
    except ImportError:
        raise ImportError(
            "language-ID model `heliport` needs the optional extra: pip install 'bayling-data[heliport]' "
            "(heliport is GPL-3.0-licensed, so it is not installed by default)"
        ) from None
    return heliport


class HeliportModel:
    """HeLI-OTS through heliport; see the module doc for labels and scores."""

    def __init__(self, identifier, path: Path, sha256: str):
        self.name = "heliport"
        self.path = path
        self.identifier = identifier
        self._sha256 = sha256
        # get_confidence_all also lists internal sub-labels (`hbssrp`, `msaind`) and `und`/`zxx`, never predicted
        # with ignore_confidence; the languages are the three-letter codes
        self.labels = sorted(label for label in identifier.get_confidence_all() if len(label) == 3 and label not in ("und", NO_LANGUAGE))
        self.codes = {}
        for label in self.labels:
            try:
                self.codes[label] = label_to_flores(label)
            except UnknownLanguageCode:
                self.codes[label] = label  # never matches an expected language
        self.codes[NO_LANGUAGE] = NO_LANGUAGE

    @classmethod
    def load(cls) -> "HeliportModel":
        heliport = _import()
        return cls._load(Path(heliport.__file__).parent, heliport.Identifier)

    @classmethod
    @functools.lru_cache(maxsize=1)
    def _load(cls, path: Path, identifier_class) -> "HeliportModel":
        """Once per process: loading reads the model's n-gram tables (about 130 MB)."""
        return cls(identifier_class(), path, model_sha256())

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def cost(self) -> int:
        """In fastText's units (a multiply-add per dimension and label, per text). HeLI's work grows with the text,
        not with a dimension: a hash lookup per word and character n-gram, each adding the scores of the languages
        that have it. On short text that costs more than lid176's hierarchical softmax (16 dimensions, a path
        through 176 labels) and less than udhr-lid (64 dimensions, 459 labels): a value between the two."""
        return 10_000

    def raw_scores(self, texts: list[str], k: int = 2) -> list[list[tuple[str, float]]]:
        """heliport's top-k (label, HeLI score) per text, lower score = better; newlines read as spaces.
        heliport 1.0.1's identify_topk_with_score(text, k) sometimes returns fewer than k languages (the ones it
        returns are the right ones); asked for all of them it returns all, which costs several times as much, so
        only those texts are asked again. A text without letters has one answer, `zxx`."""
        out = []
        for text in texts:
            text = text.replace("\n", " ")
            ranked = self.identifier.identify_topk_with_score(text, k)
            if len(ranked) < k:
                ranked = self.identifier.identify_topk_with_score(text, len(self.labels) + 2)[:k]
            out.append(ranked)
        return out

    def predict(self, texts: list[str], k: int = 1) -> tuple[list[list[str]], np.ndarray]:
        scores = np.zeros((len(texts), k), dtype=np.float32)
        codes: list[list[str]] = []
        for i, (text, ranked) in enumerate(zip(texts, self.raw_scores(texts, max(k, 2)))):
            if len(ranked) >= 2:
                relative = 10.0 ** -(np.array([score for _, score in ranked]) - ranked[0][1])
                scores[i, : min(k, len(ranked))] = (relative / relative.sum())[:k]
            row = [self.code(label, text) for label, _ in ranked[:k]]
            codes.append(row + [NO_LANGUAGE] * (k - len(row)))
        return han_codes(codes, texts), scores

    def code(self, label: str, text: str) -> str:
        by_script = BY_SCRIPT.get(label)
        if by_script:
            script = dominant_script(text)
            if script in by_script:
                return by_script[script]
        return self.codes.get(label, label)


def model_sha256() -> str:
    """A digest of heliport's version and of the recorded sha256 of every model file in its wheel (the .bin
    n-gram tables and confidenceThresholds): it changes when the model does, without reading 130 MB."""
    distribution = importlib.metadata.distribution("heliport")
    digest = hashlib.sha256(f"heliport {distribution.version}\n".encode())
    for file in sorted(distribution.files or (), key=str):
        if file.parent.name == "heliport" and (file.suffix == ".bin" or file.name == "confidenceThresholds"):
            digest.update(f"{file.name} {file.hash.value if file.hash else file.size}\n".encode())
    return digest.hexdigest()
