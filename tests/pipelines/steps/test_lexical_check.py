"""The lexical check (pipelines/steps/lexical_check.py): on real held-out Firefox strings it keeps clean pairs and
drops off-by-one shifted and cut ones, with readable reasons; its recipe key; its shipped lexicon."""

import json

import polars as pl
import pyarrow.parquet as pq
import pytest

from pipelines import recipe as recipes
from pipelines.batch import RemovedRows
from pipelines.lexicon import LEXICON, load_lexicon
from pipelines.stages import pair_checks
from pipelines.steps.lexical_check import LexicalCheck
from tests.helpers import pairs

LANGS = ("deu_Latn", "fra_Latn", "rus_Cyrl", "zho_Hans", "tur_Latn")


@pytest.fixture(scope="module")
def heldout():
    """Held-out Firefox pairs of a few languages in file order, normalized as the build does, one per English string."""
    from tests.benchmarks.dirty_corpus import clean_base, firefox_pairs

    try:
        frame = firefox_pairs("heldout", langs=set(LANGS))
    except FileNotFoundError:
        pytest.skip("no Firefox corpus")
    return clean_base(frame).select("src_lang", "src_text", "tgt_text").head(2500)


def as_table(frame: pl.DataFrame):
    return pairs([(lang, x, "eng_Latn", english) for lang, x, english in frame.iter_rows()])


def flagged(tmp_path, frame: pl.DataFrame, name: str) -> pl.DataFrame:
    step = LexicalCheck(RemovedRows(tmp_path / name))
    kept = sum(t.num_rows for t in step.run(iter([as_table(frame)])))
    removed = pl.from_arrow(pq.read_table(step.removed.folder / step.name / "run-00000.parquet"))
    assert kept + removed.height == frame.height
    return removed


def test_it_keeps_clean_pairs_and_drops_shifted_and_cut_ones(tmp_path, heldout):
    clean = flagged(tmp_path, heldout, "clean")
    assert clean.height / heldout.height <= 0.02, clean.select("src_text", "tgt_text", "detail").head(10)
    # the X side of the next row of the same language, where it differs: an off-by-one misalignment
    shifted = heldout.with_columns(src_text=pl.col("src_text").shift(-1).over("src_lang")).drop_nulls()
    shifted = shifted.filter(pl.col("src_text") != heldout["src_text"].head(shifted.height))
    mismatched = flagged(tmp_path, shifted, "shifted")
    assert mismatched.height / shifted.height >= 0.3
    assert set(mismatched["reason"]) <= {"lexical_mismatch", "cut_word"}
    assert mismatched.filter(pl.col("reason") == "lexical_mismatch")["detail"].str.contains(r"^0% of \d+ tokens .* unmatched: \w").any()
    # the English side cut to half its letters, inside a word
    long = heldout.filter(pl.col("tgt_text").str.len_chars() >= 20)
    cut = long.with_columns(tgt_text=pl.col("tgt_text").str.slice(0, pl.col("tgt_text").str.len_chars() // 2).str.strip_chars())
    cut_rows = flagged(tmp_path, cut, "cut")
    assert cut_rows.height / cut.height >= 0.3
    assert cut_rows.filter(pl.col("reason") == "cut_word")["detail"].str.contains("^tgt ends inside a word: '").all()


def test_pairs_without_english_or_without_a_lexicon_pass(tmp_path):
    table = pairs([("deu_Latn", "Lesezeichen verwalten", "fra_Latn", "Le chat dort sur le canapé"),
                   ("xxx_Latn", "Lesezeichen verwalten", "eng_Latn", "The cat sleeps on the sofa"),
                   ("eng_Latn", "Open a new private window", "deu_Latn", "Lesezeichen verwalten"),
                   ("eng_Latn", "Open a new private window", "deu_Latn", "Neues privates Fenster öffnen")])  # fmt: skip
    verdict = LexicalCheck(RemovedRows(tmp_path)).reasons(table)
    assert verdict["reason"].to_list()[:2] == [None, None]
    assert verdict["reason"].to_list()[2:] == ["lexical_mismatch", None]  # English first is checked the same way


def test_the_recipe_key_turns_it_on_and_keeps_the_build_key_while_off(tmp_path):
    off = recipes.parse({"name": "x", "parallel": [{"type": "udhr"}]})
    assert "lexical" not in off.to_dict()["filters"]
    assert "lexical_check" not in [s.name for s in pair_checks(RemovedRows(tmp_path), off.filters)]
    on = recipes.parse({"name": "x", "parallel": [{"type": "udhr"}], "filters": {"lexical": {"max_coverage": 0.2}}})
    step = pair_checks(RemovedRows(tmp_path), on.filters)[-1]
    assert step.name == "lexical_check" and step.max_coverage == 0.2
    with pytest.raises(recipes.RecipeError, match=r"filters\.lexical\.lexicon: .*no links\.parquet"):
        recipes.parse({"name": "x", "parallel": [{"type": "udhr"}], "filters": {"lexical": {"lexicon": str(tmp_path)}}})


def test_the_shipped_lexicon_is_learnt_on_train_data_and_covers_the_firefox_languages():
    links, min_known, words = load_lexicon()
    table = json.loads((LEXICON / "thresholds.json").read_text(encoding="utf-8"))
    assert "firefox:train and UDHR train" in table["calibrated_on"]
    assert set(LANGS) <= set(min_known) and all(3 <= k <= 8 for k in min_known.values())
    assert set(links["lang"].unique()) >= set(min_known)
    assert words.filter(pl.col("lang") == "eng_Latn").height > 1000
