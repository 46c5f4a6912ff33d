"""Per-language acceptance thresholds, by the FineWeb-2 rule.

For each language, take the model's top-1 scores on known-good text of that language where the top-1 label is
that language; the threshold is clamp(median - std, 0.3, 0.9). Languages with fewer than `min_texts` such texts
fall back to the global threshold. One small JSON file per model, matched to the model by its sha256:

    python -m langid.thresholds --model lid176 --data udhr:train --output langid/thresholds/lid176.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

THRESHOLDS_DIR = Path(__file__).with_name("thresholds")
FORMAT_VERSION = 1
GLOBAL_THRESHOLD = 0.5
LOW, HIGH = 0.3, 0.9

log = logging.getLogger(__name__)


@dataclass
class Thresholds:
    global_threshold: float = GLOBAL_THRESHOLD
    per_language: dict[str, float] = field(default_factory=dict)
    source: str = "global threshold only"

    def get(self, lang: str) -> float:
        return self.per_language.get(lang, self.global_threshold)

    def to_json(self, model) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "model": model.name,
            "model_sha256": model.sha256,
            "rule": f"clamp(median - std of top-1 scores where top-1 is the language, {LOW}, {HIGH})",
            "source": self.source,
            "global_threshold": self.global_threshold,
            "per_language": dict(sorted(self.per_language.items())),
        }

    @classmethod
    def read(cls, path: str | os.PathLike) -> tuple["Thresholds", str]:
        """Thresholds from a file, and the sha256 of the model they were computed for."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read thresholds file {path}: {e}") from None
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}")
        for key in ("model_sha256", "global_threshold", "per_language"):
            if key not in data:
                raise ValueError(f"{path}: missing key {key!r}")
        bad = {k: v for k, v in data["per_language"].items() if not (isinstance(v, (int, float)) and 0 <= v <= 1)}
        if bad:
            raise ValueError(f"{path}: thresholds must be numbers in [0, 1]: {bad}")
        return cls(float(data["global_threshold"]), dict(data["per_language"]), data.get("source", str(path))), data["model_sha256"]

    @classmethod
    def for_model(cls, model, global_threshold: float | None = None) -> "Thresholds":
        """The shipped thresholds computed for this very model file, or the global threshold alone."""
        for path in sorted(THRESHOLDS_DIR.glob("*.json")):
            thresholds, sha = cls.read(path)
            if sha == model.sha256:
                if global_threshold is not None:
                    thresholds.global_threshold = global_threshold
                return thresholds
        log.warning("no per-language thresholds for %s (%s): using the global threshold", model.name, model.path)
        return cls(GLOBAL_THRESHOLD if global_threshold is None else global_threshold)


def compute(model, texts: pl.DataFrame, min_texts: int = 5, source: str = "") -> Thresholds:
    """FineWeb-2 thresholds of `model` from known-good (text, lang) rows."""
    from langid.identify import ModelCheck

    check = ModelCheck(model, Thresholds(global_threshold=0.0))
    per_language = {}
    for (lang,), group in texts.group_by("lang"):
        if not check.covers(lang):
            continue
        confirmed, _, score = check.confirm(group["text"].to_list(), lang)  # threshold 0: top-1 is the language
        if confirmed.sum() >= min_texts:
            values = score[confirmed]
            per_language[lang] = round(float(np.clip(np.median(values) - np.std(values), LOW, HIGH)), 4)
    return Thresholds(GLOBAL_THRESHOLD, per_language, source)


def main(argv=None):
    from langid.models import FastTextModel
    from langid.texts import load_texts

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lid176", help="model spec (see langid.models)")
    parser.add_argument("--data", default="udhr:train", help="known-good (text, lang) source (see langid.texts)")
    parser.add_argument("--min-texts", type=int, default=5)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    model = FastTextModel.load(args.model)
    thresholds = compute(model, load_texts(args.data), args.min_texts, source=args.data)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(thresholds.to_json(model), indent=1) + "\n", encoding="utf-8")
    values = list(thresholds.per_language.values())
    print(f"{args.output}: {len(values)} languages, thresholds from {min(values, default=0):.2f} to {max(values, default=0):.2f} "
          f"(median {np.median(values) if values else 0:.2f}); others use {thresholds.global_threshold}")


if __name__ == "__main__":
    main()
