"""The dedup steps against plain one-row-at-a-time models of what they promise, on batches with many copies and
near copies, in several directions: the vectorized bookkeeping (indexes, within-batch order, names of the kept
copies, the cap on pairs per sentence, the signature cache) must give the same rows and details."""

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.batch import RemovedRows
from pipelines.dedup import KeyIndex, MinhashSigner, Occurrences, TextSignatures, dedup_keys, minhash_config
from pipelines.steps.exact_dedup import ExactPairDedup
from pipelines.steps.near_dedup import NearDuplicateDedup
from schemas.text.overlap import word_lists
from tests.helpers import pairs

WORDS = "Alle Menschen sind frei und gleich an Würde Rechten geboren 人 生 自 由 All human beings are born free equal".split()
DIRECTIONS = [("deu_Latn", "eng_Latn"), ("deu_Latn", "zho_Hans"), ("fra_Latn", "eng_Latn"), ("eng_Latn", "eng_Latn")]  # last: both sides in one language's signature cache


def random_rows(count: int, seed: int) -> list[tuple]:
    """Pairs drawn from few words and few sentences, so that exact and near copies are common; some sides have
    fewer words than a shingle, some none."""
    rng = random.Random(seed)
    sentences = [" ".join(rng.choices(WORDS, k=rng.choice([0, 1, 2, 4, 6, 9]))) or "..." for _ in range(12)]
    rows = []
    for _ in range(count):
        src_lang, tgt_lang = rng.choice(DIRECTIONS)
        src, tgt = rng.choice(sentences), rng.choice(sentences[:4])
        if rng.random() < 0.3:  # a near copy: one word more
            src += " " + rng.choice(WORDS[:3])
        if rng.random() < 0.2:  # an exact copy but for case and spacing
            src = "  " + src.upper()
        rows.append((src_lang, src, tgt_lang, tgt))
    return rows


def run_batches(step, table: pa.Table, sizes: list[int]) -> tuple[list[str], pa.Table]:
    batches, start = [], 0
    for size in sizes:
        batches.append(table.slice(start, size))
        start += size
    assert start == table.num_rows
    kept = [i for t in step.run(iter(batches)) for i in t["id"].to_pylist()]
    return kept, pq.read_table(step.removed.folder / step.name / "run-00000.parquet")


def batch_sizes(rows: int, seed: int) -> list[int]:
    rng, sizes = random.Random(seed), []
    while sum(sizes) < rows:
        sizes.append(min(rng.choice([1, 7, 30, 120]), rows - sum(sizes)))
    return sizes


def exact_model(table: pa.Table, cap: int) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """One row at a time: the first copy of a pair (case and spacing folded) is kept; then a pair whose source or
    target sentence already has `cap` kept pairs in its direction is dropped."""
    _, pair_keys, src_keys, tgt_keys = dedup_keys(pl_frame(table))
    first: dict[int, str] = {}
    count: dict[int, int] = {}
    kept, removed = [], {}
    for i, row_id in enumerate(table["id"].to_pylist()):
        pair, src, tgt = int(pair_keys[i]), int(src_keys[i]), int(tgt_keys[i])
        if pair in first:
            removed[row_id] = ("duplicate", f"same pair as {first[pair]}")
            continue
        first[pair] = row_id
        if cap and (count.get(src, 0) >= cap or count.get(tgt, 0) >= cap):
            side = "source" if count.get(src, 0) >= cap else "target"
            removed[row_id] = ("too_many_translations", f"the {side} sentence already has {cap} pairs")
            continue
        count[src], count[tgt] = count.get(src, 0) + 1, count.get(tgt, 0) + 1
        kept.append(row_id)
    return kept, removed


def near_model(table: pa.Table, signer: MinhashSigner) -> tuple[list[str], dict[str, str]]:
    """One pair at a time: a pair sharing a bucket key with an earlier kept pair of its direction is dropped, and
    the earliest such pair named; a pair without any word is kept."""
    frame = pl_frame(table)
    signatures = np.minimum(signer.text_signatures(frame["src_text"]), signer.text_signatures(frame["tgt_text"]))
    keys = signer.bucket_keys(signatures)
    kept_keys: dict[tuple, int] = {}
    ids = table["id"].to_pylist()
    kept, removed = [], {}
    for i, row_id in enumerate(ids):
        direction = (frame["src_lang"][i], frame["tgt_lang"][i])
        if signatures[i, 0] == MinhashSigner.NONE:
            kept.append(row_id)
            continue
        matches = [kept_keys[(direction, int(k))] for k in keys[i] if (direction, int(k)) in kept_keys]
        if matches:
            removed[row_id] = f"near-duplicate of {ids[min(matches)]}"
            continue
        for k in keys[i]:
            kept_keys[(direction, int(k))] = i
        kept.append(row_id)
    return kept, removed


def pl_frame(table: pa.Table):
    import polars as pl

    return pl.from_arrow(table.select(["src_lang", "tgt_lang", "src_text", "tgt_text"]))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("cap", [0, 1, 2])
def test_exact_dedup_keeps_what_one_row_at_a_time_keeps(tmp_path, seed, cap):
    table = pairs(random_rows(400, seed))
    expected_kept, expected_removed = exact_model(table, cap)
    assert len(expected_kept) < 300 and (cap == 0 or any(r == "too_many_translations" for r, _ in expected_removed.values()))
    kept, removed = run_batches(ExactPairDedup(RemovedRows(tmp_path), max_pairs_per_sentence=cap), table, batch_sizes(400, seed))
    assert kept == expected_kept
    assert dict(zip(removed["id"].to_pylist(), zip(removed["reason"].to_pylist(), removed["detail"].to_pylist()))) == expected_removed
    assert removed["id"].to_pylist() == [i for i in table["id"].to_pylist() if i in expected_removed]  # in reading order


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("capacity", [7, 65_536])
def test_near_dedup_keeps_what_one_pair_at_a_time_keeps(tmp_path, seed, capacity, monkeypatch):
    table = pairs(random_rows(400, seed))
    step = NearDuplicateDedup(RemovedRows(tmp_path), ngram=3, num_buckets=6, hashes_per_bucket=2)
    expected_kept, expected_removed = near_model(table, MinhashSigner(step.signer.config))
    assert 50 < len(expected_removed) < 350
    # a small signature cache starts over often: the same rows whatever is kept
    monkeypatch.setattr("pipelines.dedup.SIGNATURES_KEPT", capacity)
    monkeypatch.setattr(TextSignatures.__init__, "__defaults__", (capacity,))
    kept, removed = run_batches(step, table, batch_sizes(400, seed))
    assert kept == expected_kept
    assert dict(zip(removed["id"].to_pylist(), removed["detail"].to_pylist())) == expected_removed


def test_text_signatures_are_datatroves_for_texts_of_every_length():
    signer = MinhashSigner(minhash_config(ngram=3, num_buckets=4, hashes_per_bucket=3))
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=k)) for k in [0, 1, 2, 3, 4, 5, 8, 3000, 2, 1, 40, 0, 6]]  # 3000: past a block
    signatures = signer.text_signatures(texts)
    hashes, owner = signer.shingles(texts)
    for i, text in enumerate(texts):
        words = word_lists([text])["words"][0].to_list()
        assert signer.word_hashes(word_lists([text])["words"].explode(empty_as_null=False)).tolist() == [signer.hash(w.encode()) for w in words]
        if not words:
            assert (signatures[i] == MinhashSigner.NONE).all()
            continue
        expected = signer.stage1.get_signature(hashes[owner == i].reshape(-1, 1))  # datatrove's MinHash stage 1
        assert signatures[i].tolist() == [h for bucket in expected for h in bucket]
    assert (owner[1:] >= owner[:-1]).all() and np.bincount(owner).tolist()[:8] == [0, 1, 1, 1, 2, 3, 6, 2998]


def test_text_signatures_cache_signs_each_text_once(monkeypatch):
    signer = MinhashSigner(minhash_config(ngram=3, num_buckets=4, hashes_per_bucket=3))
    signed = []
    sign = signer.text_signatures
    monkeypatch.setattr(signer, "text_signatures", lambda texts, out=None: signed.extend(texts) or sign(texts, out=out))
    import polars as pl

    cache = TextSignatures(signer)

    def signatures(texts, lang):
        table, (rows,) = cache.rows_of([(pl.Series(texts), lang)])
        return table[rows]

    first = signatures([WORDS[0], WORDS[1], WORDS[0]], "deu_Latn")
    again = signatures([WORDS[1], WORDS[2]], "deu_Latn")
    other = signatures([WORDS[1]], "fra_Latn")  # another language: signed again
    assert signed == [WORDS[0], WORDS[1], WORDS[2], WORDS[1]]
    assert (first[0] == first[2]).all() and (first[1] == again[0]).all() and (other[0] == again[0]).all()
    assert (again == signer.text_signatures([WORDS[1], WORDS[2]])).all()


def test_key_index_finds_keys_of_every_run():
    index = KeyIndex()
    rng = np.random.default_rng(0)
    keys = rng.permutation(np.arange(1, 5000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    start = 0
    for size in [1, 3, 500, 20, 2000, 7, 1000]:  # runs merged in between
        index.add(keys[start : start + size], np.arange(start, start + size))
        start += size
    assert len(index.runs) < 7
    probe = np.concatenate([keys[:start], keys[start:]])
    assert index.find(probe).tolist() == list(range(start)) + [-1] * (len(keys) - start)


def test_occurrences_count_earlier_copies():
    keys = np.array([5, 3, 5, 5, 3, 9], dtype=np.uint64)
    seen = Occurrences(keys)
    assert seen.first().tolist() == [0, 1, 0, 0, 1, 5]
    assert seen.before().tolist() == [0, 0, 1, 2, 1, 0]
    assert seen.before(np.array([True, False, False, True, True, True])).tolist() == [0, 0, 1, 1, 0, 0]
