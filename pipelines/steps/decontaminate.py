"""Decontamination: nothing in the output may overlap an evaluation set.

Evaluation sets: the held-out UDHR articles 25-30 of every language (always: they are this corpus's validation
and test text), and every file the recipe lists under `decontamination.eval_sets` (Parquet or JSONL with a `text`
column or `src_text`/`tgt_text`, or plain text, one segment a line). A text overlaps an evaluation set when,
after case and spacing are folded, it equals an evaluation text, quotes a long one whole, or shares a word
n-gram of `ngram` words with one (Han, kana and Hangul characters count as words). Train rows only: the
held-out splits are the evaluation text. The removed row's reason names the evaluation set.
"""

from __future__ import annotations

import functools
from pathlib import Path

import ahocorasick
import polars as pl
import pyarrow as pa
import regex

from pipelines.corpus import UDHR_PATH, load_udhr
from pipelines.steps.base import BatchFilter, RemovedRows

MIN_QUOTE_CHARS = 32
_WORD = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]|\w+")


def fold(text: str) -> str:
    return " ".join(text.lower().split())


def ngrams(text: str, n: int) -> set[int]:
    words = _WORD.findall(text.lower())
    return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}


def read_eval_texts(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"evaluation set not found: {path}")
    if file.suffix in (".parquet", ".jsonl", ".json"):
        frame = pl.read_parquet(file) if file.suffix == ".parquet" else pl.read_ndjson(file)
        columns = [c for c in ("text", "src_text", "tgt_text", "sentence") if c in frame.columns]
        if not columns:
            raise ValueError(f"{path}: an evaluation set needs a text, src_text/tgt_text or sentence column; has {frame.columns}")
        return [t for c in columns for t in frame[c].drop_nulls().to_list()]
    return [line for line in file.read_text(encoding="utf-8").split("\n") if line.strip()]


class EvalIndex:
    def __init__(self, name: str, texts: list[str], n: int):
        self.name = name
        self.n = n
        self.exact = {fold(t) for t in texts}
        self.grams = set().union(*(ngrams(t, n) for t in texts)) if texts else set()
        self.quotes = ahocorasick.Automaton()
        for text in self.exact:
            if len(text) >= MIN_QUOTE_CHARS:
                self.quotes.add_word(text, text)
        self.has_quotes = len(self.quotes) > 0
        if self.has_quotes:
            self.quotes.make_automaton()

    def overlap(self, text: str) -> str | None:
        folded = fold(text)
        if folded in self.exact:
            return "equal"
        if self.has_quotes and next(self.quotes.iter(folded), None) is not None:
            return "quote"
        if self.grams and not self.grams.isdisjoint(ngrams(text, self.n)):
            return f"{self.n}-gram"
        return None


@functools.cache
def eval_indexes(eval_sets: tuple[str, ...], n: int, corpus_path=UDHR_PATH) -> tuple[EvalIndex, ...]:
    heldout = load_udhr(corpus_path).filter(pl.col("split") != "train")["text"].to_list()
    return (EvalIndex("udhr-heldout", heldout, n), *(EvalIndex(Path(p).name, read_eval_texts(p), n) for p in eval_sets))


class Decontaminate(BatchFilter):
    name = "decontaminate"

    def __init__(self, removed: RemovedRows, eval_sets: list[str] = (), ngram: int = 13, corpus_path=UDHR_PATH, text_columns=("src_text", "tgt_text")):
        super().__init__(removed)
        self.eval_sets = tuple(eval_sets)
        self.ngram = ngram
        self.corpus_path = corpus_path
        self.text_columns = tuple(text_columns)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        indexes = eval_indexes(self.eval_sets, self.ngram, self.corpus_path)
        frame = pl.from_arrow(batch)
        train = frame["split"].to_list() if "split" in frame.columns else ["train"] * frame.height
        columns = [frame[c].to_list() for c in self.text_columns]
        reason, detail = [], []
        for i in range(frame.height):
            found = None
            if train[i] == "train":
                for index in indexes:
                    for column, texts in zip(self.text_columns, columns):
                        kind = index.overlap(texts[i])
                        if kind:
                            found = (f"overlap:{index.name}", f"{column} {kind} an evaluation text of {index.name}")
                            break
                    if found:
                        break
            reason.append(found[0] if found else None)
            detail.append(found[1] if found else None)
        return pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})
