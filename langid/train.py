"""Train our own fastText language-ID model so that every language we build has a label.

    python -m langid.train                                    # bayling-lid, into langid/data/bayling-lid-v2.ftz
    python -m langid.train --data udhr:train+variants --output udhr-lid.ftz   # UDHR alone, as udhr-lid v1
    python -m langid.train --data udhr:train+variants --data pairs.parquet --output my-lid.ftz

Training text comes from several genres by default (DEFAULT_SOURCES): the UDHR train split (articles 0-24 of every
declaration: long legal paragraphs, 459 languages), the Firefox UI strings of the train split with their English
side (short strings, 96 languages) and CLDR locale data from babel (names, months, units: very short, some 350
languages), plus any (text, lang) or pair Parquet given with --data. Text of the held-out and calibration splits
(NEVER_TRAINED_ON: UDHR articles 25-30, Firefox's calibration and held-out strings, CLDR's held-out keys; those of
the package catalogs too where they are trained on) is always dropped, in every language, so evaluation and
thresholds stay clean.

Long texts are cut into sentence-sized pieces and also into clauses (short text for the many languages only the
UDHR has). Each source is balanced on its own: a language with more pieces than max_pieces_per_language is sampled
down (so a few big locales do not drown the others, nor UI strings the UDHR paragraphs), one with fewer than
min_pieces_per_language is repeated up to it (so every label gets trained). A language that only a later source
has gets a label only with min_texts_new_language texts. The model is quantized to a small .ftz; a JSON card beside
it records the command, every source (sha256, license, examples), the hyper-parameters and the per-language counts.
One thread and a fixed seed: the same data give the same model, byte for byte.
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
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from langid.models import MODEL_PATHS
from langid.texts import load_texts

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.!?;:।॥။።。？！؟])\s+")


# One label per language: where two sources name the same language by different codes of one macrolanguage (the
# UDHR's Standard Estonian `ekk`, Firefox's and CLDR's Estonian `est`), the FLORES-200 code wins, else the UDHR's.
LABEL_MERGES = {
    "ekk_Latn": "est_Latn", "gug_Latn": "grn_Latn", "src_Latn": "srd_Latn", "fil_Latn": "tgl_Latn",
    "aka_Latn": "twi_Latn", "zha_Latn": "zyb_Latn",
}  # fmt: skip
# Text that is never trained on, whatever the sources: the held-out splits (evaluation) and Firefox's calibration
# split (thresholds), in every language (matched by text).
NEVER_TRAINED_ON = ("udhr:heldout+variants", "firefox:calibration+pivot", "firefox:heldout+pivot", "cldr:heldout")
# ... and, when the package catalogs are trained on, their calibration and held-out strings. Only then: a model
# trained without them (bayling-lid v2) stays reproducible from its card, byte for byte.
CATALOGS_NEVER_TRAINED_ON = ("catalogs:calibration+pivot", "catalogs:heldout+pivot")
DEFAULT_SOURCES = ["udhr:train+variants", "firefox:train+pivot", "cldr:train"]
_CLAUSE_END = re.compile(r"(?<=[.!?;:,،؛।॥။።።፣፤。？！，、；：؟])\s*")


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
    min_pieces_per_language: int = 60  # a source's languages with fewer pieces are repeated up to this
    max_pieces_per_language: int = 1500  # a source's languages with more are sampled down to this
    max_piece_chars: int = 200
    min_clause_chars: int = 15  # clauses of long texts (UDHR paragraphs) are trained on too, as short text
    max_clause_chars: int = 100
    min_texts_new_language: int = 200  # a language only a secondary source (CLDR) has needs this many texts
    quantize_cutoff: int = 100_000


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


def clauses(text: str, min_chars: int, max_chars: int) -> list[str]:
    """The clauses of a long text (cut at sentence and clause punctuation) of min_chars..max_chars: the short text
    (UI strings, subtitles) a language that only the UDHR has would otherwise never be trained on."""
    if len(text) <= max_chars:
        return []
    parts = (p.strip() for p in _CLAUSE_END.split(text.replace("\n", " ")))
    return [p for p in parts if min_chars <= len(p) <= max_chars]


def source_examples(spec: str, hp: Hyperparameters, never: set[str]) -> pl.DataFrame:
    """(text, lang) pieces of one source: held-out text dropped, pieces and clauses cut, each language sampled down
    to max_pieces_per_language and repeated up to min_pieces_per_language."""
    texts = load_texts(spec).unique(maintain_order=True).filter(~pl.col("text").is_in(list(never)))
    texts = texts.with_columns(pl.col("lang").replace(LABEL_MERGES))
    rows = [
        (piece, lang)
        for text, lang in texts.iter_rows()
        for piece in pieces(text, hp.max_piece_chars) + clauses(text, hp.min_clause_chars, hp.max_clause_chars)
    ]
    examples = pl.DataFrame(rows, schema={"text": pl.String, "lang": pl.String}, orient="row")
    examples = examples.filter(~pl.col("text").is_in(list(never))).unique(maintain_order=True)
    parts = []
    for (lang,), group in examples.group_by("lang", maintain_order=True):
        if group.height > hp.max_pieces_per_language:
            group = group.sample(hp.max_pieces_per_language, seed=hp.seed)
        times = max(1, -(-hp.min_pieces_per_language // group.height))
        parts.append(pl.concat([group] * times))
    return pl.concat([examples.clear(), *parts]).with_columns(source=pl.lit(spec))  # a source all held out adds nothing


def never_trained_on(sources: list[str]) -> tuple[str, ...]:
    """The text sources whose text is dropped from training on `sources`."""
    return NEVER_TRAINED_ON + (CATALOGS_NEVER_TRAINED_ON if any(s.startswith("catalogs:") for s in sources) else ())


def training_examples(sources: list[str], hp: Hyperparameters) -> pl.DataFrame:
    """(text, lang) training pieces from all sources, held-out text removed, each source's languages balanced.
    The first source names the languages every other source may add to; a language no source before has gets a
    label only with min_texts_new_language distinct texts (a few CLDR month names are not enough to learn from)."""
    if held_out := [s for s in sources if s.startswith("gettext:")]:
        raise ValueError(f"cannot train on {', '.join(held_out)}: the gettext catalogs are reserved for evaluation (see langid.texts)")
    never = set()
    for spec in never_trained_on(sources):
        try:
            never.update(load_texts(spec)["text"].to_list())
        except FileNotFoundError as e:  # no Firefox corpus here: nothing of it can be trained on either
            log.warning("%s", e)
    frames, known = [], set()
    for spec in sources:
        examples = source_examples(spec, hp, never)
        if known:
            distinct = examples.unique("text").group_by("lang").len()
            enough = distinct.filter(pl.col("len") >= hp.min_texts_new_language)["lang"].to_list()
            examples = examples.filter(pl.col("lang").is_in(list(known | set(enough))))
        known |= set(examples["lang"].unique().to_list())
        frames.append(examples)
    examples = pl.concat(frames)
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


CLDR_LICENSE = "Unicode License v3 (CLDR data, as shipped in the babel package, BSD-3-Clause)"
FIREFOX_LICENSE = "MPL-2.0 (Mozilla Firefox localization communities)"


def _sha256_of_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def provenance(spec: str) -> dict:
    """Where a source's text comes from: the sha256 of its file (for a folder or a package's data files, of the
    list of `name<TAB>sha256` lines, sorted by name) and its license."""
    if spec.startswith("udhr:"):
        from schemas.text.udhr import UDHR_PATH, udhr_provenance

        return {"sha256": hashlib.sha256(UDHR_PATH.read_bytes()).hexdigest(), "license": udhr_provenance(UDHR_PATH)["license"]}
    if spec.startswith("firefox:"):
        from langid.texts import firefox_folder

        return {"sha256": _sha256_of_files(sorted(firefox_folder().glob("*-eng_Latn.parquet"))), "license": FIREFOX_LICENSE}
    if spec.startswith("cldr:"):
        import babel
        import babel.localedata

        files = sorted(Path(babel.localedata._dirname).glob("*.dat"))
        return {"sha256": _sha256_of_files(files), "license": CLDR_LICENSE, "package": f"babel=={babel.__version__}"}
    if spec.startswith("catalogs:"):
        return catalogs_provenance()
    return {"sha256": hashlib.sha256(Path(spec).read_bytes()).hexdigest()}


def catalogs_provenance() -> dict:
    """sha256 of the `package/path<TAB>sha256` lines of the package catalogs (many share a file name), their
    licenses and package versions."""
    from importlib.metadata import PackageNotFoundError, version

    from langid.texts import CATALOG_PACKAGES, catalog_files

    digest = hashlib.sha256()
    for path in catalog_files():
        package = next(part for part in path.parts if part in CATALOG_PACKAGES)
        relative = "/".join(path.parts[path.parts.index(package):])
        digest.update(f"{relative}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    versions = []
    for package in CATALOG_PACKAGES:
        try:
            versions.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return {"sha256": digest.hexdigest(), "license": "; ".join(f"{p}: {l}" for p, l in CATALOG_PACKAGES.items()), "package": ", ".join(versions)}


def train(sources: list[str], output: Path, hp: Hyperparameters, quantize: bool = True, command: str | None = None) -> dict:
    examples = training_examples(sources, hp)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        write_fasttext_file(examples, train_file)
        train_file_sha256 = hashlib.sha256(train_file.read_bytes()).hexdigest()
        model, lr = train_robust(train_file, hp)
        if quantize:
            model.quantize(input=str(train_file), qnorm=True, retrain=True, cutoff=hp.quantize_cutoff, epoch=max(1, hp.epoch // 5), lr=lr)
        output.parent.mkdir(parents=True, exist_ok=True)
        model.save_model(str(output))
    counts = dict(examples.group_by("lang").len().sort("lang").iter_rows())
    per_source = examples.group_by("source").agg(examples=pl.len(), languages=pl.col("lang").n_unique())
    per_source = {row["source"]: row for row in per_source.to_dicts()}
    card = {
        "model": output.name,
        "sha256": hashlib.sha256(output.read_bytes()).hexdigest(),
        "labels": len(model.get_labels()),
        "command": command,
        "training_data": [
            {"source": s, **provenance(s), "examples": per_source[s]["examples"], "languages": per_source[s]["languages"]} for s in sources
        ],
        "heldout": "never trained on (by text, in every language): " + ", ".join(never_trained_on(sources))
        + "; UDHR articles 25-30, Firefox strings and CLDR keys of the held-out splits",
        "label_merges": LABEL_MERGES,
        "hyperparameters": {**asdict(hp), "lr_used": lr},
        "quantized": quantize,
        "examples": examples.height,
        "training_file_sha256": train_file_sha256,  # the same data (and thread=1, seed) give the same model
        "examples_per_language": counts,
    }
    output.with_suffix(".json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return card


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", help=f"text source (see langid.texts); repeatable (default: {' '.join(DEFAULT_SOURCES)})")
    parser.add_argument("--output", type=Path, default=MODEL_PATHS["bayling-lid"])
    parser.add_argument("--no-quantize", action="store_true")
    for name, value in asdict(Hyperparameters()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    hp = Hyperparameters(**{name: getattr(args, name) for name in asdict(Hyperparameters())})
    command = " ".join(["python -m langid.train", *(argv if argv is not None else sys.argv[1:])])
    card = train(args.data or DEFAULT_SOURCES, args.output, hp, quantize=not args.no_quantize, command=command)
    size = args.output.stat().st_size
    print(f"wrote {args.output} ({size / 1e6:.1f} MB): {card['labels']} languages, {card['examples']} training pieces, lr {card['hyperparameters']['lr_used']}")


if __name__ == "__main__":
    main()
