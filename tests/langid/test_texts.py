"""The text sources the own model is trained on (CLDR, Firefox, UDHR) and the shipped bayling-lid model."""

import json
import re

import polars as pl
import pytest
import xxhash

from langid import train
from langid.identify import LanguageIdentifier
from langid.models import MODEL_PATHS, FastTextModel, file_sha256
from langid.texts import cldr_locales, cldr_split, cldr_unmapped, firefox_folder, load_cldr, load_cldr_items, load_texts
from schemas.language_codes import to_flores

FLORES_STYLE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
needs_firefox = pytest.mark.skipif(not list(firefox_folder().glob("*-eng_Latn.parquet")), reason="no Firefox corpus here")


def test_cldr_locales_map_to_flores_codes_with_their_scripts():
    locales = cldr_locales()
    assert locales["sr_Latn"] == "srp_Latn" and locales["sr"] == "srp_Cyrl"
    assert locales["zh_Hant"] == "zho_Hant" and locales["zh"] == "zho_Hans"
    assert locales["uz_Arab"] == "uzs_Arab" and locales["uz"] == "uzn_Latn"
    assert "de_AT" not in locales  # regional locales repeat their parent
    assert all(FLORES_STYLE.match(code) and to_flores(code) == code for code in locales.values())
    assert "tok" in cldr_unmapped() and len(set(locales.values())) > 300


def test_cldr_split_is_stable_and_deterministic():
    keys = ["languages/de", "territories/FR", "months/format/wide/3", "unit_display_names/length-meter/long"]
    got = pl.DataFrame({"key": keys}).select(cldr_split(pl.col("key"))).to_series().to_list()
    # the same split from an independent XXH3 implementation: it cannot move with a library's version
    assert got == ["train" if xxhash.xxh3_64_intdigest(k.encode()) % 10 < 9 else "heldout" for k in keys]


@pytest.mark.slow  # reads all of CLDR through babel
def test_cldr_texts_are_disjoint_and_carry_a_language_signal():
    items = load_cldr_items()
    train_split, heldout = load_cldr("train"), load_cldr("heldout")
    assert 0.05 < heldout.height / (train_split.height + heldout.height) < 0.2
    assert train_split.join(heldout, on=["text", "lang"]).height == 0  # a held-out text is held out under all keys
    assert (heldout.select(cldr_split(pl.col("key"))).to_series() == "heldout").all()
    assert load_texts("cldr:train").equals(load_texts("cldr:train"))
    # strings that many languages share carry no language signal: none is kept
    assert items.group_by("text").agg(pl.col("lang").n_unique())["lang"].max() < 3
    assert not items["text"].str.contains(r"\{\d\}").any()
    german = set(items.filter(pl.col("lang") == "deu_Latn")["text"])
    assert {"Deutsch", "Mittwoch"} <= german and len(german) > 1000


@pytest.mark.slow
@needs_firefox
def test_training_examples_hold_no_heldout_or_calibration_text():
    hp = train.Hyperparameters(max_pieces_per_language=100_000)  # every text, not a sample
    examples = train.training_examples(["firefox:train+pivot", "cldr:train"], hp)
    trained = set(examples["text"])
    for spec in ("firefox:heldout+pivot", "firefox:calibration+pivot", "cldr:heldout"):
        assert not trained & set(load_texts(spec)["text"]), spec
    assert "eng_Latn" in set(examples["lang"])  # the English side of the pairs is trained on too
    assert set(load_texts("firefox:train")["lang"]) <= set(examples["lang"]) | set(train.LABEL_MERGES)


def test_clauses_of_long_texts_are_short_training_pieces():
    text = "Everyone has the right to life, liberty and security of person; no one shall be held in slavery. " * 2
    out = train.clauses(text, 15, 100)
    assert out and all(15 <= len(c) <= 100 for c in out) and "Everyone has the right to life," in out
    assert train.clauses("Short, one clause.", 15, 100) == []


@pytest.fixture(scope="module")
def bayling_lid():
    return FastTextModel.load("bayling-lid")


def test_shipped_model_matches_its_card(bayling_lid):
    card = json.loads(MODEL_PATHS["bayling-lid"].with_suffix(".json").read_text())
    assert card["sha256"] == file_sha256(MODEL_PATHS["bayling-lid"]) and card["labels"] == len(bayling_lid.labels) >= 450
    assert {s["source"] for s in card["training_data"]} == set(train.DEFAULT_SOURCES)
    assert all(s["sha256"] and s["license"] for s in card["training_data"])
    assert card["command"].startswith("python -m langid.train")
    assert MODEL_PATHS["bayling-lid"].stat().st_size < 10_000_000
    assert all(FLORES_STYLE.match(code) for code in bayling_lid.codes.values())


@needs_firefox
def test_shipped_model_covers_every_firefox_language():
    identifier = LanguageIdentifier.load("bayling-lid")
    languages = set(load_texts("firefox:heldout+pivot")["lang"])
    assert not {lang for lang in languages if not identifier.covers(lang)}


@pytest.mark.parametrize(
    "text, lang",
    [
        ("Open a new window", "eng_Latn"),
        ("Lesezeichen verwalten", "deu_Latn"),
        ("Enregistrer la page sous…", "fra_Latn"),
        ("Открыть в новой вкладке", "rus_Cyrl"),
        ("Άνοιγμα σε νέα καρτέλα", "ell_Grek"),
        ("新しいウィンドウを開く", "jpn_Jpan"),
        ("打开新窗口", "zho_Hans"),
        ("새 창 열기", "kor_Hang"),
        ("नई विंडो खोलें", "hin_Deva"),
        ("فتح نافذة جديدة", "arb_Arab"),
        ("เปิดหน้าต่างใหม่", "tha_Thai"),
        ("פתיחת חלון חדש", "heb_Hebr"),
    ],
)
def test_shipped_model_identifies_short_strings(bayling_lid, text, lang):
    codes, scores = bayling_lid.predict([text])
    assert codes[0][0] == lang, (text, codes[0][0], float(scores[0, 0]))
