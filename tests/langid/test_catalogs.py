"""The package-catalog text source (Django's and Sphinx's .po files): locale codes, cleaning and the split."""

import polars as pl
import pytest
import xxhash

from langid import train
from langid.texts import _catalog_locale_code, catalog_files, catalog_roots, load_catalog_pairs, load_catalogs
from tests.langid.test_models import write_catalog


@pytest.fixture
def package_root(tmp_path):
    """A package folder laid out as Django's: German, Brazilian Portuguese, Serbian in Latin, Chinese of Taiwan
    (with Sphinx's encoding suffix), British English and a locale no code is known for."""
    msgids = [f"Delete the selected item number {n}" for n in range(40)]
    german = [{"msgid": m, "msgstr": m.replace("Delete the selected item number", "Ausgewähltes Objekt löschen, Nummer")} for m in msgids]
    german += [
        {"msgid": "Save", "msgstr": ""},  # untranslated
        {"msgid": "%(count)s", "msgstr": "%(count)s."},  # placeholders and punctuation only
        {"msgid": "Close", "msgstr": "Schließen", "flags": ["fuzzy"]},
        {"msgid": "Internet", "msgstr": "Netz"},  # also Serbian below: cannot tell the two apart
        {"msgid": "Delete", "msgstr": "Entfernen"},
        {"msgid": "Remove", "msgstr": "Entfernen"},
    ]
    root = tmp_path / "pkg"
    write_catalog(root / "conf/locale/de/LC_MESSAGES/django.po", german, mo=False)
    write_catalog(root / "contrib/admin/locale/pt_BR/LC_MESSAGES/django.po", [{"msgid": msgids[0], "msgstr": "Excluir o item selecionado"}], mo=False)
    write_catalog(root / "locale/sr@latin/LC_MESSAGES/sphinx.po", [{"msgid": "Internet", "msgstr": "Netz"}, {"msgid": msgids[1], "msgstr": "Obriši izabranu stavku"}], mo=False)
    write_catalog(root / "locale/zh_TW.Big5/LC_MESSAGES/sphinx.po", [{"msgid": msgids[2], "msgstr": "刪除選取的項目"}], mo=False)
    write_catalog(root / "locale/en_GB/LC_MESSAGES/sphinx.po", [{"msgid": msgids[3], "msgstr": "Delete the selected item, mate"}], mo=False)
    write_catalog(root / "locale/xx/LC_MESSAGES/sphinx.po", [{"msgid": msgids[4], "msgstr": "Xyz qwv"}], mo=False)
    return (root,)


def test_catalog_locales_map_to_flores_codes():
    assert _catalog_locale_code("pt_BR") == "por_Latn" and _catalog_locale_code("sr@latin") == "srp_Latn"
    assert _catalog_locale_code("sr_Latn") == "srp_Latn" and _catalog_locale_code("sr") == "srp_Cyrl"
    assert _catalog_locale_code("zh_Hans") == "zho_Hans" and _catalog_locale_code("zh_TW.Big5") == "zho_Hant"
    for left_out in ("en_GB", "en", "xx", "sr@foo"):
        with pytest.raises(ValueError):
            _catalog_locale_code(left_out)


def test_catalog_pairs_are_cleaned_and_labelled(package_root):
    pairs = load_catalog_pairs(package_root)
    assert set(pairs["lang"]) == {"deu_Latn", "por_Latn", "srp_Latn", "zho_Hant"}
    assert "Netz" not in pairs["text"].to_list() and "Schließen" not in pairs["text"].to_list()
    assert pairs.filter(pl.col("lang") == "deu_Latn").height == 42  # untranslated and placeholder-only left out
    with pytest.raises(FileNotFoundError, match="no .po catalogs"):
        catalog_files((package_root[0] / "conf" / "locale" / "de",))


def test_catalog_split_follows_the_english_msgid_in_every_locale(package_root):
    splits = {split: load_catalogs(split, roots=package_root) for split in ("train", "calibration", "heldout")}
    pairs = load_catalog_pairs(package_root)
    texts = [set(frame["text"]) for frame in splits.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    buckets = {"train": range(8), "calibration": [8], "heldout": [9]}  # an independent XXH3: cannot move with polars
    for split, frame in splits.items():
        expected = pairs.filter(pl.col("msgid").map_elements(lambda m: xxhash.xxh3_64_intdigest(m.encode()) % 10 in buckets[split], return_dtype=pl.Boolean))
        assert set(frame.rows()) <= set(expected.select("text", "lang").rows())
    # "Delete" is held out, "Remove" (bucket 0) trains: their shared translation stays held out only
    assert ("Entfernen", "deu_Latn") in splits["heldout"].rows() and "Entfernen" not in splits["train"]["text"].to_list()
    assert load_catalogs("heldout", roots=package_root).equals(splits["heldout"])
    pivot = load_catalogs("train", with_pivot=True, roots=package_root).filter(pl.col("lang") == "eng_Latn")
    assert pivot.height == pivot["text"].n_unique() > 0 and "Internet" not in pivot["text"].to_list()
    with pytest.raises(ValueError, match="unknown catalogs split"):
        load_catalogs("test", roots=package_root)


@pytest.mark.slow  # reads all 1,296 .po files
@pytest.mark.skipif(not catalog_roots(), reason="neither django nor sphinx is installed")
def test_installed_catalogs_keep_each_msgid_in_one_split():
    pairs = load_catalog_pairs()
    assert pairs.filter(pl.col("lang") == "deu_Latn").height > 500 and pairs["lang"].n_unique() > 80
    heldout, train = load_catalogs("heldout"), load_catalogs("train")
    assert 0.05 < heldout.height / pairs.height < 0.15 and not set(heldout["text"]) & set(train["text"])


def test_catalogs_held_out_text_is_kept_out_of_training_only_where_catalogs_are_trained_on():
    assert set(train.CATALOGS_NEVER_TRAINED_ON) <= set(train.never_trained_on(["udhr:train", "catalogs:train+pivot"]))
    # without the catalogs, the never-trained-on text is what bayling-lid v2 was trained without (reproducible)
    assert train.never_trained_on(train.DEFAULT_SOURCES) == train.NEVER_TRAINED_ON
    assert not any(spec.startswith("catalogs:") for spec in train.NEVER_TRAINED_ON)
