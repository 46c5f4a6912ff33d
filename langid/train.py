"""Train our own fastText language-ID model so that every language we build has a label.

    python -m langid.train                                    # the embedded corpus, into langid/data/
    python -m langid.train --data udhr:train+variants --data pairs.parquet --output my-lid.ftz

Training text is the UDHR train split (articles 0-24 of every declaration) by default, plus any (text, lang) or
pair Parquet; text that equals a held-out UDHR paragraph (articles 25-30) is always dropped, so the held-out
articles stay clean for evaluation. Paragraphs are cut into sentence-sized pieces, and languages with few pieces
are repeated up to a floor so that every label gets trained. The model is quantized to a small .ftz; a JSON card
beside it records the training data (with sha256), the hyper-parameters and the per-language counts.
fastText can end in NaN (too high a learning rate; on tiny data also by chance): training is then retried,
every second time with half the learning rate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from langid.models import OWN_MODEL_PATH
from langid.texts import load_texts

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.!?;:।॥။።。？！؟])\s+")


@dataclass
class Hyperparameters:
    dim: int = 64
    epoch: int = 25
    lr: float = 0.5
    minn: int = 2
    maxn: int = 5
    wordNgrams: int = 1
    minCount: int = 1
    bucket: int = 500_000
    loss: str = "softmax"
    thread: int = 1  # one thread: the same data and seed give the same model
    seed: int = 0
    min_pieces_per_language: int = 60  # languages with fewer training pieces are repeated up to this
    max_piece_chars: int = 200
    quantize_cutoff: int = 50_000  # keeps the .ftz near 2 MB; held-out macro-F1 is no lower than unquantized


def pieces(text: str, max_chars: int) -> list[str]:
    """Sentence-sized pieces of a paragraph (sentences packed up to max_chars; long sentences cut at spaces)."""
    out, current = [], ""
    for sentence in _SENTENCE_END.split(text.replace("\n", " ")):
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > max_chars:
            out.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        out.append(current)
    return [p for p in out if p]


def training_examples(sources: list[str], hp: Hyperparameters) -> pl.DataFrame:
    """(text, lang) training pieces from all sources, held-out text removed, small languages repeated."""
    if held_out := [s for s in sources if s.startswith("gettext:")]:
        raise ValueError(f"cannot train on {', '.join(held_out)}: the gettext catalogs are reserved for evaluation (see langid.texts)")
    heldout = set(load_texts("udhr:heldout+variants")["text"].to_list())
    frames = [load_texts(spec) for spec in sources]
    texts = pl.concat(frames).unique(maintain_order=True).filter(~pl.col("text").is_in(list(heldout)))
    rows = [(piece, lang) for text, lang in texts.iter_rows() for piece in pieces(text, hp.max_piece_chars)]
    examples = pl.DataFrame(rows, schema={"text": pl.String, "lang": pl.String}, orient="row")
    counts = examples.group_by("lang").len()
    repeat = counts.with_columns(times=(hp.min_pieces_per_language / pl.col("len")).ceil().cast(pl.Int64).clip(1))
    examples = examples.join(repeat.select("lang", "times"), on="lang")
    examples = examples.select(pl.col("text").repeat_by("times").explode(), pl.col("lang").repeat_by("times").explode())
    return examples.sample(fraction=1.0, shuffle=True, seed=hp.seed)


def write_fasttext_file(examples: pl.DataFrame, path: Path) -> None:
    lines = examples.select(pl.concat_str([pl.lit("__label__"), pl.col("lang"), pl.lit(" "), pl.col("text").str.replace_all(r"\s+", " ")]))
    path.write_text("\n".join(lines.to_series().to_list()) + "\n", encoding="utf-8")


def train_robust(train_file: Path, hp: Hyperparameters, max_attempts: int = 12):
    """fastText supervised training that survives NaN. fastText ends in NaN when the learning rate is too high,
    and on tiny data (small matrices) also by chance between identical runs: each failure is retried, every
    second time with half the learning rate. Returns the model and the learning rate that worked."""
    import fasttext

    lr = hp.lr
    params = {k: v for k, v in asdict(hp).items() if k in _FASTTEXT_PARAMS}
    for attempt in range(1, max_attempts + 1):
        try:
            return fasttext.train_supervised(input=str(train_file), verbose=0, **{**params, "lr": lr}), lr
        except RuntimeError as e:
            if "nan" not in str(e).lower() or attempt == max_attempts:
                raise
            log.warning("fastText training ended in NaN at lr=%s (attempt %d)", lr, attempt)
            if attempt % 2 == 0:
                lr /= 2
    raise AssertionError("unreachable")


_FASTTEXT_PARAMS = {"dim", "epoch", "lr", "minn", "maxn", "wordNgrams", "minCount", "bucket", "loss", "thread", "seed"}


def sha256_of(spec: str) -> str:
    if spec.startswith("udhr:"):
        from pipelines.corpus import UDHR_PATH

        spec = str(UDHR_PATH)
    return hashlib.sha256(Path(spec).read_bytes()).hexdigest()


def train(sources: list[str], output: Path, hp: Hyperparameters, quantize: bool = True) -> dict:
    examples = training_examples(sources, hp)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        write_fasttext_file(examples, train_file)
        model, lr = train_robust(train_file, hp)
        if quantize:
            model.quantize(input=str(train_file), qnorm=True, retrain=True, cutoff=hp.quantize_cutoff, epoch=max(1, hp.epoch // 5), lr=lr)
        output.parent.mkdir(parents=True, exist_ok=True)
        model.save_model(str(output))
    counts = dict(examples.group_by("lang").len().sort("lang").iter_rows())
    card = {
        "model": output.name,
        "sha256": hashlib.sha256(output.read_bytes()).hexdigest(),
        "labels": len(model.get_labels()),
        "training_data": [{"source": s, "sha256": sha256_of(s)} for s in sources],
        "heldout": "UDHR articles 25-30 of every declaration are never trained on",
        "hyperparameters": {**asdict(hp), "lr_used": lr},
        "quantized": quantize,
        "examples": examples.height,
        "examples_per_language": counts,
    }
    output.with_suffix(".json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return card


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", help="text source (see langid.texts); repeatable (default: udhr:train+variants)")
    parser.add_argument("--output", type=Path, default=OWN_MODEL_PATH)
    parser.add_argument("--no-quantize", action="store_true")
    for name, value in asdict(Hyperparameters()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    hp = Hyperparameters(**{name: getattr(args, name) for name in asdict(Hyperparameters())})
    card = train(args.data or ["udhr:train+variants"], args.output, hp, quantize=not args.no_quantize)
    size = args.output.stat().st_size
    print(f"wrote {args.output} ({size / 1e6:.1f} MB): {card['labels']} languages, {card['examples']} training pieces, lr {card['hyperparameters']['lr_used']}")


if __name__ == "__main__":
    main()
