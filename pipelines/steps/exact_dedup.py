"""`exact_dedup`: a pair that repeats an earlier one (up to case and spacing), and pairs over the cap on how often one
sentence may be paired. Tasks own whole languages (see read_pairs.languages_of_task), so a task sees every copy of
a pair and the first copy in reading order is kept, whatever the number of tasks."""

from __future__ import annotations

import collections

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.batch import BatchFilter, RemovedRows, verdict_frame
from pipelines.dedup import KeptIds, KeyIndex, KeyValues, Occurrences, dedup_keys, directions


class ExactPairDedup(BatchFilter):
    name = "exact_dedup"

    def __init__(self, removed: RemovedRows, max_pairs_per_sentence: int = 0):
        super().__init__(removed)
        self.max_pairs_per_sentence = max_pairs_per_sentence  # 0: no cap

    def run(self, data, rank: int = 0, world_size: int = 1):
        # per task (copies of a pair never span tasks) and direction (keys of two directions never match: a
        # direction's arrays are a fraction of a task's, a binary search in them stays in cache)
        self._first_ids: dict[int, KeyIndex] = collections.defaultdict(KeyIndex)  # pair key -> place of the first copy
        self._side_count: dict[int, KeyValues] = collections.defaultdict(KeyValues)  # sentence key -> its pairs
        self._ids = KeptIds()
        yield from super().run(data, rank, world_size)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        lang, pair_keys, src_keys, tgt_keys = dedup_keys(pl.from_arrow(batch.select(["src_lang", "tgt_lang", "src_text", "tgt_text"])))
        ids = pl.from_arrow(batch.column("id"))
        copies, named, capped, sides = [], [], [], []
        for direction, rows in directions(lang):
            keys = pair_keys[rows]
            earlier = self._first_ids[direction].find(keys)  # the first copy, where an earlier batch had it; else -1
            first_in_batch = Occurrences(keys).first()
            duplicate = (earlier >= 0) | (first_in_batch != np.arange(len(keys)))
            originals = np.flatnonzero(~duplicate)
            # the originals' places among the kept ids: a copy of a pair first seen in this batch names it from there
            place = np.cumsum(~duplicate) - 1 + len(self._ids)
            self._first_ids[direction].add(keys[originals], place[originals])
            self._ids.extend(ids.gather(rows[originals]))
            copy = np.flatnonzero(duplicate)
            copies.append(rows[copy])
            named.append(np.where(earlier[copy] >= 0, earlier[copy], place[first_in_batch[copy]]))
            if self.max_pairs_per_sentence:
                dropped, side = self.capped(self._side_count[direction], src_keys[rows[originals]], tgt_keys[rows[originals]])
                capped.append(rows[originals[dropped]])
                sides.extend(side)
        copies, named = np.concatenate(copies), np.concatenate(named)
        reason, detail = ["duplicate"] * len(copies), "same pair as " + self._ids.at(named)
        if sides:
            reason += ["too_many_translations"] * len(sides)
            detail = detail.append("the " + pl.Series(sides, dtype=pl.String) + f" sentence already has {self.max_pairs_per_sentence} pairs")
        return verdict_frame(batch.num_rows, np.concatenate([copies, *capped]), pl.Series(reason, dtype=pl.String), detail)

    def capped(self, counts: KeyValues, src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Of pairs in reading order, those whose source or target sentence already has the cap's number of pairs,
        and which side it is; a pair dropped here does not count against its sentences. A pair is surely kept when
        its sentences' counts plus their earlier occurrences in the batch stay below the cap (almost all, on
        real corpora); only the others are looked at one by one, in order."""
        cap, m = self.max_pairs_per_sentence, len(src)
        sentences = np.concatenate([src, tgt])  # source and target keys never meet (see dedup_keys): one sort for both
        seen = Occurrences(sentences)
        before = counts.get(sentences)
        sure = before + seen.before() < cap
        kept = sure[:m] & sure[m:]
        unsure = np.flatnonzero(~kept)
        dropped, side = [], []
        if len(unsure):
            # for the others: how many surely kept pairs of the batch came before them with the same sentence
            before += seen.before(np.concatenate([kept, kept]))
            src_before, tgt_before = before[:m], before[m:]
            added: dict[int, int] = {}  # sentence key -> pairs kept among the others so far
            for i in unsure.tolist():
                s, t = int(src[i]), int(tgt[i])
                src_count, tgt_count = src_before[i] + added.get(s, 0), tgt_before[i] + added.get(t, 0)
                if src_count >= cap or tgt_count >= cap:
                    dropped.append(i)
                    side.append("source" if src_count >= cap else "target")
                else:
                    kept[i] = True
                    added[s], added[t] = added.get(s, 0) + 1, added.get(t, 0) + 1
        counts.add(np.concatenate([src[kept], tgt[kept]]))
        return np.array(dropped, dtype=np.int64), side
