"""The pairs stage's per-row steps as made cheaper: the evaluation index saved once per build and loaded by every
task, decontamination that checks each text once, and the shortcuts of normalize, pair_filter, reading and the pivot
join, each against the plain definition of what the step computes."""

import functools
import random

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.batch import RemovedRows
from pipelines.steps import decontaminate
from pipelines.steps.decontaminate import Decontaminate
from pipelines.steps.pivot_join import PivotJoin
from schemas.text import overlap
from schemas.text.overlap import MIN_EXACT_CHARS, MIN_QUOTE_WORDS, EvalIndex, eval_index, word_lists
from tests.helpers import pairs

VOCABULARY = ["alpha", "beta", "gamma", "delta", "épée", "中", "文", "한", "x1", "ok", "straße"]


@functools.cache
def _words(text: str) -> list[str]:
    return word_lists([text])["words"][0].to_list() or []


def by_definition(text: str, sets: dict[str, list[str]], n: int):
    """The finding of one text, from the module docstring's definition, word list by word list: equal to an evaluation
    text (of at least MIN_EXACT_CHARS word characters), else sharing a run of n words with one (the first such run in
    the text), else quoting a whole one of MIN_QUOTE_WORDS to n - 1 words (the quote that ends first, the longest)."""
    words = _words(text)
    if not words:
        return None
    for name, texts in sets.items():
        if any(_words(t) == words for t in texts) and len("".join(words)) >= MIN_EXACT_CHARS:
            return name, "equals"
    grams = {}
    for name, texts in sets.items():
        for t in texts:
            w = _words(t)
            for i in range(len(w) - n + 1):
                grams.setdefault(tuple(w[i : i + n]), name)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) in grams:
            return grams[tuple(words[i : i + n])], f"shares a {n}-gram with"
    form, first = f" {' '.join(words)} ", None
    for name, texts in sets.items():
        for t in texts:
            key = " ".join(_words(t))
            if MIN_QUOTE_WORDS <= len(key.split()) < n and (at := form.find(f" {key} ")) != -1:
                candidate = ((at + len(key), -len(key)), name)
                first = candidate if first is None or candidate[0] < first[0] else first
    return first and (first[1], "quotes")


def _sets(generator: random.Random) -> dict[str, list[str]]:
    def text(low, high):
        return " ".join(generator.choices(VOCABULARY, k=generator.randint(low, high)))

    return {
        "a.txt": [text(15, 25) for _ in range(4)] + [text(6, 12) for _ in range(4)] + ["Unabhängigkeitserklärung", "ok ok ok"],
        "b.txt": [text(15, 25) for _ in range(3)] + [text(6, 12) for _ in range(3)] + ["中文中文中文中文中文中文"],  # 12 words, 12 characters
    }


def _texts(generator: random.Random, sets: dict[str, list[str]], count: int) -> list[str]:
    """Random texts of the vocabulary and unknown words, some with a piece of an evaluation text planted (maybe cut by
    an unknown word), some equal to one but for case and punctuation."""
    every = [t for texts in sets.values() for t in texts]
    texts = []
    for _ in range(count):
        tokens = generator.choices(VOCABULARY + ["unknown", "未", ",", "!!"], k=generator.randint(0, 30))
        roll = generator.random()
        if roll < 0.5:
            piece = generator.choice(every).split()
            start = generator.randint(0, max(len(piece) - 6, 0))
            piece = piece[start : start + generator.randint(6, 16)]
            at = generator.randint(0, len(tokens))
            tokens[at:at] = piece
            if generator.random() < 0.3:
                tokens.insert(generator.randint(at, at + len(piece)), "unknown")
        elif roll < 0.6:
            tokens = [generator.choice(every).upper() + generator.choice(["", "!", " ."])]
        texts.append(" ".join(tokens))
    return texts


def test_overlaps_follow_the_definition_and_a_saved_index_finds_the_same():
    generator = random.Random(7)
    sets = _sets(generator)
    texts = _texts(generator, sets, 500)
    index = EvalIndex(sets, 13)
    expected = [by_definition(t, sets, 13) for t in texts]
    assert {hit[1].split()[0] for hit in expected if hit} == {"equals", "shares", "quotes"}
    assert index.overlaps(texts) == expected
    assert index.overlaps(texts, chunk=37) == expected


def test_a_saved_index_loads_as_the_built_one(tmp_path):
    sets = _sets(random.Random(3))
    built = EvalIndex(sets, 13)
    built.save(tmp_path / "index.arrow")
    loaded = EvalIndex.load(tmp_path / "index.arrow")
    assert loaded.parts.keys() == built.parts.keys()
    for name, part in built.parts.items():
        assert (loaded.parts[name] == part if name == "n" else list(loaded.parts[name]) == list(part)), name
    assert (loaded.exact, loaded.n, loaded.min_chars, loaded.set_names) == (built.exact, built.n, built.min_chars, built.set_names)
    texts = _texts(random.Random(4), sets, 300)
    assert loaded.overlaps(texts) == built.overlaps(texts)
    assert [p.name for p in tmp_path.iterdir()] == ["index.arrow"]  # no temporary file left


def test_texts_exactly_as_long_as_a_finding_needs_are_checked():
    """Texts shorter than the fewest characters a finding has are not looked at: the bound must not lose one."""
    chinese = "人人生而自由在尊严和权利上一律平等"  # 17 words of one character (Han), no punctuation
    index = EvalIndex({"zh": [chinese]}, 13)
    assert index.min_chars == 13
    assert index.overlaps([chinese[:13], chinese[:12], chinese[2:15], chinese]) == [
        ("zh", "shares a 13-gram with"), None, ("zh", "shares a 13-gram with"), ("zh", "equals")
    ]
    short = EvalIndex({"s": ["Unabhängigkeitserklärung"]}, 13)  # one word of 24 characters: only equal texts match
    assert short.min_chars == 13
    assert short.overlaps(["unabhängigkeitserklärung.", "Unabhängigkeits erklärung", "x"]) == [("s", "equals"), None, None]


def test_the_index_is_built_once_per_folder_then_loaded(tmp_path, monkeypatch):
    eval_file = tmp_path / "dev.txt"
    eval_file.write_text("Das ist ein Satz aus dem Testset, lang genug.\n")
    folder = tmp_path / "work" / "eval_index"
    eval_index.cache_clear()
    built = eval_index((str(eval_file),), 13, folder=folder)
    saved = list(folder.iterdir())
    assert len(saved) == 1 and saved[0].suffix == ".arrow"
    eval_index.cache_clear()
    monkeypatch.setattr(overlap, "load_udhr", lambda *_: pytest.fail("the saved index was built again"))
    loaded = eval_index((str(eval_file),), 13, folder=folder)
    texts = ["Er sagte: das ist ein Satz aus dem Testset, lang genug!", "nothing here at all"]
    assert loaded.overlaps(texts) == built.overlaps(texts) == [("dev.txt", "quotes"), None]
    eval_index.cache_clear()
    monkeypatch.undo()
    eval_index((str(eval_file),), 12, folder=folder)  # another n: another index
    assert len(list(folder.iterdir())) == 2
    eval_index.cache_clear()


@pytest.mark.parametrize("checked_bound", [3, 100_000])
def test_decontaminate_checks_each_pivot_text_once_and_drops_every_copy(tmp_path, monkeypatch, checked_bound):
    """The step remembers which pivot texts it checked (up to a bound, then starts over); the rows it drops must be
    those the definition gives row by row, in every batch a text comes back in."""
    monkeypatch.setattr(decontaminate, "CHECKED_PIVOT_TEXTS", checked_bound)
    heldout = overlap.load_udhr().filter(pl.col("split") != "train")["text"].to_list()
    generator = random.Random(11)
    english = [t for t in heldout[:400] if t.isascii()][:20]
    pivot_texts = [generator.choice(english)[: generator.randint(20, 200)] for _ in range(15)] + ["Open a new tab", "Save", "Cancel"]
    other_texts = ["Neuen Tab öffnen", "Speichern"] + [t.upper() for t in english[:3]]
    batches = []
    for number in range(4):
        rows = [("deu_Latn", generator.choice(other_texts), "eng_Latn", generator.choice(pivot_texts)) for _ in range(40)]
        batches.append(pairs(rows, split="validation" if number == 2 else "train"))
    step = Decontaminate(RemovedRows(tmp_path), index_folder=tmp_path / "index")
    kept = pa.concat_tables(list(step.run(iter(batches))))
    removed = pq.read_table(tmp_path / "decontaminate" / "run-00000.parquet")
    index = eval_index((), 13, folder=tmp_path / "index")
    expected_removed = []
    for batch in batches:
        for row in batch.to_pylist():
            hit_src, hit_tgt = index.overlaps([row["src_text"], row["tgt_text"]])
            hit, column = (hit_src, "src_text") if hit_src else (hit_tgt, "tgt_text")
            if hit and row["split"] == "train":
                expected_removed.append((row["id"], f"overlap:{hit[0]}", f"{column} {hit[1]} an evaluation text of {hit[0]}"))
    assert list(zip(removed["id"].to_pylist(), removed["reason"].to_pylist(), removed["detail"].to_pylist())) == expected_removed
    assert len(expected_removed) > 20 and {d.split()[0] for _, _, d in expected_removed} == {"src_text", "tgt_text"}
    assert kept.num_rows + removed.num_rows == sum(b.num_rows for b in batches)


def test_nfc_unsafe_has_every_character_that_nfc_may_change():
    """Derived from polars' own normalizer over every code point: what NFC changes alone, what comes after the first
    character of a decomposition (what may compose with the character before), and what has a combining class (what
    canonical ordering may move: probed against U+0345, class 240, and U+0334, class 1)."""
    from schemas.text.normalize import NFC_UNSAFE

    chars = pl.Series([chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000], dtype=pl.String)
    nfd = chars.str.normalize("NFD")
    changed = chars.filter(chars.str.normalize("NFC") != chars)
    later = nfd.filter(nfd.str.len_chars() > 1).str.slice(1).str.split("").explode()
    plain = chars.filter(nfd == chars)
    before, after = ("\u0345" + plain).str.normalize("NFD"), (plain + "\u0334").str.normalize("NFD")
    ordered = plain.filter((before != "\u0345" + plain) | (after != plain + "\u0334"))
    needed = pl.concat([changed, later, ordered]).unique()
    assert len(changed) > 1000 and len(ordered) > 800 and "\u1161" in later.to_list()
    missing = needed.filter(~needed.str.contains(f"^{NFC_UNSAFE}$"))
    assert missing.to_list() == []


def _random_texts(generator: random.Random, count: int) -> list[str]:
    pieces = ["a", "E", "é", "e\u0301", "\u0301", "A\u030a", "\u212b", "\u1100\u1161", "\u11a8", "가", "か\u3099", "\uf900", "क\u093c",
              "\u0958", "ß", "中", " ", "  ", "\t", "\r\n", "\n", "\n\n", " \n ", "\u00a0", "\u2003", "\u3000", "\u200b", "\ufeff",
              "\x00", "\x1f", "\x85", "\u2028", "\u1680", "word", "ǖ", "u\u0308\u0304", "\u0323\u0302", "\u0302\u0323"]  # fmt: skip
    return ["".join(generator.choices(pieces, k=generator.randint(0, 12))) for _ in range(count)]


def test_normalize_rewrites_only_what_would_change():
    from pipelines.steps.normalize import NormalizeText
    from schemas.text.normalize import _rewrite, nfc, normalize_text

    texts = pl.Series(_random_texts(random.Random(5), 3000) + ["plain text", "Ünïcödé", "中文"], dtype=pl.String)
    assert normalize_text(texts).to_list() == _rewrite(texts).to_list()  # the five rewrites applied to every text
    assert nfc(texts).to_list() == texts.str.normalize("NFC").to_list()
    assert (normalize_text(texts) != texts).sum() > 1000
    table = pairs([("deu_Latn", s, "eng_Latn", t) for s, t in zip(texts.to_list(), reversed(texts.to_list()))])
    out = NormalizeText().process(table)
    assert out.schema == table.schema
    assert out.column("src_text").to_pylist() == _rewrite(texts).to_list()
    assert out.column("tgt_text").to_pylist() == _rewrite(texts.reverse()).to_list()
    plain = pairs([("deu_Latn", "Neuer Tab", "eng_Latn", "New tab")])
    assert NormalizeText().process(plain).equals(plain)


def test_orient_and_selection_shortcuts_give_the_rows_of_the_plain_formulation():
    """A file of one language pair has all or none of its pairs to turn, and all of them selected by the task that owns
    its language: then columns trade names and nothing is filtered. The rows must be those of the row-by-row rule."""
    from pipelines.sources import HAS_PIVOT, PIVOTS, _selected, orient

    def plain(frame, keep_unpaired):
        src_is_pivot = pl.col("src_lang").is_in(PIVOTS) & (~pl.col("tgt_lang").is_in(PIVOTS) | (pl.col("src_lang") == "eng_Latn"))
        swapped = {"src_lang": "tgt_lang", "tgt_lang": "src_lang", "src_text": "tgt_text", "tgt_text": "src_text"}
        frame = frame.with_columns([pl.when(src_is_pivot).then(pl.col(b)).otherwise(pl.col(a)).alias(a) for a, b in swapped.items()])
        return frame if keep_unpaired else frame.filter(HAS_PIVOT)

    def frame(rows):
        return pl.DataFrame(rows, schema=["src_lang", "src_text", "tgt_lang", "tgt_text", "source_id"], orient="row")

    turned = frame([("eng_Latn", "Save", "deu_Latn", "Speichern", "1"), ("eng_Latn", "Open", "deu_Latn", "Öffnen", "2")])
    kept = frame([("deu_Latn", "Speichern", "eng_Latn", "Save", "1")])
    mixed = frame([("eng_Latn", "Save", "deu_Latn", "Speichern", "1"), ("fra_Latn", "Ouvrir", "eng_Latn", "Open", "2"),
                   ("zho_Hans", "打开", "eng_Latn", "Open", "3"), ("eng_Latn", "Open", "zho_Hans", "打开", "4"),
                   ("eng_Latn", "Colour", "eng_Latn", "Color", "5"), ("deu_Latn", "Tab", "fra_Latn", "Onglet", "6")])  # fmt: skip
    for table in (turned, kept, mixed, turned.clear()):
        for keep_unpaired in (True, False):
            assert orient(table, keep_unpaired).equals(plain(table, keep_unpaired))
        oriented = orient(table, keep_unpaired=True)
        for langs, unpaired in ((["deu_Latn"], False), (["deu_Latn"], True), (["fra_Latn", "zho_Hans"], False), ([], True)):
            expected = oriented.filter((HAS_PIVOT & pl.col("src_lang").is_in(langs)) | (pl.lit(unpaired) & ~HAS_PIVOT))
            assert _selected(oriented, langs, unpaired).equals(expected)
    assert orient(turned, keep_unpaired=True)["src_text"].to_list() == ["Speichern", "Öffnen"]


@pytest.mark.parametrize("batch_rows", [50, 5_000])  # smaller and larger than the pivot table
def test_the_pivot_join_keeps_the_batch_order(tmp_path, batch_rows):
    english = [f"sentence number {i}" for i in range(500)]
    pq.write_table(pairs([("zho_Hans", f"第{i}句", "eng_Latn", text) for i, text in enumerate(english)]), tmp_path / "zho_Hans.parquet")
    rng = random.Random(batch_rows)
    rows = [("deu_Latn", f"Satz {n}", "eng_Latn", rng.choice(english)) for n in range(batch_rows)]
    joined = list(PivotJoin(tmp_path / "zho_Hans.parquet", set()).run(iter([pairs(rows)])))[1]
    assert joined["src_text"].to_pylist() == [src for _, src, _, _ in rows]  # every row has a Chinese side
    assert joined["tgt_text"].to_pylist() == [f"第{english.index(en)}句" for _, _, _, en in rows]


def test_normalize_removes_word_joiners_and_zero_width_joiners_that_join_nothing():
    from schemas.text.normalize import normalize_text

    texts = ["Save\u2060 file", "Sa\u200cve", "\u200dOpen", "Open\u200c", "क्\u200dष", "می\u200cخواهم", "👩\u200d💻"]
    assert normalize_text(pl.Series(texts)).to_list() == ["Save file", "Save", "Open", "Open", "क्\u200dष", "می\u200cخواهم", "👩\u200d💻"]
