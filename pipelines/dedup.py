"""What the dedup steps (pipelines/steps/exact_dedup.py, near_dedup.py) compute with: pair keys, counts of kept
keys, MinHash signatures and bucket indexes, over whole columns at once.

Tasks own whole languages (see read_pairs.languages_of_task), so a task sees every copy of a pair and the first
copy in reading order is kept, whatever the number of tasks.
"""

from __future__ import annotations

import tempfile

import numpy as np
import polars as pl
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature, _mersenne_prime
from datatrove.utils.hashes import xxhash as datatrove_xxhash
from datatrove.utils.hashing import HashConfig, create_hash_func
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import WordTokenizer

from schemas.text.normalize import folded
from schemas.text.overlap import word_lists

SIGNATURES_KEPT = 65_536  # texts per task whose MinHash signatures are kept: 59 MB with 112 hashes
BLOCK = 2048  # shingles permuted at once: BLOCK * num_hashes * 8 bytes of temporaries, twice


def dedup_keys(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """64-bit keys of the direction (the two languages), of the pair and of each side: texts that differ only in
    letter case or spacing are the same. polars' hash of each column, computed for the whole batch in Rust and mixed
    here: keys never leave the task, so a hash that may change between polars versions does no harm, where blake2b
    per row in Python would be most of this step's time; the columns are hashed apart, not their concatenation,
    which is cheaper still (tests/benchmarks/bench_dedup.py). Two different pairs of a task share a key with
    probability about n**2 / 2**65 (1e-9 for 200,000 pairs), as MinHash's bucket keys below."""
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


def by_direction(frame: pl.DataFrame) -> list[tuple[tuple[str, str], pl.DataFrame]]:
    """((src_lang, tgt_lang), its rows) for each direction of a batch, in order of first appearance; most batches
    have one, which is taken as it is (a group_by copies every column)."""
    if frame.height and frame.select((pl.col("src_lang") == pl.col("src_lang").first()).all() & (pl.col("tgt_lang") == pl.col("tgt_lang").first()).all()).item():
        return [((frame["src_lang"][0], frame["tgt_lang"][0]), frame)]
    return list(frame.group_by("src_lang", "tgt_lang", maintain_order=True))


def directions(lang: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(direction key, its rows in order) for each direction of a batch (most batches have one)."""
    if not len(lang) or (lang == lang[0]).all():
        return [(int(lang[0]) if len(lang) else 0, np.arange(len(lang)))]
    distinct, inverse = np.unique(lang, return_inverse=True)
    order = np.argsort(inverse.ravel(), kind="stable")
    cuts = np.cumsum(np.bincount(inverse.ravel()))[:-1]
    return [(int(distinct[d]), rows) for d, rows in zip(range(len(distinct)), np.split(order, cuts))]


class Occurrences:
    """Where each key of an array occurred before, from one sort of the keys (with positions in order within a key)."""

    def __init__(self, keys: np.ndarray):
        order = np.argsort(keys)
        ordered = keys[order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]][: len(keys)]
        self.group = np.cumsum(starts) - 1  # of each sorted position
        self.starts = np.flatnonzero(starts)
        # positions ascending within a key: a sort of (key's group, position) and a quick one, cheaper than a stable
        # sort of the keys (tests/benchmarks/bench_dedup.py)
        self.order = np.sort(self.group * len(keys) + order) % max(len(keys), 1)

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


class KeyValues:
    """A number for each 64-bit key (how many times it was counted, or a row), in one sorted array (no Python object
    per key)."""

    def __init__(self):
        self.keys = np.empty(0, dtype=np.uint64)
        self.values = np.empty(0, dtype=np.int64)

    def get(self, keys: np.ndarray, missing: int = 0) -> np.ndarray:
        """Each key's value, `missing` where it has none."""
        if not len(self.keys):
            return np.full(len(keys), missing, dtype=np.int64)
        at = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return np.where(self.keys[at] == keys, self.values[at], missing)

    def put(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Sets the values of keys not there yet (distinct)."""
        at = np.searchsorted(self.keys, keys)
        self.keys, self.values = np.insert(self.keys, at, keys), np.insert(self.values, at, values)

    def add(self, keys: np.ndarray) -> None:
        """Counts each occurrence of each key once more."""
        distinct, counts = np.unique(keys, return_counts=True)
        at = np.searchsorted(self.keys, distinct)
        known = at < len(self.keys)
        known[known] = self.keys[at[known]] == distinct[known]
        self.values[at[known]] += counts[known]
        self.keys = np.insert(self.keys, at[~known], distinct[~known])
        self.values = np.insert(self.values, at[~known], counts[~known])


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
    hashes (datatrove's hash function, once per word), where datatrove hashes the joined n-gram string: a Python
    call per n-gram, which cost more than all the rest here (see tests/benchmarks/bench_dedup.py)."""

    NONE = np.iinfo(np.uint64).max  # the signature values of a text without words (a real one is below 2**61 - 1)

    def __init__(self, config: MinhashConfig):
        self.config = config
        # output_folder is never written: only its permutation parameters and hashing are used
        self.stage1 = MinhashDedupSignature(output_folder=tempfile.gettempdir(), config=config, language=Words())
        self.hash = create_hash_func(config.hash_config, input_type=bytes)  # xxhash 4 hashes bytes, not str
        # datatrove's xxhash functions are Python wrappers of xxhash's: called directly, a word costs less
        self._hash_word = _UNWRAPPED.get(self.hash, self.hash)
        self.num_hashes = config.num_buckets * config.hashes_per_bucket

    def shingles(self, texts: pl.Series | list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, owner): the shingle hashes of every text and the text each belongs to, by text."""
        n = self.config.n_grams
        words = word_lists(texts)["words"]
        counts = words.list.len().to_numpy().astype(np.int64)
        hashes = self.word_hashes(words.explode(empty_as_null=False))
        offsets = np.cumsum(counts) - counts
        windows = np.where(counts >= n, counts - n + 1, (counts > 0).astype(np.int64))  # shingles per text
        text = np.repeat(np.arange(len(counts)), windows)
        starts = offsets[text] + (np.arange(len(text)) - np.repeat(np.cumsum(windows) - windows, windows))
        # a shingle: its words' hashes mixed in order, mod 2**64; a text of fewer than n words is one shorter shingle
        shingle = np.zeros(len(starts), dtype=np.uint64)
        whole = counts[text] >= n
        shingle[whole] = _shingle_hashes(hashes, starts[whole], np.full(int(whole.sum()), n))
        short = np.flatnonzero(~whole)
        shingle[short] = _shingle_hashes(hashes, starts[short], counts[text[short]])
        return shingle, text

    def word_hashes(self, words: pl.Series) -> np.ndarray:
        """datatrove's hash of each word's UTF-8 bytes. Every word as it comes: a call per word costs less than
        finding the distinct words first, by a polars unique and join or a cache of hashes by word
        (tests/benchmarks/bench_dedup.py)."""
        return np.fromiter(map(self._hash_word, words.cast(pl.Binary).to_list()), dtype=np.uint64, count=len(words))

    def text_signatures(self, texts: pl.Series | list[str], out: np.ndarray | None = None) -> np.ndarray:
        """One signature row (num_hashes values) per text: datatrove's get_signature, `min((shingle * a + b) %
        (2**61 - 1))` with its parameters, for many texts at once; NONE values for a text without words.

        Texts are taken by their number of shingles k, a block of whole texts at a time, so that a text's minimum
        is a min over axis 1 of (texts, k, num_hashes): np.minimum.reduceat over texts of unequal lengths (most
        have 1 to 3 shingles) costs several times more a value (tests/benchmarks/bench_dedup.py)."""
        hashes, owner = self.shingles(texts)
        out = np.empty((len(texts), self.num_hashes), dtype=np.uint64) if out is None else out
        counts = np.bincount(owner, minlength=len(texts))
        out[counts == 0] = self.NONE
        starts = np.cumsum(counts) - counts
        by_count = np.argsort(counts, kind="stable")
        by_count = by_count[counts[by_count] > 0]
        # the shingles of the texts in that order, and where each count's texts begin
        sorted_counts = counts[by_count]
        taken = hashes[np.repeat(starts[by_count] - np.cumsum(sorted_counts) + sorted_counts, sorted_counts) + np.arange(int(sorted_counts.sum()))]
        first_text = np.flatnonzero(np.r_[True, sorted_counts[1:] != sorted_counts[:-1]]) if len(sorted_counts) else np.empty(0, dtype=np.int64)
        first_shingle = np.cumsum(sorted_counts) - sorted_counts
        work = np.empty((max(BLOCK, int(counts.max(initial=0))), self.num_hashes), dtype=np.uint64)
        high = np.empty_like(work)
        for group, end in zip(first_text.tolist(), np.append(first_text[1:], len(by_count)).tolist()):
            k = int(sorted_counts[group])
            per_block = max(1, BLOCK // k)
            for first in range(group, end, per_block):
                last = min(first + per_block, end)
                block = taken[first_shingle[first] : first_shingle[first] + (last - first) * k]
                permuted = self.permuted(block, work[: len(block)], high[: len(block)])
                out[by_count[first:last]] = permuted if k == 1 else permuted.reshape(last - first, k, self.num_hashes).min(axis=1)
        return out

    def permuted(self, shingles: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        """datatrove's `(shingle * a + b) % (2**61 - 1)` for each shingle and permutation, in out."""
        a, b = self.stage1.parameters
        with np.errstate(over="ignore"):
            np.multiply(shingles.reshape(-1, 1), a, out=out)  # wraps mod 2**64, as in datatrove
            out += b
        _mod_mersenne61(out, scratch)
        if self.config.hash_config.precision == 32:
            out &= np.uint64(self.config.hash_config.max)
        return out

    def pair_bucket_keys(self, table: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
        """The bucket keys of pairs whose sides' signatures are rows src and tgt of table: a pair's signature is
        their elementwise minimum, made for a block of pairs at a time in the same buffers (they stay in cache)."""
        keys = np.empty((len(src), self.config.num_buckets), dtype=np.uint64)
        step = max(1, BLOCK // 4)
        first, second = (np.empty((min(step, len(src)), self.num_hashes), dtype=np.uint64) for _ in range(2))
        for start in range(0, len(src), step):
            n = min(step, len(src) - start)
            np.take(table, src[start : start + n], axis=0, out=first[:n])
            np.take(table, tgt[start : start + n], axis=0, out=second[:n])
            self.bucket_keys(np.minimum(first[:n], second[:n], out=first[:n]), out=keys[start : start + n])
        return keys

    def bucket_keys(self, signatures: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One 64-bit key per pair and bucket (hashes_per_bucket values mixed with the bucket number); two pairs share
        a bucket when the keys are equal (a false match has probability about 2**-64)."""
        r = self.config.hashes_per_bucket
        bands = signatures.reshape(len(signatures), self.config.num_buckets, r)
        key = np.empty((len(signatures), self.config.num_buckets), dtype=np.uint64) if out is None else out
        key[:] = (np.arange(self.config.num_buckets, dtype=np.uint64) + np.uint64(1)) * _MIX[0]
        shifted = np.empty_like(key)
        with np.errstate(over="ignore"):
            for j in range(r):
                key ^= bands[:, :, j]
                key *= _MIX[1 + j % (len(_MIX) - 1)]
                key ^= np.right_shift(key, np.uint64(29), out=shifted)
        return key


def _mod_mersenne61(values: np.ndarray, high: np.ndarray | None = None) -> None:
    """values %= 2**61 - 1, in place, without a division: 2**61 = 1 (mod 2**61 - 1). `high`: scratch space of the
    same shape."""
    high = np.right_shift(values, np.uint64(61), out=high)
    values &= _mersenne_prime
    values += high  # below 2**61 + 7: at most one more subtraction, which almost never happens
    if values.max(initial=0) >= _mersenne_prime:
        np.subtract(values, _mersenne_prime, out=values, where=values >= _mersenne_prime)


def _shingle_hashes(hashes: np.ndarray, starts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The hash of each run of `widths` words from `starts`: the words' hashes mixed in order, mod 2**64."""
    shingle = np.zeros(len(starts), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(int(widths.max(initial=0))):
            inside = slice(None) if j < widths.min() else j < widths
            mixed = (shingle[inside] ^ hashes[starts[inside] + j]) * _MIX[1 + j % (len(_MIX) - 1)]
            shingle[inside] = mixed ^ (mixed >> np.uint64(31))
    return shingle


# (datatrove's module's own xxhash: the one its functions call)
_UNWRAPPED = {datatrove_xxhash.xxhash64: datatrove_xxhash.xxhash.xxh64_intdigest, datatrove_xxhash.xxhash32: datatrove_xxhash.xxhash.xxh32_intdigest}
_MIX = tuple(np.uint64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD))


class TextSignatures:
    """Signatures of the texts a task has signed, by language: a text is in several pairs (the pivot side in those
    of every language of the task, the other side in its X -> eng_Latn and X -> zho_Hans pairs), and its
    signature does not depend on the pair, so a task signs far fewer texts than its pairs have. At most
    `capacity` texts (num_hashes * 8 bytes each): when full, it starts over. A text is found by a 64-bit key
    (polars' hash, in sorted arrays: no Python object per text; two texts of a language share a key with
    probability about n**2 / 2**65, as the dedup keys)."""

    def __init__(self, signer: MinhashSigner, capacity: int = SIGNATURES_KEPT):
        self.signer = signer
        self.capacity = capacity
        self.rows = np.empty((0, signer.num_hashes), dtype=np.uint64)
        self.index: dict[str, KeyValues] = {}  # language -> text key -> row
        self.size = 0

    def rows_of(self, sides: list[tuple[pl.Series, str]]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(table, rows): for each (texts, language), the row of each text's signature in table."""
        distinct = [_Distinct(texts) for texts, _ in sides]
        found = [self.index.get(lang, KeyValues()).get(d.keys, missing=-1) for d, (_, lang) in zip(distinct, sides)]
        if self.size + sum(int((row < 0).sum()) for row in found) > self.capacity:  # full: start over
            self.index, self.size = {}, 0
            found = [np.full(len(d.keys), -1, dtype=np.int64) for d in distinct]
            if sum(len(d.keys) for d in distinct) > self.capacity:  # more than it holds: signed apart
                tables = [self.signer.text_signatures(texts.gather(d.first)) for d, (texts, _) in zip(distinct, sides)]
                offsets = np.cumsum([0] + [len(t) for t in tables])
                return np.concatenate(tables), [offset + d.of_each for offset, d in zip(offsets.tolist(), distinct)]
        out = []
        for i, (d, (texts, lang), row) in enumerate(zip(distinct, sides, found)):
            known = self.index.setdefault(lang, KeyValues())
            if any(other == lang for _, other in sides[:i]):  # a side before may have signed some of these
                row = known.get(d.keys, missing=-1)
            new = np.flatnonzero(row < 0)
            if len(new):
                if not len(self.rows):  # all at once: the system gives the memory as rows are written, and growing copied them
                    self.rows = np.empty((self.capacity, self.signer.num_hashes), dtype=np.uint64)
                self.signer.text_signatures(texts.gather(d.first[new]), out=self.rows[self.size : self.size + len(new)])
                row[new] = np.arange(self.size, self.size + len(new))
                known.put(d.keys[new], row[new])
                self.size += len(new)
            out.append(row[d.of_each])
        return self.rows, out


class _Distinct:
    """The distinct texts of a series, by polars' 64-bit hash: keys (sorted), a position of each, and the number of
    each text's distinct one."""

    def __init__(self, texts: pl.Series):
        hashes = texts.hash(0).to_numpy()
        order = np.argsort(hashes)  # any copy of a text stands for it: no need for a stable sort
        ordered = hashes[order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]][: len(hashes)]
        self.first = order[starts]
        self.keys = ordered[starts]
        self.of_each = np.empty(len(hashes), dtype=np.int64)
        self.of_each[order] = np.cumsum(starts) - 1


class KeyIndex:
    """Keys of kept rows -> which kept row (its place among the kept ids), in sorted runs merged like a binary
    counter, so adding a batch costs O(batch log n) and a lookup one binary search per run (no Python object per
    key). A key is added once: a row whose key is there already is not kept."""

    def __init__(self):
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The kept row of each key (-1 where none)."""
        found = np.full(keys.shape, -1, dtype=np.int64)
        for run_keys, owners in self.runs:
            at = np.searchsorted(run_keys, keys).clip(max=len(run_keys) - 1)
            hit = run_keys[at] == keys
            found[hit] = owners[at[hit]]
        return found

    def add(self, keys: np.ndarray, owners: np.ndarray, ordered: bool = False) -> None:
        """`ordered`: the keys are sorted already."""
        if not len(keys):
            return
        order = slice(None) if ordered else np.argsort(keys)
        self.runs.append((keys[order], owners[order]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (k1, o1), (k2, o2) = self.runs.pop(-2), self.runs.pop()
            at = np.searchsorted(k1, k2)  # runs have no key in common: a merge, not a sort
            self.runs.append((np.insert(k1, at, k2), np.insert(o1, at, o2)))
