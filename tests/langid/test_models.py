"""Pluggable language identifiers (langid.models.LanguageIDModel, heliport), the held-out gettext source, and the
comparison mode of langid.evaluate."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from langid import evaluate, train
from langid.identify import LanguageIdentifier
from langid.models import FastTextModel, LanguageIDModel, ModelNotFound, load_identifier
from langid.texts import gettext_locale_code, load_gettext, load_texts

SAMPLES = {
    "eng_Latn": "The file could not be saved because the disk is full.",
    "deu_Latn": "Die Datei konnte nicht gespeichert werden, weil der Datenträger voll ist.",
    "rus_Cyrl": "Не удалось сохранить файл, так как диск заполнен.",
    "ell_Grek": "Δεν ήταν δυνατή η αποθήκευση του αρχείου επειδή ο δίσκος είναι γεμάτος.",
    "arb_Arab": "تعذر حفظ الملف لأن القرص ممتلئ.",
    "hin_Deva": "फ़ाइल सहेजी नहीं जा सकी क्योंकि डिस्क भरी हुई है।",
    "zho_Hans": "无法保存文件，因为磁盘已满。",
    "jpn_Jpan": "ディスクがいっぱいのため、ファイルを保存できませんでした。",
    "kor_Hang": "디스크가 가득 차서 파일을 저장할 수 없습니다.",
}


def check_protocol(model, k=3):
    assert isinstance(model, LanguageIDModel)
    assert model.labels and set(model.labels) <= set(model.codes) and model.cost > 0
    assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
    codes, scores = model.predict(list(SAMPLES.values()), k=k)
    assert len(codes) == len(SAMPLES) and all(len(row) == k for row in codes)
    assert scores.shape == (len(SAMPLES), k) and scores.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all() and (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    assert not any(code.endswith("_Hani") for row in codes for code in row)  # the text decided Hans/Hant
    assert model.predict([], k=k)[1].shape[0] == 0
    return [row[0] for row in codes], scores[:, 0]


def test_fasttext_models_satisfy_the_protocol():
    model = load_identifier("udhr-lid")
    assert isinstance(model, FastTextModel) and model is FastTextModel.load("udhr-lid")
    check_protocol(model)
    top, confidence = check_protocol(load_identifier("lid176"))
    assert [t[:3] for t in top] == [g[:3] for g in SAMPLES] and confidence.max() == 1.0  # clipped: fastText adds 1e-5
    with pytest.raises(ModelNotFound, match="nope"):
        load_identifier("nope")


def test_heliport_missing_names_the_extra(monkeypatch):
    from langid.heliport_model import HeliportModel

    monkeypatch.setitem(sys.modules, "heliport", None)  # what `import heliport` meets when it is not installed
    with pytest.raises(ImportError, match=r"bayling-data\[heliport\].*GPL-3.0"):
        HeliportModel.load()


def test_heliport_predicts_flores_codes_with_confidences():
    pytest.importorskip("heliport")
    from langid import heliport_model

    model = load_identifier("heliport")
    assert isinstance(model, heliport_model.HeliportModel) and load_identifier("heliport") is model
    assert len(model.labels) == 220 and model.codes["eng"] == "eng_Latn" and model.codes["ara"] == "arb_Arab"
    assert model.codes["kor"] == "kor_Hang" and model.codes["pbt"] == "pbt_Arab"
    top, confidence = check_protocol(model)
    assert top == list(SAMPLES), list(zip(top, SAMPLES))
    assert (confidence > 0.5).all()
    # the scores are the top-k's relative likelihoods 10^-(s_i - s_1), normalized: the log ratio of two is HeLI's margin
    texts = ["Dobar dan, kako ste?", "Добар дан, како сте?", "OK", SAMPLES["deu_Latn"]]
    ranked = model.raw_scores(texts, 3)
    codes, scores = model.predict(texts, k=3)
    for row, found in zip(ranked, scores):
        heli = np.array([score for _, score in row])
        np.testing.assert_allclose(np.log10(found[0] / found[1:]), heli[1:] - heli[0], rtol=1e-4)
    assert (np.abs(scores.sum(axis=1) - 1) < 1e-5).all()
    assert codes[1][0] == "srp_Cyrl"  # Serbo-Croatian in Cyrillic is Serbian
    codes, scores = model.predict(["", "12345 %%", "人人生而自由，在尊嚴和權利上一律平等。"])
    assert codes[0][0] == codes[1][0] == "zxx" and scores[0, 0] == scores[1, 0] == 0.0
    assert codes[2][0] == "zho_Hant"
    identifier = LanguageIdentifier.load("heliport")
    assert identifier.check([SAMPLES["deu_Latn"]], "deu_Latn").passed.all()
    assert not identifier.check([SAMPLES["deu_Latn"]], "nld_Latn").passed.any()


def write_catalog(path: Path, entries: list[dict], mo: bool = True) -> None:
    import polib

    catalog = polib.POFile()
    catalog.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Plural-Forms": "nplurals=2; plural=(n != 1);"}
    for entry in entries:
        catalog.append(polib.POEntry(**entry))
    path.parent.mkdir(parents=True, exist_ok=True)
    catalog.save_as_mofile(str(path)) if mo else catalog.save(str(path))


@pytest.fixture
def locale_folder(tmp_path):
    """A tiny /usr/share/locale: German (.mo, with every kind of entry that is left out), Serbian in Latin (.po
    with a fuzzy entry), Chinese of Taiwan, an English variant, an unknown locale and an iso-codes catalog."""
    entries = [
        {"msgid": "Open the file", "msgstr": "Die Datei öffnen"},
        {"msgid": "%d file deleted", "msgid_plural": "%d files deleted", "msgstr_plural": {0: "%d Datei gelöscht", 1: "%d Dateien gelöscht"}},
        {"msgid": "Save as", "msgstr": ""},  # untranslated
        {"msgid": "Firefox", "msgstr": "Firefox"},  # the same as the msgid
        {"msgid": "%s: %d", "msgstr": "%s – %d."},  # placeholders and punctuation only
        {"msgid": "<b>%(name)s</b>", "msgstr": "<b>%(name)s</b>:"},
        {"msgid": "Internet", "msgstr": "Netz"},  # also Serbian below: cannot tell the two apart
    ]
    write_catalog(tmp_path / "de/LC_MESSAGES/app.mo", entries)
    write_catalog(tmp_path / "de/LC_MESSAGES/iso_3166.mo", [{"msgid": "Germany", "msgstr": "Deutschland"}])
    write_catalog(tmp_path / "sr@latin/LC_MESSAGES/app.po", [
        {"msgid": "Open the file", "msgstr": "Otvori datoteku"},
        {"msgid": "Close the window", "msgstr": "Zatvori prozor", "flags": ["fuzzy"]},
        {"msgid": "Internet", "msgstr": "Netz"},
    ], mo=False)  # fmt: skip
    write_catalog(tmp_path / "zh_TW/LC_MESSAGES/app.mo", [{"msgid": "Open the file", "msgstr": "開啟檔案"}])
    write_catalog(tmp_path / "en@quot/LC_MESSAGES/app.mo", [{"msgid": "Open the file", "msgstr": "“Open” the file"}])
    write_catalog(tmp_path / "xx/LC_MESSAGES/app.mo", [{"msgid": "Open the file", "msgstr": "Xyz the file"}])
    return tmp_path


def test_gettext_source_reads_catalogs_and_leaves_out_what_cannot_be_identified(locale_folder, monkeypatch):
    frame = load_gettext(locale_folder)
    assert sorted(frame.rows()) == [
        ("%d Datei gelöscht", "deu_Latn"), ("%d Dateien gelöscht", "deu_Latn"), ("Die Datei öffnen", "deu_Latn"),
        ("Otvori datoteku", "srp_Latn"), ("開啟檔案", "zho_Hant"),
    ]  # fmt: skip
    pivot = load_gettext(locale_folder, with_pivot=True)
    assert set(pivot.filter(pl.col("lang") == "eng_Latn")["text"]) == {"Open the file", "%d file deleted", "%d files deleted", "Internet"}
    capped = load_gettext(locale_folder, per_language=2)
    assert capped.filter(pl.col("lang") == "deu_Latn").height == 2 and capped.equals(load_gettext(locale_folder, per_language=2))
    monkeypatch.setenv("BAYLING_GETTEXT_LOCALE", str(locale_folder))
    assert sorted(load_texts("gettext:heldout+pivot").rows()) == sorted(pivot.rows())
    with pytest.raises(ValueError, match="gettext:train"):
        load_texts("gettext:train")
    with pytest.raises(FileNotFoundError, match="no gettext catalogs"):
        load_gettext(locale_folder / "de" / "LC_MESSAGES")


def test_gettext_locale_names():
    assert gettext_locale_code("sr@latin") == ("sr", "Latn") and gettext_locale_code("uz@cyrillic") == ("uz", "Cyrl")
    assert gettext_locale_code("ca@valencia") == ("ca", None) and gettext_locale_code("pt_BR") == ("pt_BR", None)
    assert gettext_locale_code("en_GB")[0] is None and gettext_locale_code("en@boldquot")[0] is None
    assert gettext_locale_code("sr@foo")[0] is None


def test_training_refuses_the_held_out_catalogs():
    with pytest.raises(ValueError, match="gettext:heldout.*reserved for evaluation"):
        train.training_examples(["udhr:train", "gettext:heldout"], train.Hyperparameters())


SYSTEM_LOCALE = Path("/usr/share/locale")
KNOWN = {"de": "deu_Latn", "fr": "fra_Latn", "ru": "rus_Cyrl", "ja": "jpn_Jpan", "zh_CN": "zho_Hans", "zh_TW": "zho_Hant", "sr@latin": "srp_Latn", "pt_BR": "por_Latn"}


def test_system_catalogs_map_known_locales(tmp_path):
    """On the operating system's own catalogs (a small one per locale, to stay fast): the labels are the ones
    these locales should get."""
    present = {}
    for locale in KNOWN:
        catalogs = (SYSTEM_LOCALE / locale / "LC_MESSAGES").glob("*.mo")
        files = sorted((f for f in catalogs if not f.name.startswith("iso_") and f.stat().st_size > 4000), key=lambda f: f.stat().st_size)
        if files:  # the smallest with some text
            (tmp_path / locale / "LC_MESSAGES").mkdir(parents=True)
            shutil.copy(files[0], tmp_path / locale / "LC_MESSAGES" / files[0].name)
            present[locale] = KNOWN[locale]
    if len(present) < 3:
        pytest.skip("fewer than 3 of the known locales have gettext catalogs in /usr/share/locale")
    frame = load_gettext(tmp_path)
    found = set(frame["lang"])
    assert found <= set(present.values()) and len(found) >= len(present) - 1, (found, present)


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    long = load_texts("udhr:heldout").filter(pl.col("lang").is_in(list(SAMPLES))).group_by("lang").head(3)
    long.write_parquet(folder / "long.parquet")
    short = pl.DataFrame({"text": list(SAMPLES.values()) + ["Datei", "Fichier ouvert"], "lang": list(SAMPLES) + ["deu_Latn", "fra_Latn"]})
    short.write_parquet(folder / "short.parquet")
    return folder


def test_evaluate_compares_models_on_several_data_sets(tiny_sets, tmp_path, capsys):
    output = tmp_path / "compare"
    args = ["--model", "lid176", "--model", "udhr-lid,lid176", "--data", str(tiny_sets / "long.parquet"), "--data", str(tiny_sets / "short.parquet")]
    evaluate.main(args + ["--output", str(output)])
    printed = capsys.readouterr().out
    reports = json.loads(output.with_suffix(".json").read_text())
    assert list(reports) == ["lid176", "udhr-lid,lid176"]
    for model, by_data in reports.items():
        assert list(by_data) == [str(tiny_sets / "long.parquet"), str(tiny_sets / "short.parquet")]
        assert f"| `{model}` | " in printed
        short = by_data[str(tiny_sets / "short.parquet")]
        assert short["texts"] == len(SAMPLES) + 2 and short["sentences_per_second"] > 0
        assert set(short["by_length"]) == {"1-20", "20-60", "60-200"} and short["by_length"]["1-20"]["texts"] == 3  # zh and the two words
        assert by_data[str(tiny_sets / "long.parquet")]["macro_f1"] > 0.7
    assert reports["udhr-lid,lid176"][str(tiny_sets / "short.parquet")]["languages_covered"] == 10
    assert "| 1-20 | 20-60 | 60-200 | 200+ |" in printed
    evaluate.main(args + ["--output", str(output), "--max-per-language", "1"])
    sampled = json.loads(output.with_suffix(".json").read_text())["lid176"][str(tiny_sets / "long.parquet")]
    assert sampled["texts"] == sampled["languages_in_data"] == len(SAMPLES)  # one text of each language


def test_evaluate_single_run_keeps_its_report_and_verify_splits_by_length(tiny_sets, tmp_path, capsys):
    output = tmp_path / "single"
    evaluate.main(["--model", "lid176", "--data", str(tiny_sets / "short.parquet"), "--output", str(output)])
    report = json.loads(output.with_suffix(".json").read_text())
    assert report["languages_covered"] == 10 and "by_length" in report and output.with_suffix(".png").exists()
    assert "by length: 1-20 characters" in capsys.readouterr().out
    evaluate.main(["--model", "udhr-lid,lid176", "--data", str(tiny_sets / "long.parquet"), "--verify"])
    lines = capsys.readouterr().out.splitlines()
    assert sum("true labels accepted" in line and "characters" in line for line in lines) >= 2


def test_evaluate_names_a_missing_model_in_one_line(capsys):
    with pytest.raises(SystemExit, match=r"^langid.evaluate: error: .*nope") as raised:
        evaluate.main(["--model", "nope"])
    assert "\n" not in str(raised.value)


@pytest.mark.slow  # Lingua loads its n-gram models lazily: about a minute for the languages of these scripts
def test_lingua_predicts_flores_codes_with_confidences():
    pytest.importorskip("lingua")
    from langid.lingua_model import LinguaModel

    model = load_identifier("lingua")
    assert isinstance(model, LinguaModel) and len(model.labels) == 75 and model.codes["kor"] == "kor_Hang"
    top, confidence = check_protocol(model)
    assert top == list(SAMPLES), list(zip(top, SAMPLES))
    codes, scores = model.predict(["", "Otvori datoteku i zatvori prozor."])
    assert scores[0, 0] == 0.0 and codes[1][0] in ("hrv_Latn", "bos_Latn", "srp_Latn")
