"""The dirty corpus of the quality benchmark (tests/benchmarks/dirty_corpus.py): each label is what it says."""

from __future__ import annotations

import json

import polars as pl
import pytest

from pipelines.sources import TableSource
from tests.benchmarks import bench_quality
from tests.benchmarks.dirty_corpus import CONTROL_CHARS, KINDS, firefox_pairs, make_corpus, same_text, udhr_pairs, write_corpus

# Latin, Cyrillic, Greek and Japanese: wrong_language finds both same-script and other-script replacements
LANGS = {"deu_Latn", "fra_Latn", "nld_Latn", "rus_Cyrl", "ukr_Cyrl", "ell_Grek", "jpn_Jpan"}
ROWS = 640


@pytest.fixture(scope="module")
def corpus() -> pl.DataFrame:
    return make_corpus("heldout", ROWS, seed=3, long_share=0.25, langs=LANGS)


@pytest.fixture(scope="module")
def originals() -> pl.DataFrame:
    """Every pair the corpus was drawn from, with its file and place in it."""
    firefox = firefox_pairs("heldout", langs=LANGS)
    return pl.concat([firefox, udhr_pairs("heldout", LANGS).select(firefox.columns)])


def rows_of(corpus: pl.DataFrame, label: str) -> list[dict]:
    rows = corpus.filter(pl.col("label") == label).to_dicts()
    assert rows, f"no {label} rows"
    return rows


def test_every_kind_is_there_and_most_rows_are_clean(corpus):
    counts = dict(corpus.filter(pl.col("part") == "short").group_by("label").len().iter_rows())
    assert set(counts) == {"clean", *KINDS}
    assert len(set(counts[k] for k in KINDS)) == 1  # the quota of every kind was met
    share = counts["clean"] / sum(counts.values())
    assert 0.75 < share < 0.85
    assert set(corpus.filter(pl.col("part") == "long")["label"]) == {"clean", *KINDS}


def test_clean_rows_are_the_originals_and_no_two_are_the_same(corpus):
    clean = corpus.filter(pl.col("label") == "clean")
    assert (clean["src_text"] == clean["orig_src"]).all() and (clean["tgt_text"] == clean["orig_tgt"]).all()
    keys = clean.select("part", "src_lang", pl.col("src_text").str.to_lowercase(), pl.col("tgt_text").str.to_lowercase())
    assert not keys.is_duplicated().any()
    assert not (clean["src_text"].str.to_lowercase() == clean["tgt_text"].str.to_lowercase()).any()


def test_wrong_language_is_the_same_english_in_another_language(corpus, originals):
    translations = set(originals.select("src_lang", "src_text", "tgt_text").iter_rows())
    scripts = set()
    for row in rows_of(corpus, "wrong_language"):
        assert row["note"] != row["src_lang"] and (row["note"], row["src_text"], row["tgt_text"]) in translations
        assert not same_text(row["src_text"], row["orig_src"]) and row["tgt_text"] == row["orig_tgt"]
        scripts.add(row["note"].split("_")[1] == row["src_lang"].split("_")[1])
    assert scripts == {True, False}  # same-script and other-script replacements both


def test_untranslated_is_the_english_side(corpus):
    for row in rows_of(corpus, "untranslated"):
        assert row["src_text"] == row["tgt_text"] == row["orig_tgt"] and not same_text(row["orig_src"], row["orig_tgt"])


def test_misaligned_is_the_neighbouring_row_of_the_same_file(corpus, originals):
    where = {r["origin"]: r for r in originals.select("origin", "file", "place", "src_text").iter_rows(named=True)}
    for row in rows_of(corpus, "misaligned"):
        own, neighbour = where[row["origin"]], where[row["note"]]
        assert neighbour["file"] == own["file"] and abs(neighbour["place"] - own["place"]) == 1
        assert row["src_text"] == neighbour["src_text"] and not same_text(row["src_text"], row["orig_src"])
        assert row["tgt_text"] == row["orig_tgt"]


def test_duplicated_copies_a_clean_row_that_comes_first(corpus):
    clean = {(r["part"], r["src_lang"], r["src_text"], r["tgt_text"]): r["id"] for r in rows_of(corpus, "clean")}
    for row in rows_of(corpus, "duplicated"):
        original = clean[(row["part"], row["src_lang"], row["src_text"], row["tgt_text"])]
        assert original < row["id"]  # ids follow reading order: the copy is the later one


def test_empty_blanks_one_side(corpus):
    for row in rows_of(corpus, "empty"):
        blank = [side for side in ("src", "tgt") if not row[f"{side}_text"].strip()]
        assert blank == [row["side"]]
        other = "tgt" if row["side"] == "src" else "src"
        assert row[f"{other}_text"] == row[f"orig_{other}"]


def test_mojibake_is_utf8_read_as_cp1252_or_latin1(corpus):
    for row in rows_of(corpus, "mojibake"):
        side, raw = row[f"{row['side']}_text"], row[f"orig_{row['side']}"].encode("utf-8")
        readings = {raw.decode("latin-1")}
        try:
            readings.add(raw.decode("cp1252"))
        except UnicodeDecodeError:
            pass
        assert side in readings and side != row[f"orig_{row['side']}"]


def test_truncated_is_a_strict_prefix_of_30_to_60_percent(corpus):
    for row in rows_of(corpus, "truncated"):
        side, original = row[f"{row['side']}_text"], row[f"orig_{row['side']}"]
        assert original.startswith(side) and len(side) < len(original)
        assert 0.3 - 1 / len(original) <= len(side) / len(original) <= 0.6 + 1 / len(original)


def test_control_chars_are_inserted_and_only_they(corpus):
    for row in rows_of(corpus, "control_chars"):
        side, original, inserted = row[f"{row['side']}_text"], row[f"orig_{row['side']}"], row["note"]
        assert inserted and all(c in CONTROL_CHARS and c not in original for c in inserted)
        assert side != original and "".join(c for c in side if c not in inserted) == original


def test_the_same_seed_gives_the_same_corpus(corpus):
    assert make_corpus("heldout", ROWS, seed=3, long_share=0.25, langs=LANGS).equals(corpus)
    other = make_corpus("heldout", ROWS, seed=4, long_share=0.25, langs=LANGS)
    assert not other.select("label", "src_text").equals(corpus.select("label", "src_text"))


def test_train_is_refused():
    with pytest.raises(ValueError, match="train"):
        make_corpus("train", 10)


def test_the_build_reads_each_row_under_its_labelled_source_id(corpus, tmp_path):
    paths = write_corpus(corpus, tmp_path)
    labels = pl.read_parquet(tmp_path / "labels.parquet")
    for part, path in paths.items():
        source = TableSource(name="dirty", format="parquet", path=str(path), columns={"source_id": "id"})
        read = pl.concat([pl.from_arrow(t) for t in source.read(source.languages(), unpaired=True)])
        expected = labels.filter(pl.col("part") == part)
        joined = read.join(expected, on="source_id", how="inner")
        assert joined.height == read.height == expected.height
        assert (joined["src_text"] == joined["src_text_right"]).all() and (joined["tgt_text"] == joined["tgt_text_right"]).all()


def test_recipe_extras_override_settings(tmp_path):
    fragment = tmp_path / "fragment.yaml"
    fragment.write_text("langid: {min_model_chars: 40}\ndedup: {near: {enabled: false}}\n")
    extras = ["filters.max_length_ratio=4", str(fragment)]
    recipe = bench_quality.make_recipe("bayling2", {"short": tmp_path / "f.parquet"}, extras, "heldout")
    assert recipe["filters"]["max_length_ratio"] == 4 and recipe["langid"]["min_model_chars"] == 40
    assert recipe["dedup"]["near"] == {**recipe["dedup"]["near"], "enabled": False} and recipe["dedup"]["near"]["ngram"] == 5
    assert recipe["mixture"] is None and recipe["pivot_join"] is False and recipe["instructions"] == []
    with pytest.raises(SystemExit, match="neither key=value"):
        bench_quality.make_recipe("bayling2", {}, ["no-such-file.yaml"], "heldout")


@pytest.mark.slow
def test_benchmark_accounts_for_every_row(tmp_path):
    """End to end on a small corpus: every row is kept or removed, and the report's numbers add up."""
    report = tmp_path / "report.json"
    assert bench_quality.main(["--rows", "1500", "--langs", ",".join(sorted(LANGS)), "--workdir", str(tmp_path / "work"),
                               "--json", str(report), "--workers", "1", "--tasks", "2"]) == 0  # fmt: skip
    parts = json.loads(report.read_text())["parts"]
    assert parts["all"]["rows"] == parts["short (Firefox)"]["rows"] + parts["long (UDHR)"]["rows"] > 1500
    for summary in parts.values():
        kinds = summary["kinds"]
        assert sum(k["rows"] for k in kinds.values()) == summary["rows"]
        assert sum(r["rows"] for r in summary["removals"]) == sum(k["dropped"] for k in kinds.values())
        for k in kinds.values():
            assert sum(k["reasons"].values()) == k["dropped"] and k["handled"] <= k["rows"]
            assert k["dropped_as_clean_original"] <= k["dropped"] - k["reasons"].get("exact_dedup/duplicate", 0)
        assert kinds["empty"]["dropped"] == kinds["empty"]["rows"]  # the pair filter drops every empty side
        assert kinds["untranslated"]["dropped"] == kinds["untranslated"]["rows"]  # identical sides
        # normalize removes every C0 control character: none may be found left in a kept row's output
        assert not [c for c in summary["control_chars_left"] if int(c[2:], 16) < 0x20]
    assert parts["all"]["kinds"]["control_chars"]["repaired"] > 0
