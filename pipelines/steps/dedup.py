"""Deduplication of pairs: exact (with a cap on how often one sentence may be paired), then near-duplicates (MinHash).

Tasks own whole languages (see read_pairs.languages_of_task), so a task sees every copy of a pair and the first
copy in reading order is kept, whatever the number of tasks.
"""

from __future__ import annotations

import collections
import tempfile

import numpy as np
import polars as pl
import pyarrow as pa
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature, _mersenne_prime
from datatrove.utils.hashing import HashConfig, create_hash_func
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import WordTokenizer

from pipelines.steps.base import BatchFilter, RemovedRows
from pipelines.steps.decontaminate import word_lists
from pipelines.steps.normalize import folded

SIGNATURES_KEPT = 65_536  # texts per task whose MinHash signatures are kept: 59 MB with 112 hashes


def dedup_keys(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """64-bit keys of the pair and of each side: texts that differ only in letter case or spacing are the same.
    polars' hash, computed for the whole batch in Rust: keys never leave the task, so a hash that may change
    between polars versions does no harm, and blake2b per row in Python was two thirds of this step's time. Two
    different pairs of a task share a key with probability about n**2 / 2**65 (1e-9 for the 200,000 pairs of a
    Firefox task), as MinHash's bucket keys below."""
    sides = frame.select(lang=pl.concat_str(["src_lang", "tgt_lang"], separator="\x1f"), src=folded(pl.col("src_text")), tgt=folded(pl.col("tgt_text")))
    keys = sides.select(
        pair=pl.concat_str(["lang", "src", "tgt"], separator="\x1f").hash(0),
        src=pl.concat_str(["lang", pl.lit("s"), "src"], separator="\x1f").hash(0),
        tgt=pl.concat_str(["lang", pl.lit("t"), "tgt"], separator="\x1f").hash(0),
    )
    return keys["pair"].to_numpy(), keys["src"].to_numpy(), keys["tgt"].to_numpy()


class ExactPairDedup(BatchFilter):
    name = "exact_dedup"

    def __init__(self, removed: RemovedRows, max_pairs_per_sentence: int = 0):
        super().__init__(removed)
        self.max_pairs_per_sentence = max_pairs_per_sentence  # 0: no cap

    def run(self, data, rank: int = 0, world_size: int = 1):
        self._first_ids = KeyIndex()  # pair key -> the first copy, per task: copies of a pair never span tasks
        self._ids: list[str] = []
        self._side_count: dict[int, int] = {}
        yield from super().run(data, rank, world_size)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        ids = batch.column("id").to_pylist()
        pair_keys, src_keys, tgt_keys = dedup_keys(pl.from_arrow(batch.select(["src_lang", "tgt_lang", "src_text", "tgt_text"])))
        reason: list[str | None] = [None] * len(ids)
        detail: list[str | None] = [None] * len(ids)
        earlier = self._first_ids.find(pair_keys)  # the first copy, where an earlier batch had it; else -1
        _, first, inverse = np.unique(pair_keys, return_index=True, return_inverse=True)
        first_in_batch = first[inverse.ravel()]
        duplicate = (earlier >= 0) | (first_in_batch != np.arange(len(ids)))
        for i in np.flatnonzero(duplicate).tolist():
            reason[i] = "duplicate"
            detail[i] = f"same pair as {self._ids[earlier[i]] if earlier[i] >= 0 else ids[first_in_batch[i]]}"
        originals = np.flatnonzero(~duplicate)
        self._first_ids.add(pair_keys[originals], np.arange(len(self._ids), len(self._ids) + len(originals), dtype=np.int64))
        self._ids.extend(ids[i] for i in originals.tolist())
        cap, count = self.max_pairs_per_sentence, self._side_count
        if cap:  # in reading order: a pair dropped here does not count against its sentences
            for i, src, tgt in zip(originals.tolist(), src_keys[originals].tolist(), tgt_keys[originals].tolist()):
                src_count, tgt_count = count.get(src, 0), count.get(tgt, 0)
                if src_count >= cap or tgt_count >= cap:
                    reason[i] = "too_many_translations"
                    detail[i] = f"the {'source' if src_count >= cap else 'target'} sentence already has {cap} pairs"
                else:
                    count[src], count[tgt] = src_count + 1, tgt_count + 1
        return pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})


# --- near-duplicates -------------------------------------------------------------------------------------------
#
# Why not datatrove's four MinHash steps as they are: they exchange files between four separate runs (signatures
# per task; buckets with one task per bucket; one clustering task; a filter that re-reads the very same documents
# in the same order), while the pairs stage reads its sources once and streams batches to the writer. Running the
# four inside one task would mean holding or re-reading every pair of a language. And datatrove's clustering keeps
# the union-by-size root of a cluster, which depends on the order matches are read, not a rule one can state.
# So: datatrove's stage 1 gives the signatures (MinhashConfig, the permutations of MinhashDedupSignature and its
# formula, computed for a whole batch at once; the same numbers its get_signature gives), and the bucket match of
# stages 2-4 is done in memory while streaming: a pair is a near-duplicate when one of its bucket keys equals one
# of an earlier kept pair of the same direction, and the earliest such pair is named as the one kept. Tasks own
# whole languages and read them in the same order whatever the task count, so the same pairs are kept.


class Words(WordTokenizer):
    """Words as decontamination compares them (lower-cased; Han, kana and Hangul characters count as words;
    punctuation does not), in the tokenizer interface datatrove's MinHash steps ask for."""

    def word_tokenize(self, text: str) -> list[str]:
        return word_lists([text])["words"][0].to_list()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError("near-duplicate detection needs words only")


def minhash_config(ngram: int = 5, num_buckets: int = 14, hashes_per_bucket: int = 8, seed: int = 1) -> MinhashConfig:
    # Words() already lower-cases and drops punctuation: datatrove's own text normalization stays off, so that a
    # shingle is exactly the n words we see.
    plain = TextNormConfig(lowercase=False, norm_whitespace=False, remove_punctuation=False, norm_unicode_diacritics=False, norm_numbers=False)
    return MinhashConfig(n_grams=ngram, num_buckets=num_buckets, hashes_per_bucket=hashes_per_bucket, seed=seed,
                         norm_config=plain, hash_config=HashConfig(precision=64, hash_fc="xxhash"))  # fmt: skip


class MinhashSigner:
    """MinHash signatures of many texts at once, with datatrove's stage-1 parameters and formula.

    A pair's shingles are the word n-grams of each side (no n-gram spans the two sides); a side with fewer than n
    words is one shingle of all its words (datatrove gives it none: two pairs of short sides would never be
    compared). So a pair's signature is the elementwise minimum of its sides' signatures (the MinHash of a union),
    and a text is signed once however many pairs it is in (see TextSignatures). A shingle's hash mixes its words'
    hashes (datatrove's hash function, once per distinct word of a batch), where datatrove hashes the joined
    n-gram string: a Python call per n-gram, which cost more than all the rest here (see
    tests/benchmarks/bench_dedup.py)."""

    NONE = np.iinfo(np.uint64).max  # the signature values of a text without words (a real one is below 2**61 - 1)

    def __init__(self, config: MinhashConfig):
        self.config = config
        # output_folder is never written: only its permutation parameters and hashing are used
        self.stage1 = MinhashDedupSignature(output_folder=tempfile.gettempdir(), config=config, language=Words())
        self.hash = create_hash_func(config.hash_config, input_type=bytes)  # xxhash 4 hashes bytes, not str
        self.num_hashes = config.num_buckets * config.hashes_per_bucket

    def shingles(self, texts: pl.Series | list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, owner): the shingle hashes of every text and the text each belongs to, by text."""
        n = self.config.n_grams
        words = word_lists(texts).with_columns(count=pl.col("words").list.len())
        flat = words.select(pl.col("words").explode().drop_nulls())["words"]
        unique = flat.unique(maintain_order=True)
        word_hash = np.fromiter((self.hash(w.encode()) for w in unique), dtype=np.uint64, count=len(unique))
        codes = flat.to_frame("w").join(unique.to_frame("w").with_row_index("code"), on="w", how="left", maintain_order="left")["code"]
        hashes = word_hash[codes.to_numpy()]
        counts = words["count"].to_numpy().astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        windows = np.where(counts >= n, counts - n + 1, (counts > 0).astype(np.int64))  # shingles per text
        text = np.repeat(np.arange(len(counts)), windows)
        starts = offsets[text] + (np.arange(windows.sum()) - np.repeat(np.cumsum(windows) - windows, windows))
        width = np.minimum(counts[text], n)
        with np.errstate(over="ignore"):  # a shingle: its words' hashes mixed in order, mod 2**64
            shingle = np.zeros(len(starts), dtype=np.uint64)
            for j in range(n):
                inside = j < width
                shingle[inside] = (shingle[inside] ^ hashes[starts[inside] + j]) * _MIX[1 + j % (len(_MIX) - 1)]
                shingle[inside] ^= shingle[inside] >> np.uint64(31)
        return shingle, text

    def text_signatures(self, texts: pl.Series | list[str]) -> np.ndarray:
        """One signature row (num_hashes values) per text: datatrove's get_signature, `min((shingle * a + b) %
        (2**61 - 1))` with its parameters, for many texts at once; NONE values for a text without words."""
        hashes, owner = self.shingles(texts)
        signed, starts = np.unique(owner, return_index=True)
        ends = np.append(starts[1:], len(hashes))
        a, b = self.stage1.parameters
        out = np.full((len(texts), self.num_hashes), self.NONE, dtype=np.uint64)
        # blocks of whole texts of about 2,048 shingles: the temporaries stay in cache
        cuts = np.searchsorted(starts, np.arange(0, len(hashes), 2048), side="right") - 1
        bounds = np.unique(np.append(cuts, len(signed)))
        work = np.empty((2048 + int((ends - starts).max(initial=0)), self.num_hashes), dtype=np.uint64)
        for first, last in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            block = hashes[starts[first] : ends[last - 1]].reshape(-1, 1)
            permuted = work[: len(block)]
            with np.errstate(over="ignore"):
                np.multiply(block, a, out=permuted)  # wraps mod 2**64, as in datatrove
                permuted += b
            _mod_mersenne61(permuted)
            if self.config.hash_config.precision == 32:
                permuted &= np.uint64(self.config.hash_config.max)
            out[signed[first:last]] = np.minimum.reduceat(permuted, starts[first:last] - starts[first], axis=0)
        return out

    def bucket_keys(self, signatures: np.ndarray) -> np.ndarray:
        """One 64-bit key per pair and bucket (hashes_per_bucket values mixed with the bucket number); two pairs share
        a bucket when the keys are equal (a false match has probability about 2**-64)."""
        r = self.config.hashes_per_bucket
        bands = signatures.reshape(len(signatures), self.config.num_buckets, r)
        with np.errstate(over="ignore"):
            key = (np.arange(self.config.num_buckets, dtype=np.uint64) + np.uint64(1)) * _MIX[0]
            for j in range(r):
                key = (key ^ bands[:, :, j]) * _MIX[1 + j % (len(_MIX) - 1)]
                key ^= key >> np.uint64(29)
        return key


def _mod_mersenne61(values: np.ndarray) -> None:
    """values %= 2**61 - 1, in place, without a division: 2**61 = 1 (mod 2**61 - 1)."""
    high = values >> np.uint64(61)
    values &= _mersenne_prime
    values += high
    np.subtract(values, _mersenne_prime, out=values, where=values >= _mersenne_prime)


_MIX = tuple(np.uint64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD))


class TextSignatures:
    """Signatures of the texts a task has signed, by language: a text is in several pairs (the pivot side in those
    of every language of the task, the other side in its X -> eng_Latn and X -> zho_Hans pairs), and its
    signature does not depend on the pair. On Firefox this signs a quarter of the texts pairs have. At most
    `capacity` texts (num_hashes * 8 bytes each): when full, it starts over."""

    def __init__(self, signer: MinhashSigner, capacity: int = SIGNATURES_KEPT):
        self.signer = signer
        self.capacity = capacity
        self.rows = np.empty((0, signer.num_hashes), dtype=np.uint64)
        self.index: dict[str, dict[str, int]] = {}  # language -> text -> row
        self.size = 0

    def of(self, texts: pl.Series, lang: str) -> np.ndarray:
        known = self.index.setdefault(lang, {})
        texts = texts.to_list()
        new = list(dict.fromkeys(t for t in texts if t not in known))
        if self.size + len(new) > self.capacity:  # full: start over
            self.index, self.size = {lang: {}}, 0
            known = self.index[lang]
            new = list(dict.fromkeys(texts))
            if len(new) > self.capacity:
                return self.signer.text_signatures(texts)
        if new:
            if self.size + len(new) > len(self.rows):
                grown = np.empty((min(self.capacity, max(2 * len(self.rows), self.size + len(new))), self.signer.num_hashes), dtype=np.uint64)
                grown[: self.size] = self.rows[: self.size]
                self.rows = grown
            self.rows[self.size : self.size + len(new)] = self.signer.text_signatures(new)
            known.update(zip(new, range(self.size, self.size + len(new))))
            self.size += len(new)
        return self.rows[np.fromiter((known[t] for t in texts), dtype=np.int64, count=len(texts))]


class KeyIndex:
    """Bucket keys of kept pairs -> which kept pair, in sorted runs merged like a binary counter, so adding a batch
    costs O(batch log n) and a lookup one binary search per run (no Python object per key)."""

    def __init__(self):
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The kept pair of each key (-1 where none); the earliest one where several match."""
        found = np.full(keys.shape, np.iinfo(np.int64).max, dtype=np.int64)
        for run_keys, owners in self.runs:
            at = np.searchsorted(run_keys, keys).clip(max=len(run_keys) - 1)
            hit = run_keys[at] == keys
            found = np.where(hit, np.minimum(found, owners[at]), found)
        return np.where(found == np.iinfo(np.int64).max, -1, found)

    def add(self, keys: np.ndarray, owners: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.runs.append((keys[order], owners[order]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (k1, o1), (k2, o2) = self.runs.pop(-2), self.runs.pop()
            keys, owners = np.concatenate([k1, k2]), np.concatenate([o1, o2])
            order = np.argsort(keys, kind="stable")
            self.runs.append((keys[order], owners[order]))


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
        self._kept_ids: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        self._signatures = TextSignatures(self.signer)
        yield from super().run(data, rank, world_size)

    def reasons(self, batch: pa.Table) -> pl.DataFrame:
        ids = batch.column("id").to_pylist()
        reason: list[str | None] = [None] * len(ids)
        detail: list[str | None] = [None] * len(ids)
        frame = pl.from_arrow(batch.select(["src_lang", "tgt_lang", "src_text", "tgt_text"])).with_row_index("row")
        for (src_lang, tgt_lang), part in frame.group_by("src_lang", "tgt_lang", maintain_order=True):
            signatures = np.minimum(self._signatures.of(part["src_text"], src_lang), self._signatures.of(part["tgt_text"], tgt_lang))
            signed = np.flatnonzero(signatures[:, 0] != self.signer.NONE)  # pairs with no word at all are never near-duplicates
            if not len(signed):
                continue
            signatures = signatures[signed]
            rows = part["row"].to_numpy()[signed]
            keys = self.signer.bucket_keys(signatures)
            index, kept_ids = self._index[(src_lang, tgt_lang)], self._kept_ids[(src_lang, tgt_lang)]
            none = np.iinfo(np.int64).max
            earlier = index.find(keys)  # (pairs, buckets): the kept pair of an earlier batch, or -1
            owner = np.where(earlier >= 0, earlier, none).min(axis=1)
            keep = owner == none
            # within the batch, in reading order: only pairs sharing a key with another pair of it need a look
            values, counts = np.unique(keys, return_counts=True)
            repeated = np.isin(keys, values[counts > 1])
            first_in_batch: dict[int, int] = {}  # key -> the earliest kept pair of this batch that has it
            in_batch = np.full(len(rows), -1, dtype=np.int64)
            for i in np.flatnonzero(keep & repeated.any(axis=1)).tolist():
                shared = keys[i][repeated[i]].tolist()
                matches = [first_in_batch[k] for k in shared if k in first_in_batch]
                if matches:
                    keep[i], in_batch[i] = False, min(matches)
                else:
                    for k in shared:
                        first_in_batch.setdefault(k, i)
            for i in np.flatnonzero(~keep).tolist():
                reason[rows[i]] = "near_duplicate"
                kept = kept_ids[owner[i]] if owner[i] != none else ids[rows[in_batch[i]]]
                detail[rows[i]] = f"near-duplicate of {kept}"
            if keep.any():
                positions = np.arange(len(kept_ids), len(kept_ids) + int(keep.sum()), dtype=np.int64)
                kept_ids.extend(ids[r] for r in rows[keep].tolist())
                index.add(keys[keep].ravel(), np.repeat(positions, keys.shape[1]))
        return pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})
