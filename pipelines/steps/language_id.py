"""Language identification of both sides of every pair (langid/ does the checking)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from langid.identify import LanguageIdentifier
from pipelines.steps.base import BatchFilter, RemovedRows


class LanguageIdFilter(BatchFilter):
    """Drops a pair unless both sides are confirmed to be in their labelled language: by a fastText model (with
    per-language thresholds) and the script where a model knows the language, by the script alone where none
    does. The removed row says which check failed and what the models said."""

    name = "language_id"

    def __init__(self, removed: RemovedRows, models: str | None = None, global_threshold: float | None = None,
                 min_script_fraction: float = 0.5, min_model_chars: int = 20):  # fmt: skip
        super().__init__(removed)
        self.min_model_chars = min_model_chars
        self.models = models
        self.global_threshold = global_threshold
        self.min_script_fraction = min_script_fraction
        self._identifier: LanguageIdentifier | None = None

    @property
    def identifier(self) -> LanguageIdentifier:
        if self._identifier is None:  # loaded in the task's process, not pickled with the step
            self._identifier = LanguageIdentifier.load(self.models, self.global_threshold, self.min_script_fraction, self.min_model_chars)
        return self._identifier

    def __getstate__(self):
        return {**self.__dict__, "_identifier": None}

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        frame = pl.from_arrow(batch).with_row_index("row")
        reason = [None] * batch.num_rows
        detail = [None] * batch.num_rows
        for side in ("tgt", "src"):  # src last: its verdict is the one kept when both sides fail
            for (lang,), group in frame.group_by(f"{side}_lang"):
                verdict = self.identifier.check(group[f"{side}_text"].to_list(), lang)
                for row, failed, text in zip(group["row"], verdict.failed_check, verdict.detail):
                    if failed:
                        reason[row] = failed
                        detail[row] = f"{side}: {text}"
        return pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})
