from pathlib import Path

import pytest

from langid.identify import LanguageIdentifier, label_to_flores
from langid.models import FastTextModel, ModelNotFound, default_model_path


@pytest.fixture(scope="module")
def identifier():
    return LanguageIdentifier(FastTextModel.load(), threshold=0.5, min_script_fraction=0.5)


def test_default_model_is_the_packaged_lid176():
    path = default_model_path()
    assert path.name == "lid.176.ftz" and path.is_file()
    assert len(FastTextModel.load().labels) == 176


def test_batch_prediction():
    model = FastTextModel.load()
    labels, scores = model.predict(["This is an English sentence about rights.", "Dies ist ein deutscher Satz.\nZwei Zeilen."])
    assert labels == ["en", "de"]
    assert scores.shape == (2,) and (scores > 0.5).all()


def test_labels_map_to_flores():
    assert label_to_flores("de") == "deu_Latn"
    assert label_to_flores("als") == "gsw_Latn"
    assert label_to_flores("deu_Latn") == "deu_Latn"  # GlotLID/OpenLID/NLLB style labels


def test_right_language_passes(identifier):
    verdict = identifier.check(["Alle Menschen sind frei und gleich an Würde und Rechten geboren."], "deu_Latn")
    assert verdict.passed.tolist() == [True]


def test_wrong_language_is_rejected_by_the_model(identifier):
    verdict = identifier.check(["All human beings are born free and equal in dignity and rights."], "deu_Latn")
    assert verdict.passed.tolist() == [False]
    assert verdict.failed_check == ["language_id"]
    assert "predicted eng_Latn" in verdict.detail[0]


def test_macrolanguage_labels_accept_their_members(identifier):
    text = "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا"
    assert identifier.covers("arb_Arab")
    assert identifier.check([text], "arb_Arab").passed.tolist() == [True]


def test_languages_without_a_label_are_checked_by_script(identifier):
    assert not identifier.covers("sat_Olck")
    verdict = identifier.check(["ᱡᱷᱚᱛᱚ ᱦᱚᱲ ᱠᱚ ᱡᱟᱱᱟᱢ ᱠᱷᱚᱱ", "All human beings are born free"], "sat_Olck")
    assert verdict.passed.tolist() == [True, False]
    assert verdict.failed_check == [None, "script"]


def test_missing_model_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(ModelNotFound, match="nope.bin"):
        FastTextModel.load(missing)


def test_corrupt_model_file_names_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.ftz"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="corrupt.ftz"):
        FastTextModel.load(corrupt)
