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


def dedup_keys(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """64-bit keys of the direction (the two languages), of the pair and of each side: texts that differ only in
    letter case or spacing are the same. polars' hash of each column, computed for the whole batch in Rust and mixed
    here: keys never leave the task, so a hash that may change between polars versions does no harm, and blake2b per
    row in Python was two thirds of this step's time (hashing the columns apart, not their concatenation, saves
    another 0.04 s of a Firefox task's 0.13 s). Two different pairs of a task share a key with probability about
    n**2 / 2**65 (1e-9 for the 200,000 pairs of a Firefox task), as MinHash's bucket keys below."""
    hashes = frame.select(
        lang=pl.struct("src_lang", "tgt_lang").hash(0), src=folded(pl.col("src_text")).hash(0), tgt=folded(pl.col("tgt_text")).hash(0)
    )
    lang, src, tgt = (hashes[c].to_numpy() for c in ("lang", "src", "tgt"))
    return lang, _mixed(_mixed(lang, src), tgt), _mixed(lang ^ _MIX[3], src), _mixed(lang ^ _MIX[4], tgt)


def _mixed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A 64-bit hash of two 64-bit values (splitmix64's finalizer of a ^ b * odd)."""
    with np.errstate(over="ignore"):
        x = a ^ (b * _MIX[0])
        x = (x ^ (x >> np.uint64(30))) * _MIX[1]
        x = (x ^ (x >> np.uint64(27))) * _MIX[2]
        return x ^ (x >> np.uint64(31))


def directions(lang: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(direction key, its rows in order) for each direction of a batch (most batches have one)."""
    if not len(lang) or (lang == lang[0]).all():
        return [(int(lang[0]) if len(lang) else 0, np.arange(len(lang)))]
    distinct, first, inverse = np.unique(lang, return_index=True, return_inverse=True)
    order = np.argsort(inverse.ravel(), kind="stable")
    cuts = np.cumsum(np.bincount(inverse.ravel()))[:-1]
    return [(int(distinct[d]), rows) for d, rows in zip(range(len(distinct)), np.split(order, cuts))]


class ExactPairDedup(BatchFilter):
    name = "exact_dedup"

    def __init__(self, removed: RemovedRows, max_pairs_per_sentence: int = 0):
        super().__init__(removed)
        self.max_pairs_per_sentence = max_pairs_per_sentence  # 0: no cap

    def run(self, data, rank: int = 0, world_size: int = 1):
        # per task (copies of a pair never span tasks) and direction (keys of two directions never match, and a
        # direction's own arrays are small enough to stay in cache: a search in all of a task's was 3x slower)
        self._first_ids: dict[int, KeyIndex] = collections.defaultdict(KeyIndex)  # pair key -> place of the first copy
        self._side_count: dict[int, KeyCounts] = collections.defaultdict(KeyCounts)  # sentence key -> its pairs
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
        copied = len(np.concatenate(copies))
        return verdicts(
            batch.num_rows,
            np.concatenate(copies + capped),
            pl.concat([pl.repeat("duplicate", copied, dtype=pl.String, eager=True), pl.repeat("too_many_translations", len(sides), dtype=pl.String, eager=True)]),
            pl.concat([
                "same pair as " + self._ids.at(np.concatenate(named)),
                "the " + pl.Series(sides, dtype=pl.String) + f" sentence already has {self.max_pairs_per_sentence} pairs",
            ]),  # fmt: skip
        )

    def capped(self, counts: KeyCounts, src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Of pairs in reading order, those whose source or target sentence already has the cap's number of pairs,
        and which side it is; a pair dropped here does not count against its sentences. A pair is surely kept when
        its sentences' counts plus their earlier occurrences in the batch stay below the cap (almost all on
        Firefox: 3,064 of 851k pairs are dropped); only the others are looked at one by one, in order."""
        cap = self.max_pairs_per_sentence
        src_seen, tgt_seen = Occurrences(src), Occurrences(tgt)
        src_before, tgt_before = counts.get(src), counts.get(tgt)
        kept = (src_before + src_seen.before() < cap) & (tgt_before + tgt_seen.before() < cap)
        unsure = np.flatnonzero(~kept)
        dropped, side = [], []
        if len(unsure):
            # for the others: how many surely kept pairs of the batch came before them with the same sentence
            src_before += src_seen.before(kept)
            tgt_before += tgt_seen.before(kept)
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


class Occurrences:
    """Where each key of an array occurred before, from one stable sort."""

    def __init__(self, keys: np.ndarray):
        self.order = np.argsort(keys, kind="stable")  # stable: positions ascend within a key
        ordered = keys[self.order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]]
        self.group = np.cumsum(starts) - 1  # of each sorted position
        self.starts = np.flatnonzero(starts)

    def first(self) -> np.ndarray:
        """For each key, the position of its first occurrence."""
        out = np.empty(len(self.order), dtype=np.int64)
        out[self.order] = self.order[self.starts][self.group]
        return out

    def before(self, counted: np.ndarray | None = None) -> np.ndarray:
        """For each key, how many earlier positions (where `counted` is true, if given) have the same key."""
        if counted is None:
            counts = np.arange(len(self.order))
        else:
            counts = np.cumsum(counted[self.order]) - counted[self.order]
        out = np.empty(len(self.order), dtype=np.int64)
        out[self.order] = counts - counts[self.starts][self.group]
        return out


def verdicts(rows: int, dropped: np.ndarray, reason: pl.Series, detail: pl.Series) -> pl.DataFrame:
    """BatchFilter's reasons frame, from the dropped rows only (most rows are kept): one gather from their reasons
    and details and a null row."""
    which = np.full(rows, len(dropped), dtype=np.int64)
    which[dropped] = np.arange(len(dropped))
    frame = pl.DataFrame({"reason": reason, "detail": detail}, schema={"reason": pl.String, "detail": pl.String})
    return frame.extend(pl.DataFrame({"reason": [None], "detail": [None]}, schema=frame.schema))[which]


class KeptIds:
    """The ids of the rows a step kept, in order, as polars chunks: a dropped row names the kept one by its place
    here (no Python string per row)."""

    def __init__(self):
        self.ids = pl.Series(dtype=pl.String)

    def __len__(self) -> int:
        return len(self.ids)

    def extend(self, ids: pl.Series) -> None:
        self.ids.append(ids.cast(pl.String))
        if self.ids.n_chunks() > 64:  # a gather looks up its chunk: keep them few
            self.ids = self.ids.rechunk()

    def at(self, places: np.ndarray) -> pl.Series:
        return self.ids.gather(places)


class KeyCounts:
    """How many times each 64-bit key was counted, in one sorted array (no Python object per key)."""

    def __init__(self):
        self.keys = np.empty(0, dtype=np.uint64)
        self.counts = np.empty(0, dtype=np.int64)

    def get(self, keys: np.ndarray) -> np.ndarray:
        if not len(self.keys):
            return np.zeros(len(keys), dtype=np.int64)
        at = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return np.where(self.keys[at] == keys, self.counts[at], 0)

    def add(self, keys: np.ndarray) -> None:
        """Counts each occurrence of each key once more."""
        distinct, counts = np.unique(keys, return_counts=True)
        at = np.searchsorted(self.keys, distinct)
        known = at < len(self.keys)
        known[known] = self.keys[at[known]] == distinct[known]
        self.counts[at[known]] += counts[known]
        self.keys = np.insert(self.keys, at[~known], distinct[~known])
        self.counts = np.insert(self.counts, at[~known], counts[~known])


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
