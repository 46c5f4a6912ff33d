import json
import shutil

import numpy as np
import polars as pl
import pytest

from langid.identify import LanguageIdentifier, ModelCheck, macro_language
from langid.models import HUB_MODELS, OWN_MODEL_PATH, FastTextModel, ModelNotFound, label_to_flores, lid176_path
from langid.thresholds import GLOBAL_THRESHOLD, Thresholds, compute
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
    assert lid176_path().name == "lid.176.ftz"
    assert len(lid176.labels) == 176


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
    assert "udhr-lid: " in verdict.detail[0] and "lid176: eng_Latn" in verdict.detail[0]  # what each model said


def test_a_neighbouring_language_is_rejected(pipeline_identifier):
    nob = "Alle mennesker er født frie og med samme menneskeverd og menneskerettigheter."
    assert pipeline_identifier.check([nob], "nob_Latn").passed.tolist() == [True]
    assert pipeline_identifier.check([nob], "swe_Latn").passed.tolist() == [False]


def test_two_models_that_both_put_a_language_first_confirm_it_below_their_thresholds(lid176):
    udhr_lid = FastTextModel.load("udhr-lid")
    strict = Thresholds(1.01)  # no score clears it: only agreement can confirm
    both = LanguageIdentifier([ModelCheck(udhr_lid, strict), ModelCheck(lid176, strict)])
    verdict = both.check([DE, EN], "deu_Latn")
    assert verdict.passed.tolist() == [True, False]  # both say German for DE; for EN both say English
    assert "lid176: eng_Latn" in verdict.detail[1]
    one = LanguageIdentifier([ModelCheck(lid176, strict)])  # one model's top-1 alone is not enough
    assert one.check([DE], "deu_Latn").passed.tolist() == [False]
    both.agreement = False  # thresholds alone, as langid.evaluate --verify compares
    assert both.check([DE], "deu_Latn").passed.tolist() == [False]


def test_the_cheaper_model_is_asked_first_and_decides_nothing_differently(monkeypatch):
    from pipelines.corpus import load_udhr

    heldout = load_udhr().filter(pl.col("split") != "train")
    texts = heldout.filter(pl.col("lang").is_in(["deu_Latn", "nld_Latn", "eng_Latn"]))["text"].to_list()
    identifier = LanguageIdentifier.load("udhr-lid,lid176")
    asked = []
    for check in identifier.checks:
        predict = check.model.predict
        monkeypatch.setattr(check.model, "predict", lambda batch, k=1, predict=predict, name=check.model.name: asked.append((name, len(batch))) or predict(batch, k))
    verdict = identifier.check(texts, "deu_Latn")
    assert asked[0] == ("lid176", len(set(texts))) and asked[1][0] == "udhr-lid" and asked[1][1] < len(set(texts))
    for check in identifier.checks:  # every model as cheap: asked in the recipe's order
        monkeypatch.setitem(check.model.__dict__, "cost", 0)
    in_order = identifier.check(texts, "deu_Latn")
    assert asked[2][0] == "udhr-lid"
    assert verdict.passed.tolist() == in_order.passed.tolist() and verdict.detail == in_order.detail
    assert 0 < verdict.passed.sum() < len(texts) and all(d.index("udhr-lid") < d.index("lid176") for d in verdict.detail if d)


def test_traditional_text_is_not_simplified_chinese(pipeline_identifier):
    verdict = pipeline_identifier.check([ZH_HANT], "zho_Hans")
    assert verdict.failed_check == ["script"] and "Hant" in verdict.detail[0]


def test_macrolanguage_labels_accept_their_members(lid176):
    check = ModelCheck(lid176, Thresholds(0.3))
    text = "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا"
    assert check.covers("arb_Arab") and not check.knows_exactly("ary_Arab")
    assert check.confirm([text], "arb_Arab")[0].tolist() == [True]


def test_languages_without_a_label_are_checked_by_script(lid176):
    identifier = LanguageIdentifier([ModelCheck(lid176, Thresholds())])
    assert not identifier.covers("chr_Cher")
    verdict = identifier.check(["ᏂᎦᏓ ᎠᏂᏴᏫ ᏂᎨᎫᏓᎸᎾ ᎠᎴ ᎤᏂᏠᏱ", EN], "chr_Cher")
    assert verdict.passed.tolist() == [True, False]
    assert verdict.failed_check == [None, "script"]


def test_own_model_covers_every_corpus_language():
    from pipelines.corpus import udhr_languages

    own = LanguageIdentifier.load("udhr-lid")
    missing = [lang for lang in udhr_languages() if not own.covers(lang)]
    assert len(missing) <= 2, missing  # a declaration whose text is all in another script has no clean training text


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


def test_thresholds_follow_the_fineweb2_rule(lid176, tmp_path):
    texts = pl.DataFrame({"text": [DE, DE + " Wirklich.", DE + " Ja.", EN, EN + " Yes."], "lang": ["deu_Latn"] * 3 + ["eng_Latn"] * 2})
    thresholds = compute(lid176, texts, min_texts=3)
    _, scores = lid176.predict(texts["text"].to_list()[:3])
    expected = float(np.clip(np.median(scores[:, 0]) - np.std(scores[:, 0]), 0.3, 0.9))
    assert thresholds.per_language == {"deu_Latn": pytest.approx(expected, abs=1e-4)}
    assert thresholds.get("eng_Latn") == GLOBAL_THRESHOLD  # too few texts: the global threshold
    path = tmp_path / "t.json"
    path.write_text(json.dumps(thresholds.to_json(lid176)))
    read, sha = Thresholds.read(path)
    assert sha == lid176.sha256 and read.per_language == thresholds.per_language


def test_shipped_thresholds_match_the_shipped_models():
    for spec in ("lid176", "udhr-lid"):
        model = FastTextModel.load(spec)
        thresholds = Thresholds.for_model(model)
        assert len(thresholds.per_language) >= 100
        assert all(0.3 <= t <= 0.9 for t in thresholds.per_language.values())


def test_bad_thresholds_file_is_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format_version": 1, "model_sha256": "x", "global_threshold": 0.5, "per_language": {"deu_Latn": 3}}))
    with pytest.raises(ValueError, match="bad.json"):
        Thresholds.read(path)
