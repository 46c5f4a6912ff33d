"""Language identification of both sides of every pair (langid/ does the checking)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from langid.identify import LanguageIdentifier
from pipelines.batch import BatchFilter, RemovedRows, write_parquet_atomic
from schemas.language_codes import PIVOTS

# Verdicts kept per task: up to this many for each pivot language, and this many for all other languages together
# (some 50 MB of sentences each).
VERDICTS_KEPT = 250_000
VERDICT_SCHEMA = pa.schema([("text", pa.string()), ("failed_check", pa.string()), ("detail", pa.string())])


class LanguageIdFilter(BatchFilter):
    """Drops a pair when a side is shown not to be in its labelled language: a model sure enough of another
    language (per-language reject thresholds by length, see langid.identify), or letters in another script. The
    removed row says which check failed and what the models said.

    `shared_verdicts`: a folder where the build's tasks share their pivot-language verdicts (a file per language;
    the first task to finish writes it, later tasks start from it): the pivot stage identifies the English side of
    the eng_Latn <-> zho_Hans pairs, which a multiway corpus repeats in every language, so that no task of the pairs
    stage identifies them again (tests/benchmarks/bench_build.py)."""

    name = "language_id"

    def __init__(self, removed: RemovedRows, models: str | None = None, global_threshold: float | None = None,
                 min_script_fraction: float = 0.25, min_model_chars: int = 1, shared_verdicts: Path | None = None):  # fmt: skip
        super().__init__(removed)
        self.shared_verdicts = Path(shared_verdicts) if shared_verdicts else None
        self.min_model_chars = min_model_chars
        self.models = models
        self.global_threshold = global_threshold
        self.min_script_fraction = min_script_fraction
        self._identifier: LanguageIdentifier | None = None
        self._verdicts: dict[str, dict[str, tuple[str | None, str]]] = {}
        self._others_kept = 0

    @property
    def identifier(self) -> LanguageIdentifier:
        if self._identifier is None:  # loaded in the task's process, not pickled with the step
            self._identifier = LanguageIdentifier.load(self.models, self.global_threshold, self.min_script_fraction, self.min_model_chars)
        return self._identifier

    def __getstate__(self):
        return {**self.__dict__, "_identifier": None, "_verdicts": {}, "_others_kept": 0}

    def run(self, data, rank: int = 0, world_size: int = 1):
        shared_files = {lang: self.shared_verdicts / f"{lang}.parquet" for lang in PIVOTS} if self.shared_verdicts else {}
        for lang, path in shared_files.items():
            if path.is_file():
                shared = pl.read_parquet(path)
                self._verdicts[lang] = dict(zip(shared["text"].to_list(), zip(shared["failed_check"].to_list(), shared["detail"].to_list())))
        yield from super().run(data, rank, world_size)
        for lang, path in shared_files.items():
            if self._verdicts.get(lang) and not path.is_file():
                texts, answers = zip(*self._verdicts[lang].items())
                failed, details = zip(*answers)
                # by polars: pa.table of Python lists imports pandas, a slow import (the pivot stage runs in the driver)
                verdicts = pl.DataFrame([pl.Series(texts, dtype=pl.String), pl.Series(failed, dtype=pl.String), pl.Series(details, dtype=pl.String)],
                                        schema=VERDICT_SCHEMA.names)  # fmt: skip
                write_parquet_atomic(path, verdicts.to_arrow().cast(VERDICT_SCHEMA), work=True)

    def verdicts(self, texts: list[str], lang: str) -> list[tuple[str | None, str]]:
        """The failed check (None: passed) and detail of each text. A verdict depends only on the text and its
        language, and texts repeat: a multiway source (Firefox, FLORES, UDHR) gives every language of a task the
        same English and Chinese sentences, and a corpus repeats its own strings (UI strings above all). So verdicts
        are kept for the task and each text is identified once; the verdicts are the same."""
        known = self._verdicts.setdefault(lang, {})
        answers = [known.get(t) for t in texts]
        new = list(dict.fromkeys(t for t, answer in zip(texts, answers) if answer is None))
        if not new:
            return answers
        verdict = self.identifier.check(new, lang)
        found = dict(zip(new, zip(verdict.failed_check, verdict.detail)))
        self.keep(lang, found)
        return [answer or found[t] for t, answer in zip(texts, answers)]

    def keep(self, lang: str, found: dict) -> None:
        """Keep new verdicts within VERDICTS_KEPT: a pivot language's until its share is full; the other languages
        share one, and start over when it is full (their texts recur in nearby batches: a text's X -> eng_Latn
        and X -> zho_Hans pairs)."""
        known = self._verdicts[lang]
        if lang in PIVOTS:
            if len(known) + len(found) <= VERDICTS_KEPT:
                known.update(found)
            return
        if self._others_kept + len(found) > VERDICTS_KEPT:
            self._verdicts = {code: kept if code in PIVOTS else {} for code, kept in self._verdicts.items()}
            self._others_kept = 0
        if len(found) <= VERDICTS_KEPT:
            self._verdicts[lang].update(found)
            self._others_kept += len(found)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        frame = pl.from_arrow(batch.select(["src_lang", "src_text", "tgt_lang", "tgt_text"])).with_row_index("row")
        reason = [None] * batch.num_rows
        detail = [None] * batch.num_rows
        # The pivot side first: its texts repeat across the languages of a task, so most of its verdicts are known.
        # The other side is identified only where the pivot side passed: a pair fails if either side does, and a
        # pivot text that fails, fails in every language it is paired with.
        self.check_side(frame, "tgt", reason, detail)
        self.check_side(frame.filter(pl.Series([r is None for r in reason])), "src", reason, detail)
        return pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})

    def check_side(self, frame: pl.DataFrame, side: str, reason: list, detail: list) -> None:
        for (lang,), group in frame.group_by(f"{side}_lang"):
            answers = self.verdicts(group[f"{side}_text"].to_list(), lang)
            rows = group["row"].to_list()
            for i in [i for i, (failed, _) in enumerate(answers) if failed]:
                reason[rows[i]] = answers[i][0]
                detail[rows[i]] = f"{side}: {answers[i][1]}"
