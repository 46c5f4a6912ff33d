"""Per-language thresholds of a model, calibrated on known-good text by length bucket.

Two kinds, one small JSON file per model, matched to the model by its sha256:

- **reject** (what the pipeline's check uses): for language L and a length bucket, how far the model's score of
  L may fall below its top-1 score before that counts as evidence that a text labelled L is not in L. The
  evidence is the `margin`, log(top-1 score) - log(score of L), 0 where L is the top-1, and measured against the
  k-th score where L is not among the top k (a lower bound). The threshold is the lowest margin that at most
  `alpha` of known-good L texts of that length reach: the share of good text a model may reject is fixed,
  whatever the length. A short text in another language scores its claimed language near zero even where the
  model is unsure of its top-1, so the margin separates far better than the top-1 score alone. The pivot languages get a smaller `alpha` (`alpha_pivot`): a pivot text that fails
  costs its pair in every language. Languages with too few texts in a bucket use the bucket's pooled value.
- **confirm** (`per_language`, what identification uses): FineWeb-2's clamp(median - std, 0.3, 0.9) of the top-1
  scores of good text of the language where the top-1 is the language.

    python -m langid.thresholds --model lid176 --data firefox:calibration+pivot --data udhr:validation \\
        --buckets 20,60,200 --output langid/thresholds/lid176.json

Calibrate on text that neither the model nor its evaluation has seen (the `calibration` split of the Firefox
strings, UDHR validation articles with their clauses); never on the gettext catalogs of the operating system, which
are held out for evaluation.
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

from langid.matching import LabelMatcher
from langid.tokens import without_tokens
from schemas.language_codes import PIVOTS

THRESHOLDS_DIR = Path(__file__).with_name("thresholds")
FORMAT_VERSION = 2
GLOBAL_THRESHOLD = 0.5
GLOBAL_MARGIN = 3.0  # the reject margin of a model without calibrated thresholds: top-1 20x as likely as the claim
LOW, HIGH = 0.3, 0.9
DEFAULT_BUCKETS = (20, 60, 200)  # bucket edges in characters: [1, 20), [20, 60), [60, 200), [200, ...)
ALPHA, ALPHA_PIVOT = 0.01, 0.002  # the share of good text a model may reject, per language and bucket
NEVER = 99.0  # a reject margin no text reaches (scores are float32: log(1 / 1e-38) < 88)
FLOOR = 1.0  # the least margin that rejects: the top-1 at least e times as likely as the claimed language
TOP_K = 10  # the scores asked of a model per text


def margins(codes: list[list[str]], scores: np.ndarray, labels: LabelMatcher, lang: str) -> tuple[np.ndarray, list[str]]:
    """For each text, log(top-1 score) - log(score of `lang`) from the model's top-k codes and scores (0 where
    `lang` is first; the k-th score stands in where `lang` is not among the k), and the top-1 code."""
    top = [c[0] if c else "" for c in codes]
    flat = np.array([code for row in codes for code in row], dtype=object)
    hit = labels.matches(flat, lang) if len(flat) else np.zeros(0, dtype=bool)
    found = np.zeros(scores.shape, dtype=bool)
    rows = np.repeat(np.arange(len(codes)), [len(c) for c in codes])
    cols = np.concatenate([np.arange(len(c)) for c in codes]) if codes else np.zeros(0, dtype=np.int64)
    found[rows[hit], cols[hit]] = True
    own = np.where(found.any(axis=1), np.where(found, scores, 0).max(axis=1), scores[:, -1])
    tiny = np.float32(1e-30)
    margin = np.log(np.maximum(scores[:, 0], tiny)) - np.log(np.maximum(own, tiny))
    return np.where(found[:, 0], 0.0, np.maximum(margin, 0.0)), top

log = logging.getLogger(__name__)


def bucket_names(buckets) -> list[str]:
    edges = [1, *buckets]
    return [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+"]


@dataclass
class Thresholds:
    global_threshold: float = GLOBAL_THRESHOLD  # the confirm score where nothing was calibrated
    per_language: dict[str, float] = field(default_factory=dict)  # confirm (identification)
    source: str = "global threshold only"
    buckets: tuple[int, ...] = DEFAULT_BUCKETS
    reject: dict[str, list[float]] = field(default_factory=dict)  # per language, one per bucket
    reject_pooled: list[float] | None = None  # per bucket, for languages without their own
    global_margin: float = GLOBAL_MARGIN  # the reject margin where nothing was calibrated (not even pooled)

    def get(self, lang: str) -> float:
        """The confirm threshold of `lang`."""
        return self.per_language.get(lang, self.global_threshold)

    def bucket_of(self, lengths: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.buckets), np.asarray(lengths), side="right")

    def rejection(self, lang: str, lengths: np.ndarray) -> np.ndarray:
        """For texts of these lengths (characters) labelled `lang`: the margin (see `margins`) from which the model
        rejects the text."""
        table = self.reject.get(lang) or self.reject_pooled
        if table is None:
            return np.full(len(lengths), self.global_margin)
        return np.asarray(table, dtype=np.float64)[self.bucket_of(lengths)]

    def to_json(self, model, alpha: float = ALPHA, alpha_pivot: float = ALPHA_PIVOT) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "model": model.name,
            "model_sha256": model.sha256,
            "rule": {
                "reject": f"lowest margin, log(top-1 score / score of the language) over the top {TOP_K}, at least "
                f"{FLOOR}, that at most alpha ({alpha}; pivots {alpha_pivot}) of good text of the language reach, per "
                f"length bucket; {NEVER} = never",
                "confirm": f"clamp(median - std of top-1 scores where top-1 is the language, {LOW}, {HIGH})",
            },
            "source": self.source,
            "global_threshold": self.global_threshold,
            "buckets": list(self.buckets),
            "bucket_names": bucket_names(self.buckets),
            "reject_pooled": self.reject_pooled,
            "reject": dict(sorted(self.reject.items())),
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
            raise ValueError(f"{path}: format_version {data.get('format_version')!r}, expected {FORMAT_VERSION} "
                             "(recompute it with python -m langid.thresholds)")  # fmt: skip
        for key in ("model_sha256", "global_threshold", "per_language", "buckets", "reject", "reject_pooled"):
            if key not in data:
                raise ValueError(f"{path}: missing key {key!r}")
        bad = {k: v for k, v in data["per_language"].items() if not (isinstance(v, (int, float)) and 0 <= v <= 1)}
        if bad:
            raise ValueError(f"{path}: per_language thresholds must be numbers in [0, 1]: {bad}")
        buckets = data["buckets"]
        if not (isinstance(buckets, list) and all(isinstance(b, int) and b > 1 for b in buckets) and buckets == sorted(set(buckets))):
            raise ValueError(f"{path}: buckets must be increasing lengths above 1, got {buckets!r}")
        tables = {**data["reject"], **({"reject_pooled": data["reject_pooled"]} if data["reject_pooled"] is not None else {})}
        for key, table in tables.items():
            if not (isinstance(table, list) and len(table) == len(buckets) + 1 and all(isinstance(t, (int, float)) and 0 <= t <= NEVER for t in table)):
                raise ValueError(f"{path}: reject {key}: expected {len(buckets) + 1} numbers in [0, {NEVER}], got {table!r}")
        thresholds = cls(float(data["global_threshold"]), dict(data["per_language"]), data.get("source", str(path)), tuple(buckets),
                         dict(data["reject"]), data["reject_pooled"])  # fmt: skip
        return thresholds, data["model_sha256"]

    @classmethod
    def for_model(cls, model, global_margin: float | None = None) -> "Thresholds":
        """The shipped thresholds computed for this very model file, or the global ones alone; `global_margin`
        replaces the reject margin of languages and buckets that were not calibrated."""
        for path in sorted(THRESHOLDS_DIR.glob("*.json")):
            thresholds, sha = cls.read(path)
            if sha == model.sha256:
                if global_margin is not None:
                    thresholds.global_margin = global_margin
                    thresholds.reject_pooled = None
                return thresholds
        log.warning("no calibrated thresholds for %s (%s): using the global ones", model.name, model.path)
        return cls(global_margin=GLOBAL_MARGIN if global_margin is None else global_margin)


def reject_threshold(margin: np.ndarray, alpha: float) -> float:
    """The lowest margin (at least FLOOR) that at most `alpha` of good texts with these margins reach."""
    allowed = int(np.floor(alpha * len(margin)))
    positive = np.sort(margin[margin > 0])[::-1]
    if len(positive) <= allowed:
        return FLOOR
    kth = positive[allowed]  # the highest margin that must stay below the threshold
    return float(min(NEVER, max(FLOOR, np.nextafter(kth, np.inf))))


def compute(model, texts: pl.DataFrame, min_texts: int = 5, source: str = "", buckets=DEFAULT_BUCKETS, alpha: float = ALPHA,
            alpha_pivot: float = ALPHA_PIVOT, min_bucket_texts: int = 30) -> Thresholds:  # fmt: skip
    """Thresholds of `model` from known-good (text, lang) rows: confirm thresholds by the FineWeb-2 rule (languages
    with `min_texts` texts the model puts first), reject margins per length bucket (languages with
    `min_bucket_texts` texts in the bucket; the others the bucket's pooled value)."""
    labels = LabelMatcher(model)
    buckets = tuple(int(b) for b in buckets)
    per_language, reject = {}, {}
    pooled = [[] for _ in range(len(buckets) + 1)]  # every language's margins, per bucket
    few = [[] for _ in range(len(buckets) + 1)]  # those of the languages with too few texts for their own
    for (lang,), group in texts.sort("lang").group_by("lang", maintain_order=True):
        if not labels.covers(lang):
            continue
        codes, scores = model.predict(group["text"].to_list(), k=TOP_K)
        margin, _ = margins(codes, scores, labels, lang)
        first = margin == 0
        if first.sum() >= min_texts:
            values = scores[first, 0]
            per_language[lang] = round(float(np.clip(np.median(values) - np.std(values), LOW, HIGH)), 4)
        bucket = np.searchsorted(np.asarray(buckets), group["text"].str.len_chars().to_numpy(), side="right")
        table = []
        for b in range(len(buckets) + 1):
            in_bucket = margin[bucket == b]
            pooled[b].append(in_bucket)
            enough = len(in_bucket) >= min_bucket_texts
            if not enough:
                few[b].append(in_bucket)
            table.append(round(reject_threshold(in_bucket, alpha_pivot if lang in PIVOTS else alpha), 3) if enough else None)
        if any(t is not None for t in table):
            reject[lang] = table
    # A language without its own threshold in a bucket gets the one of the other languages without one, where they
    # have enough text together: they are the languages the model saw least of (UDHR alone, no UI strings), and the
    # well-known ones would make their threshold too low. Else the one of all languages.
    reject_pooled = []
    for every, small in zip(pooled, few):
        margins_of = np.concatenate(small) if sum(map(len, small)) >= min_bucket_texts else np.concatenate(every) if every else np.zeros(0)
        reject_pooled.append(round(reject_threshold(margins_of, alpha), 3) if len(margins_of) else NEVER)
    reject = {lang: [p if t is None else t for t, p in zip(table, reject_pooled)] for lang, table in reject.items()}
    return Thresholds(GLOBAL_THRESHOLD, per_language, source, buckets, reject, reject_pooled)


def main(argv=None):
    from langid.models import load_identifier
    from langid.texts import load_texts, with_clauses

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lid176", help="model spec (see langid.models)")
    parser.add_argument("--data", action="append", help="known-good (text, lang) source (see langid.texts); repeatable "
                        "(default: firefox:calibration+pivot and udhr:validation)")  # fmt: skip
    parser.add_argument("--clauses", action=argparse.BooleanOptionalAction, default=True,
                        help="add the clauses of 20-60 characters of each text (short text in every language of the data)")  # fmt: skip
    parser.add_argument("--buckets", default=",".join(map(str, DEFAULT_BUCKETS)), help="length bucket edges in characters")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="share of good text a model may reject, per language and bucket")
    parser.add_argument("--alpha-pivot", type=float, default=ALPHA_PIVOT, help="the same for the pivot languages")
    parser.add_argument("--min-texts", type=int, default=5)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        buckets = sorted({int(b) for b in args.buckets.split(",") if b.strip()})
    except ValueError:
        parser.error(f"--buckets: expected lengths separated by commas, got {args.buckets!r}")
    if not all(b > 1 for b in buckets):
        parser.error(f"--buckets: lengths must be above 1, got {args.buckets!r}")
    sources = args.data or ["firefox:calibration+pivot", "udhr:validation"]
    data = pl.concat([load_texts(spec) for spec in sources])
    if args.clauses:
        data = with_clauses(data)
    model = load_identifier(args.model)
    thresholds = compute(model, data, args.min_texts, ",".join(sources) + (" with clauses" if args.clauses else ""), buckets, args.alpha, args.alpha_pivot)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(thresholds.to_json(model, args.alpha, args.alpha_pivot), indent=1) + "\n", encoding="utf-8")
    print(f"{args.output}: confirm thresholds for {len(thresholds.per_language)} languages, reject thresholds for {len(thresholds.reject)} "
          f"(pooled per bucket {dict(zip(bucket_names(buckets), thresholds.reject_pooled))})")  # fmt: skip


if __name__ == "__main__":
    main()
