import pytest

from schemas.language_codes import (
    FLORES200,
    PIVOTS,
    UnknownLanguageCode,
    close_matches,
    from_lid176_label,
    language_name,
    resolve_languages,
    to_flores,
)


@pytest.mark.parametrize(
    "code, expected",
    [
        ("de", "deu_Latn"),  # ISO 639-1
        ("deu", "deu_Latn"),  # ISO 639-3
        ("deu_Latn", "deu_Latn"),  # already FLORES-200
        ("deu_latn", "deu_Latn"),
        ("zh", "zho_Hans"),
        ("zh-TW", "zho_Hant"),  # BCP-47 region implies the script
        ("zh-Hant", "zho_Hant"),
        ("cmn", "zho_Hans"),  # FLORES-200 calls Mandarin zho
        ("sr", "srp_Cyrl"),
        ("sr-Latn", "srp_Latn"),
        ("ar", "arb_Arab"),  # macrolanguages map the way FLORES-200 does
        ("fa", "pes_Arab"),
        ("fa-AF", "prs_Arab"),
        ("ms", "zsm_Latn"),
        ("sw", "swh_Latn"),
        ("az-IR", "azb_Arab"),
        ("lv", "lvs_Latn"),
        ("no", "nob_Latn"),
        ("iw", "heb_Hebr"),  # deprecated tag
        ("__label__en", "eng_Latn"),
    ],
)
def test_to_flores(code, expected):
    assert to_flores(code) == expected


def test_every_flores200_code_maps_to_itself():
    assert all(to_flores(code) == code for code in FLORES200)
    assert set(PIVOTS) <= set(FLORES200)


def test_lid176_labels_that_are_not_iso_codes():
    assert from_lid176_label("__label__als") == "gsw_Latn"  # Alemannic, not Tosk Albanian
    assert to_flores("als") == "als_Latn"  # ISO 639-3 als is Tosk Albanian
    assert from_lid176_label("__label__sh") == "hbs_Latn"
    assert from_lid176_label("__label__de") == "deu_Latn"


@pytest.mark.parametrize("code", ["xx", "dea", "not a code", "deu_Zzzz1"])
def test_unknown_codes_raise(code):
    with pytest.raises(UnknownLanguageCode):
        to_flores(code)


def test_close_matches_by_spelling_and_by_name():
    assert close_matches("deu_latn", FLORES200)[0] == "deu_Latn"
    assert close_matches("german", FLORES200)[0] == "deu_Latn"
    assert "zho_Hans" in close_matches("zh_hans", FLORES200)


def test_language_names():
    assert language_name("deu_Latn") == "German"
    assert language_name("deu_Latn", "zh") == "德语"
    assert language_name("zho_Hant") == "Chinese (Traditional)"
    assert language_name("arb_Arab", "zh") == "阿拉伯语"  # individual language named by its macrolanguage
    assert language_name("cri_Latn", "zh") == "Sãotomense"  # no Chinese name: the English one


def test_resolve_languages_reads_any_form_and_brings_the_pivots():
    available = ["deu_Latn", "eng_Latn", "swh_Latn", "zho_Hans", "zho_Hant"]
    assert resolve_languages("all", available) == available
    assert resolve_languages("de, sw", available) == ["deu_Latn", "eng_Latn", "swh_Latn", "zho_Hans"]
    assert resolve_languages("zh-Hant", ["zho_Hant", "eng_Latn"]) == ["eng_Latn", "zho_Hant"]
    assert resolve_languages("", available) == []
    with pytest.raises(UnknownLanguageCode, match=r"not in the recipe's sources\) 'fra'"):
        resolve_languages("de,fra", available)
    with pytest.raises(UnknownLanguageCode, match="did you mean deu_Latn"):
        resolve_languages("deu_latm", available)
