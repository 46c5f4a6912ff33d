"""How many evaluation items occur in a training dataset version, so no score is reported over leaked items
without saying so.

Texts are compared the way the build decontaminates (the matcher of schemas/text/overlap.py): as lower-cased words,
an item leaks when a training text equals one of its texts, quotes it whole, or shares a run of `ngram` words
with it. Two passes: every training text (each message of each train row) is scanned once against an index of
all evaluation texts, which finds the few training texts that overlap anything; then those few are indexed and
every evaluation text is looked up in them, which tells exactly which items leaked (a training text may hold
several).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq

from schemas.text.overlap import MIN_EXACT_CHARS, MIN_QUOTE_WORDS, EvalIndex, word_lists

DEFAULT_NGRAM = 13  # the build's default (recipe decontamination.ngram)
TRAIN_GLOBS = ("data/train-*.parquet", "data/*/train-*.parquet")


def train_files(spec: str) -> list[Path]:
    """The train shards of a local dataset version (the folder with data/ and manifest.json) or of
    `hf://datasets/<org>/<name>@<revision>` (fetched into the Hub cache), in either layout a version has:
    data/train-*.parquet, or data/<config>/train-*.parquet (one folder per config, as builds write now)."""
    if spec.startswith("hf://"):
        from huggingface_hub import snapshot_download

        repo, _, revision = spec.removeprefix("hf://datasets/").partition("@")
        if not spec.startswith("hf://datasets/") or repo.count("/") != 1:
            raise ValueError(f"--train-data {spec!r} should look like hf://datasets/<org>/<name>@<revision>")
        folder = Path(
            snapshot_download(
                repo, repo_type="dataset", revision=revision or None, allow_patterns=list(TRAIN_GLOBS)
            )
        )
    else:
        folder = Path(spec)
        if not folder.is_dir():
            raise FileNotFoundError(f"--train-data: no such folder: {spec}")
    files = sorted({file for pattern in TRAIN_GLOBS for file in folder.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"--train-data {spec}: no {' or '.join(TRAIN_GLOBS)} shards in {folder}")
    return files


def training_texts(files: Iterable[Path], batch_rows: int = 20_000) -> Iterator[list[str]]:
    """The content of every message of every row, in batches."""
    for file in files:
        parquet = pq.ParquetFile(file)
        if "messages" not in parquet.schema_arrow.names:
            raise ValueError(f"{file}: a training shard needs a messages column; has {parquet.schema_arrow.names}")
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=["messages"]):
            yield [
                message["content"]
                for messages in batch.column(0).to_pylist()
                for message in messages or ()
                if message.get("content")
            ]


def leaked_texts(eval_texts: list[str], train_batches: Iterable[list[str]], ngram: int = DEFAULT_NGRAM) -> set[str]:
    """The evaluation texts that some training text equals, quotes whole, or shares an `ngram`-word run with."""
    unique = sorted(set(eval_texts))
    if not unique:
        return set()
    index = EvalIndex({"eval": unique}, ngram)
    candidates = [text for batch in train_batches for text, hit in zip(batch, index.overlaps(batch)) if hit]
    if not candidates:
        return set()
    # Second pass over the few overlapping training texts: n-gram runs and equality are symmetric, so an index
    # of the candidates answers them for each evaluation text; a quote of a short evaluation text is a substring
    # test on the candidates' words.
    reverse = EvalIndex({"train": candidates}, ngram)
    found = set()
    canonical_candidates = [f" {' '.join(words)} " for words in word_lists(candidates)["words"].to_list()]
    for text, words, hit in zip(unique, word_lists(unique)["words"].to_list(), reverse.overlaps(unique)):
        canonical = f" {' '.join(words)} "
        if (
            hit
            and hit[1] != "quotes"
            or (
                words
                and len(words) < ngram
                and (
                    (len(words) >= MIN_QUOTE_WORDS and any(canonical in c for c in canonical_candidates))
                    or (len(canonical.replace(" ", "")) >= MIN_EXACT_CHARS and canonical in canonical_candidates)
                )
            )
        ):  # "quotes" there means the evaluation text quotes a training text: not a leak
            found.add(text)
    return found


def count_leaked(items: dict[str, list[list[str]]], train_data: str, ngram: int = DEFAULT_NGRAM) -> dict[str, dict]:
    """For each group (a direction, a task): how many of its items (each a list of texts: source and reference,
    question and answer) have a text that occurs in the training data, and the first few of them."""
    all_texts = [text for group in items.values() for item in group for text in item if text]
    leaked = leaked_texts(all_texts, training_texts(train_files(train_data)), ngram)
    report = {}
    for group, group_items in items.items():
        hits = [item for item in group_items if any(text in leaked for text in item)]
        report[group] = {
            "items": len(group_items),
            "leaked": len(hits),
            "examples": [item[0][:200] for item in hits[:3]],
        }
    return report
