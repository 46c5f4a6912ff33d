import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import langid
from langid.identify import LanguageIdentifier, ModelCheck, macro_language
from langid.models import HUB_MODELS, OWN_MODEL_PATH, FastTextModel, ModelNotFound, label_to_flores, lid176_path
from langid.thresholds import FLOOR, GLOBAL_THRESHOLD, Thresholds, compute, reject_threshold
from schemas.language_codes import FLORES200

EN = "All human beings are born free and equal in dignity and rights."
DE = "Alle Menschen sind frei und gleich an Würde und Rechten geboren."
ZH_HANS = "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。"
ZH_HANT = "人人生而自由，在尊嚴和權利上一律平等。他們賦有理性和良心，並應以兄弟關係的精神相對待。"


@pytest.fixture(scope="module")
def lid176():
    return FastTextModel.load("lid176")


@pytest.fixture(scope="module")
def pipeline_identifier():
    return LanguageIdentifier.load()


def test_default_model_is_the_packaged_lid176(lid176):
    """lid.176.ftz ships in langid/data/ (package data) beside its license note: a plain install needs nothing else."""
    path = lid176_path()
    assert path == Path(langid.__file__).with_name("data") / "lid.176.ftz" and lid176.path == path
    assert lid176.sha256 == "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
    assert len(lid176.labels) == 176
    note = path.with_name("lid.176.LICENSE.txt").read_text()
    assert "CC-BY-SA-3.0" in note and "Facebook" in note and lid176.sha256 in note


def test_every_lid176_label_maps_to_a_flores_code(lid176):
    codes = {label: label_to_flores(label) for label in lid176.labels}
    assert all(len(code.split("_")) == 2 and len(code.split("_")[0]) == 3 for code in codes.values()), codes
    assert codes["de"] == "deu_Latn" and codes["sw"] == "swh_Latn" and codes["ar"] == "arb_Arab"
    assert codes["als"] == "gsw_Latn" and codes["zh"] == "zho_Hani"  # Han: the text decides Hans/Hant
    assert len(set(codes.values())) == 176  # no two labels collapse into one code
    assert sum(code in FLORES200 for code in codes.values()) >= 100


def test_flores_style_labels_of_other_models():
    assert label_to_flores("__label__deu_Latn") == "deu_Latn"  # GlotLID, OpenLID, NLLB, ours
    assert label_to_flores("__label__arb_Arab") == "arb_Arab"
    assert label_to_flores("cmn_Hani") == "zho_Hani"


def test_batch_prediction_with_top_k(lid176):
    codes, scores = lid176.predict([EN, DE + "\nZwei Zeilen."], k=3)
    assert [c[0] for c in codes] == ["eng_Latn", "deu_Latn"]
    assert scores.shape == (2, 3) and (scores[:, 0] >= scores[:, 1]).all()


def test_chinese_labels_take_the_script_of_the_text(lid176):
    codes, _ = lid176.predict([ZH_HANS, ZH_HANT])
    assert [c[0] for c in codes] == ["zho_Hans", "zho_Hant"]


def test_macro_language():
    assert macro_language("arb_Arab") == "ar" and macro_language("prs_Arab") == "fa" and macro_language("swh_Latn") == "sw"


def test_right_language_passes(pipeline_identifier):
    assert pipeline_identifier.check([DE], "deu_Latn").passed.tolist() == [True]
    assert pipeline_identifier.check([ZH_HANS], "zho_Hans").passed.tolist() == [True]


def test_wrong_language_is_rejected_by_the_model(pipeline_identifier):
    verdict = pipeline_identifier.check([EN], "deu_Latn")
    assert verdict.passed.tolist() == [False]
    assert verdict.failed_check == ["language_id"]
    assert "bayling-lid: " in verdict.detail[0] and "lid176: eng_Latn" in verdict.detail[0]  # what each model said


def test_a_neighbouring_language_is_rejected(pipeline_identifier):
    nob = "Alle mennesker er født frie og med samme menneskeverd og menneskerettigheter."
    assert pipeline_identifier.check([nob], "nob_Latn").passed.tolist() == [True]
    assert pipeline_identifier.check([nob], "swe_Latn").passed.tolist() == [False]


def test_a_text_is_rejected_on_evidence_of_another_language_not_for_a_lack_of_confirmation(lid176):
    sure = Thresholds(reject_pooled=[1.0, 1.0, 1.0, 1.0])  # any margin of e or more is evidence
    never = Thresholds(reject_pooled=[99.0, 99.0, 99.0, 99.0])  # no margin is
    short_en = "Open a new tab"
    assert LanguageIdentifier([ModelCheck(lid176, sure)]).check([EN, short_en], "deu_Latn").passed.tolist() == [False, False]
    # the same texts pass where the margin of English over German is not enough to count
    assert LanguageIdentifier([ModelCheck(lid176, never)]).check([EN, short_en], "deu_Latn").passed.tolist() == [True, True]
    verdict = LanguageIdentifier([ModelCheck(lid176, sure)]).check([EN], "deu_Latn")
    assert verdict.failed_check == ["language_id"] and "lid176: eng_Latn" in verdict.detail[0] and ">= 1.0" in verdict.detail[0]


def test_thresholds_depend_on_the_length_of_the_text(lid176):
    by_length = Thresholds(reject_pooled=[99.0, 1.0, 1.0, 1.0], buckets=(20, 60, 200))  # texts under 20 characters: never
    identifier = LanguageIdentifier([ModelCheck(lid176, by_length)])
    assert identifier.check(["Open a new tab", EN], "deu_Latn").passed.tolist() == [True, False]
    assert by_length.rejection("deu_Latn", np.array([1, 19, 20, 59, 60, 500])).tolist() == [99.0, 99.0, 1.0, 1.0, 1.0, 1.0]


def test_a_model_that_confirms_overrules_one_that_doubts(lid176):
    udhr_lid = FastTextModel.load("udhr-lid")
    sure = Thresholds(reject_pooled=[1.0, 1.0, 1.0, 1.0])
    both = LanguageIdentifier([ModelCheck(udhr_lid, sure), ModelCheck(lid176, sure)])
    texts = load_texts_of("deu_Latn", 200)
    (confirmed_a, confirmed_b) = [check.confirms(texts, "deu_Latn") for check in both.checks]
    (against_a, _), (against_b, _) = [check.doubts(texts, "deu_Latn") for check in both.checks]  # a confirmed text has margin 0
    expected = confirmed_a | confirmed_b | ~(against_a | against_b)  # rejected only on evidence nobody overrules
    assert (confirmed_a & against_b).any() or (confirmed_b & against_a).any()  # the case this test is about occurs
    assert both.check(texts, "deu_Latn").passed.tolist() == expected.tolist()


def load_texts_of(lang: str, n: int) -> list[str]:
    """Short real text: UI strings of the Firefox corpus's calibration split."""
    from langid.texts import load_firefox

    return load_firefox("calibration").filter(pl.col("lang") == lang)["text"].head(n).to_list()


def test_the_cheaper_model_is_asked_first_and_decides_nothing_differently(monkeypatch):
    from schemas.text.udhr import load_udhr

    heldout = load_udhr().filter(pl.col("split") != "train")
    texts = heldout.filter(pl.col("lang").is_in(["deu_Latn", "nld_Latn", "eng_Latn"]))["text"].to_list()
    identifier = LanguageIdentifier.load("udhr-lid,lid176")
    asked = []
    for check in identifier.checks:
        predict = check.model.predict
        monkeypatch.setattr(check.model, "predict", lambda batch, k=1, predict=predict, name=check.model.name: asked.append((name, len(batch), k)) or predict(batch, k))
    verdict = identifier.check(texts, "deu_Latn")
    top1 = [(name, n) for name, n, k in asked if k == 1]  # the top k is asked only of the texts a model did not confirm
    assert top1[0] == ("lid176", len(set(texts))) and top1[1][0] == "udhr-lid" and top1[1][1] < len(set(texts))
    assert all(n < len(set(texts)) for _, n, k in asked if k > 1)
    for check in identifier.checks:  # every model as cheap: asked in the recipe's order
        monkeypatch.setitem(check.model.__dict__, "cost", 0)
    asked.clear()
    in_order = identifier.check(texts, "deu_Latn")
    assert asked[0][0] == "udhr-lid"
    assert verdict.passed.tolist() == in_order.passed.tolist() and verdict.detail == in_order.detail
    assert 0 < verdict.passed.sum() < len(texts)
    assert all(d.index("udhr-lid") < d.index("lid176") for d in verdict.detail if "udhr-lid" in d and "lid176" in d)


def test_traditional_text_is_not_simplified_chinese(pipeline_identifier):
    verdict = pipeline_identifier.check([ZH_HANT], "zho_Hans")
    assert verdict.failed_check == ["script"] and "Hant" in verdict.detail[0]


def test_macrolanguage_labels_accept_their_members(lid176):
    check = ModelCheck(lid176, Thresholds())
    text = "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا"
    assert check.covers("arb_Arab") and not check.knows_exactly("ary_Arab")
    assert check.confirms([text], "arb_Arab").tolist() == [True]


def test_languages_without_a_label_are_checked_by_script(lid176):
    identifier = LanguageIdentifier([ModelCheck(lid176, Thresholds())])
    assert not identifier.covers("chr_Cher")
    verdict = identifier.check(["ᏂᎦᏓ ᎠᏂᏴᏫ ᏂᎨᎫᏓᎸᎾ ᎠᎴ ᎤᏂᏠᏱ", EN], "chr_Cher")
    assert verdict.passed.tolist() == [True, False]
    assert verdict.failed_check == [None, "script"]


def test_own_model_covers_every_corpus_language():
    from schemas.text.udhr import udhr_languages

    for spec in ("bayling-lid", "udhr-lid"):
        own = LanguageIdentifier.load(spec)
        missing = [lang for lang in udhr_languages() if not own.covers(lang)]
        assert len(missing) <= 2, (spec, missing)  # a declaration whose text is all in another script has no clean training text


def test_missing_model_file_names_the_file(tmp_path):
    with pytest.raises(ModelNotFound, match="nope.bin"):
        FastTextModel.load(tmp_path / "nope.bin")


def test_corrupt_model_file_names_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.ftz"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="corrupt.ftz"):
        FastTextModel.load(corrupt)


def test_a_model_is_loaded_once_per_process_and_file(tmp_path):
    path = tmp_path / "model.ftz"
    shutil.copy(lid176_path(), path)
    first = FastTextModel.load(path)
    assert FastTextModel.load(path) is first  # a later task of the same worker
    shutil.copy(OWN_MODEL_PATH, path)  # the file changed: loaded again
    again = FastTextModel.load(path)
    assert again is not first and len(again.labels) != len(first.labels)


def test_hub_models_load_from_the_local_cache_offline(tmp_path, monkeypatch):
    """A Hub id resolves through huggingface_hub's cache: with the file cached, no network is needed."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--cis-lmu--glotlid" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(lid176_path(), snapshot / "model_v3.bin")
    (cache / "models--cis-lmu--glotlid" / "refs").mkdir()
    (cache / "models--cis-lmu--glotlid" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert HUB_MODELS["glotlid"] == "hf://cis-lmu/glotlid/model_v3.bin"
    model = FastTextModel.load("glotlid")
    assert model.path.name == "model_v3.bin" and len(model.labels) == 176
    with pytest.raises(ModelNotFound, match="hf://laurievb/OpenLID/model.bin"):
        FastTextModel.load("openlid")


def test_thresholds_follow_the_fineweb2_rule_and_fix_the_share_of_good_text_rejected(lid176, tmp_path):
    texts = pl.DataFrame({"text": [DE, DE + " Wirklich.", DE + " Ja.", EN, EN + " Yes."], "lang": ["deu_Latn"] * 3 + ["eng_Latn"] * 2})
    thresholds = compute(lid176, texts, min_texts=3)
    _, scores = lid176.predict(texts["text"].to_list()[:3])
    expected = float(np.clip(np.median(scores[:, 0]) - np.std(scores[:, 0]), 0.3, 0.9))
    assert thresholds.per_language == {"deu_Latn": pytest.approx(expected, abs=1e-4)}
    assert thresholds.get("eng_Latn") == GLOBAL_THRESHOLD  # too few texts: the global threshold
    path = tmp_path / "t.json"
    path.write_text(json.dumps(thresholds.to_json(lid176)))
    read, sha = Thresholds.read(path)
    assert sha == lid176.sha256 and read.per_language == thresholds.per_language and read.reject_pooled == thresholds.reject_pooled


def test_reject_margins_let_through_alpha_of_the_good_text(lid176):
    frame = pl.concat([pl.DataFrame({"text": load_texts_of(lang, 400), "lang": lang}) for lang in ("deu_Latn", "fra_Latn")])
    assert frame.height > 100
    for alpha in (0.01, 0.05, 0.2):
        thresholds = compute(lid176, frame, buckets=(20, 60, 200), alpha=alpha, min_bucket_texts=30)
        identifier = LanguageIdentifier([ModelCheck(lid176, thresholds)], min_script_fraction=0.0)
        for lang in ("deu_Latn", "fra_Latn"):
            texts = frame.filter(pl.col("lang") == lang)["text"].to_list()
            rejected = 1 - identifier.check(texts, lang).passed.mean()
            assert rejected <= alpha + 1e-9, (lang, alpha, rejected)
    assert reject_threshold(np.array([0.0, 0.0, 5.0, 2.0]), 0.25) == pytest.approx(2.0)  # one of four may reach it
    assert reject_threshold(np.zeros(10), 0.01) == FLOOR  # a model that always puts the language first


def test_shipped_thresholds_match_the_shipped_models():
    for spec in ("lid176", "udhr-lid", "bayling-lid"):
        model = FastTextModel.load(spec)
        thresholds = Thresholds.for_model(model)
        assert len(thresholds.per_language) >= 100
        assert all(0.3 <= t <= 0.9 for t in thresholds.per_language.values())
        assert {"eng_Latn", "zho_Hans"} <= set(thresholds.reject) and len(thresholds.reject) >= 60
        assert all(len(t) == len(thresholds.buckets) + 1 and all(1.0 <= m <= 99.0 for m in t) for t in thresholds.reject.values())


def test_bad_thresholds_file_is_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format_version": 1, "model_sha256": "x", "global_threshold": 0.5, "per_language": {"deu_Latn": 3}}))
    with pytest.raises(ValueError, match="bad.json.*format_version"):
        Thresholds.read(path)
    good = {"format_version": 2, "model_sha256": "x", "global_threshold": 0.5, "per_language": {}, "buckets": [20, 60],
            "reject": {"deu_Latn": [1.0, 2.0, 3.0]}, "reject_pooled": None}  # fmt: skip
    path.write_text(json.dumps(good))
    assert Thresholds.read(path)[0].rejection("deu_Latn", np.array([5, 30, 90])).tolist() == [1.0, 2.0, 3.0]
    path.write_text(json.dumps({**good, "reject": {"deu_Latn": [1.0, 2.0]}}))
    with pytest.raises(ValueError, match="bad.json: reject deu_Latn"):
        Thresholds.read(path)
