"""`near_dedup`: a pair whose two sides together nearly repeat an earlier kept pair of the same direction (MinHash
LSH; pipelines/dedup.py says why not datatrove's four MinHash steps as they are)."""

from __future__ import annotations

import collections

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.batch import BatchFilter, RemovedRows, verdict_frame
from pipelines.dedup import KeptIds, KeyIndex, MinhashSigner, TextSignatures, by_direction, minhash_config


class NearDuplicateDedup(BatchFilter):
    """Drops a pair whose two sides together nearly repeat an earlier kept pair of the same direction (MinHash LSH
    on the pair's words; see the note above). The pair, not one side: a sentence may keep several different
    translations (that is `max_targets_per_source`'s job), but not several near-identical ones."""

    name = "near_dedup"

    def __init__(self, removed: RemovedRows, ngram: int = 5, num_buckets: int = 14, hashes_per_bucket: int = 8, seed: int = 1):
        super().__init__(removed)
        self.signer = MinhashSigner(minhash_config(ngram, num_buckets, hashes_per_bucket, seed))

    def run(self, data, rank: int = 0, world_size: int = 1):
        self._index: dict[tuple[str, str], KeyIndex] = collections.defaultdict(KeyIndex)  # per task and direction
        self._kept_ids = KeptIds()
        self._signatures = TextSignatures(self.signer)
        yield from super().run(data, rank, world_size)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        ids = pl.from_arrow(batch.column("id"))
        frame = pl.from_arrow(batch.select(["src_lang", "tgt_lang", "src_text", "tgt_text"])).with_row_index("row")
        dropped, named = [], []
        for (src_lang, tgt_lang), part in by_direction(frame):
            table, (src, tgt) = self._signatures.rows_of([(part["src_text"], src_lang), (part["tgt_text"], tgt_lang)])
            none = self.signer.NONE
            signed = np.flatnonzero((table[src, 0] != none) | (table[tgt, 0] != none))  # pairs with no word at all are never near-duplicates
            if not len(signed):
                continue
            rows = part["row"].to_numpy()[signed]
            keys = self.signer.pair_bucket_keys(table, src[signed], tgt[signed])
            index = self._index[(src_lang, tgt_lang)]
            earlier = index.find(keys)  # (pairs, buckets): the kept pair of an earlier batch, or -1
            owner = earlier.max(axis=1)  # a key is in the index once: one earlier kept pair at most per key
            # where several keys match several kept pairs, the earliest is named
            several = np.flatnonzero((earlier >= 0).sum(axis=1) > 1)
            owner[several] = np.where(earlier[several] >= 0, earlier[several], np.iinfo(np.int64).max).min(axis=1)
            keep = owner < 0
            in_batch, order = self.within_batch(keys, keep)
            place = np.cumsum(keep) - 1 + len(self._kept_ids)
            self._kept_ids.extend(ids.gather(rows[keep]))
            pair = order // keys.shape[1]  # of each key in sorted order
            kept = order[keep[pair]]
            index.add(keys.ravel()[kept], place[pair[keep[pair]]], ordered=True)
            drop = np.flatnonzero(~keep)
            dropped.append(rows[drop])
            named.append(np.where(owner[drop] >= 0, owner[drop], place[in_batch[drop]]))
        dropped_rows = np.concatenate(dropped) if dropped else np.empty(0, dtype=np.int64)
        names = self._kept_ids.at(np.concatenate(named) if named else np.empty(0, dtype=np.int64))
        return verdict_frame(batch.num_rows, dropped_rows, pl.repeat("near_duplicate", len(dropped_rows), dtype=pl.String, eager=True), "near-duplicate of " + names)

    @staticmethod
    def within_batch(keys: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drops (in `keep`), in reading order, the pairs that share a key with an earlier kept pair of the batch,
        and gives for each the earliest such pair (-1 for the others), and the order that sorts the keys (flat).
        Only pairs sharing a key with another pair of the batch need a look, one by one: a pair dropped here does
        not keep later ones out."""
        flat = keys.ravel()
        order = np.argsort(flat)
        ordered = flat[order]
        same = ordered[1:] == ordered[:-1]
        repeated = np.zeros(len(flat), dtype=bool)
        repeated[order[1:][same]] = True
        repeated[order[:-1][same]] = True
        repeated = repeated.reshape(keys.shape)
        in_batch = np.full(len(keys), -1, dtype=np.int64)
        first_in_batch: dict[int, int] = {}  # key -> the earliest kept pair of this batch that has it
        for i in np.flatnonzero(keep & repeated.any(axis=1)).tolist():
            shared = keys[i][repeated[i]].tolist()
            matches = [first_in_batch[k] for k in shared if k in first_in_batch]
            if matches:
                keep[i], in_batch[i] = False, min(matches)
            else:
                for k in shared:
                    first_in_batch.setdefault(k, i)
        return in_batch, order
