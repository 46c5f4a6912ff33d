"""Language-ID throughput, as ratios measured in one run on one core.

    python tests/benchmarks/bench_langid.py [--sentences 20000] [--repeats 3]

Sentences: 60-100 character pieces of the embedded corpus in the languages lid.176 knows (so that every sentence
is predicted by the model in each variant), each labelled with its language.
Measured, best of --repeats, single process:
  bare      fastText batch prediction (model.predict on the list, k=1), for each model (lid176, and our udhr-lid
            and bayling-lid);
  langid    LanguageIdentifier.check with lid.176 alone: both checks, code mapping, per-language thresholds;
  pipeline  LanguageIdentifier.check with the pipeline's default models (lid176 asked first, udhr-lid for what it is
            not sure of);
  datatrove datatrove's LanguageFilter with its defaults (lid.176, k=-1, threshold 0.65), one Document each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import polars as pl  # noqa: E402

from langid.identify import LanguageIdentifier, ModelCheck  # noqa: E402
from langid.models import FastTextModel  # noqa: E402
from langid.texts import load_texts  # noqa: E402
from langid.thresholds import Thresholds  # noqa: E402
from langid.train import pieces  # noqa: E402


def sentences(n: int) -> pl.DataFrame:
    texts = load_texts("udhr:train")
    rows = [(p, lang) for text, lang in texts.iter_rows() for p in pieces(text, 100) if len(p) >= 60]
    frame = pl.DataFrame(rows, schema={"text": pl.String, "lang": pl.String}, orient="row").unique("text", maintain_order=True)
    return frame.sample(n=min(n, frame.height), seed=0, shuffle=True)


def best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def check_all(identifier: LanguageIdentifier, groups: list[tuple[str, list[str]]]) -> None:
    for lang, texts in groups:
        identifier.check(texts, lang)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    models = {spec: FastTextModel.load(spec) for spec in ("lid176", "udhr-lid", "bayling-lid")}
    lid176_only = LanguageIdentifier([ModelCheck(models["lid176"], Thresholds.for_model(models["lid176"]))])
    # only languages lid.176 knows: every sentence then goes through the model on both sides of the comparison
    data = sentences(args.sentences * 3).filter(pl.col("lang").map_elements(lid176_only.covers, return_dtype=pl.Boolean))
    data = data.head(args.sentences)
    texts = data["text"].to_list()
    groups = [(lang, g["text"].to_list()) for (lang,), g in data.group_by("lang", maintain_order=True)]
    n = len(texts)
    print(f"{n} sentences, {data['lang'].n_unique()} languages, mean {sum(map(len, texts)) / n:.0f} characters")

    results = {}
    for spec, model in models.items():
        results[f"bare {spec}"] = best_of(args.repeats, lambda m=model: m.model.predict(texts, k=1))
    results["langid lid176"] = best_of(args.repeats, lambda: check_all(lid176_only, groups))
    pipeline = LanguageIdentifier.load()
    results["pipeline bayling-lid,lid176"] = best_of(args.repeats, lambda: check_all(pipeline, groups))

    from datatrove.data import Document
    from datatrove.pipeline.filters import LanguageFilter

    language_filter = LanguageFilter()
    from fasttext.FastText import _FastText

    language_filter.model._model = _FastText(str(models["lid176"].path))  # the same file; no download
    documents = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    results["datatrove LanguageFilter"] = best_of(args.repeats, lambda: sum(1 for _ in language_filter.run(iter(documents))))

    for name, seconds in results.items():
        print(f"{name:<28}{n / seconds:>10.0f} sentences/s/core")
    bare = results["bare lid176"]
    print(f"langid (lid176) / bare lid176:           {bare / results['langid lid176']:.3f}  (goal >= 0.90)")
    print(f"langid (lid176) / datatrove LanguageFilter: {results['datatrove LanguageFilter'] / results['langid lid176']:.2f}x  (goal >= 1.6x)")
    print(f"pipeline cascade / bare lid176:          {bare / results['pipeline bayling-lid,lid176']:.3f}")


if __name__ == "__main__":
    main()
