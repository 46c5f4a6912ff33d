"""Decontamination: nothing in the output may overlap an evaluation set.

Evaluation sets: the held-out UDHR articles 25-30 of every language (always: they are this corpus's validation
and test text), and every file the recipe lists under `decontamination.eval_sets` (Parquet or JSONL with a `text`
column or `src_text`/`tgt_text`, or plain text, one segment a line). What overlaps means, and the index that finds
it: schemas/text/overlap.py. Train rows only: the held-out splits are the evaluation text. The removed row's reason
names the evaluation set. A task checks each text once: its pivot texts recur in the pairs of all its languages.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from pipelines.batch import BatchFilter, RemovedRows
from schemas.text.overlap import EvalIndex, eval_index
from schemas.text.udhr import UDHR_PATH

# A task remembers which pivot texts it checked, up to this many: a bound on its memory, well above the distinct
# pivot texts of a task of tests/benchmarks/bench_build.py.
CHECKED_PIVOT_TEXTS = 100_000


class Decontaminate(BatchFilter):
    """`index_folder`: where the build keeps the evaluation index its tasks share (see `eval_index`)."""

    name = "decontaminate"

    def __init__(self, removed: RemovedRows, eval_sets: list = (), ngram: int = 13, corpus_path=UDHR_PATH,
                 index_folder: Path | None = None):  # fmt: skip
        super().__init__(removed)
        self.eval_sets = tuple(e if isinstance(e, str) else tuple(e) for e in eval_sets)  # paths or (name, path)
        self.ngram = ngram
        self.corpus_path = corpus_path
        self.index_folder = index_folder
        self._checked = pl.Series(dtype=pl.String)  # pivot texts checked by this task
        self._found: dict[str, tuple[str, str]] = {}  # the finding of each checked text that has one

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        index = eval_index(self.eval_sets, self.ngram, self.corpus_path, self.index_folder)
        frame = pl.from_arrow(batch.select(["split", "src_text", "tgt_text"]))
        is_train = frame["split"] == "train"
        train = frame if is_train.all() else frame.filter(is_train)
        self._check(index, train["tgt_text"], train["src_text"])
        none = pl.Series(dtype=pl.String).extend_constant(None, batch.num_rows)
        if not self._found:
            return pl.DataFrame({"reason": none, "detail": none})
        reason, detail = none.to_list(), none.to_list()
        rows = is_train.arg_true()
        found = pl.Series(list(self._found), dtype=pl.String).implode()
        for column in ("tgt_text", "src_text"):  # src last: its finding is the one reported when both overlap
            hits = train[column].is_in(found).arg_true()
            for row, text in zip(rows.gather(hits).to_list(), train[column].gather(hits).to_list()):
                name, how = self._found[text]
                reason[row] = f"overlap:{name}"
                detail[row] = f"{column} {how} an evaluation text of {name}"
        return pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})

    def _check(self, index: EvalIndex, pivot: pl.Series, other: pl.Series) -> None:
        """Checks each text once: a pivot text (English, Chinese) recurs in the pairs of every language of the task
        (in a multiway corpus, once per language), so those already checked are skipped. The
        finding is a function of the text alone. Up to CHECKED_PIVOT_TEXTS are kept, then it starts over."""
        if len(self._checked) > CHECKED_PIVOT_TEXTS:
            self._checked, self._found = pl.Series(dtype=pl.String), {}
        pivot = pivot.unique()
        pivot = pivot.filter(~pivot.is_in(self._checked.implode()))
        self._checked = pl.concat([self._checked, pivot], rechunk=False)
        texts = pl.concat([pivot, other.unique()])
        found = index.overlaps(texts)
        hits = [i for i, hit in enumerate(found) if hit]
        self._found.update(zip(texts.gather(hits).to_list(), (found[i] for i in hits)))
