"""Labelled text for training, thresholds and evaluation: a frame of (text, lang) from a named source.

- `udhr:train`, `udhr:validation`, `udhr:test`, `udhr:heldout` (validation + test): paragraphs of the embedded
  corpus (articles 0-24 / 25-27 / 28-30), primary declarations; add `+variants` for every declaration
  (`udhr:train+variants`). Paragraphs not mostly in their declaration's script are left out.
- `firefox:train`, `firefox:calibration`, `firefox:heldout` (add `+pivot` to keep the English side too): the
  user-interface strings of the Firefox benchmark corpus (../shared/data/bench/firefox_l10n, MPL-2.0; another
  folder with `BAYLING_FIREFOX_L10N`), split by English string (`firefox_split`): a held-out string is held out in every
  locale, so nothing fitted on train or calibration has seen it, in any language.
- `gettext:heldout` (add `+pivot` for the English msgids too): the translations in the gettext catalogs installed
  with the operating system (/usr/share/locale/<locale>/LC_MESSAGES/*.mo; another folder with
  `BAYLING_GETTEXT_LOCALE`), real short text (menu items, messages, help) in about 150 locales. RESERVED FOR
  EVALUATION: nothing may be trained, calibrated or tuned on them (langid.train refuses them), so that they stay
  a test set that no model or threshold of ours has seen. See `load_gettext`.
- `catalogs:train`, `catalogs:calibration`, `catalogs:heldout` (add `+pivot` for the English msgids too): the
  user-interface strings of the .po catalogs of Django (BSD-3-Clause) and Sphinx (BSD-2-Clause), installed with
  `pip install --no-deps django sphinx` and read as files (the packages are never imported), split by English msgid
  as Firefox's strings are: a held-out msgid is held out in every locale. See `load_catalog_pairs`.
- `cldr:train`, `cldr:heldout`: CLDR locale data as shipped in the `babel` package (Unicode License v3): names of
  languages, territories, scripts, currencies, units and time zones, months, days, eras, relative dates and the
  words of list and unit patterns, in every locale babel has that maps to a FLORES-200 style code (`load_cldr`),
  split by item key (`cldr_split`): a held-out item is held out in every locale.
- a Parquet file with `text` and `lang` columns, or with pair columns (`src_text`, `src_lang`, `tgt_text`,
  `tgt_lang`, as in the builder's pair files), whose two sides are both used.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import re
from pathlib import Path

import polars as pl
import polars_hash  # noqa: F401  (registers the `nchash` namespace)
import pyarrow.parquet as pq

from langid.scripts import script_fraction
from schemas.language_codes import UnknownLanguageCode, to_flores
from schemas.text.normalize import normalize_text
from schemas.text.udhr import UDHR_PATH, load_udhr

log = logging.getLogger(__name__)

FIREFOX_L10N = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench" / "firefox_l10n"
FIREFOX_SPLITS = ("train", "calibration", "heldout")


def firefox_folder() -> Path:
    return Path(os.environ.get("BAYLING_FIREFOX_L10N", FIREFOX_L10N))


def firefox_split(english: pl.Expr) -> pl.Expr:
    """The split of each Firefox pair by its English string, so the same in every locale and for every message
    that repeats the string: 8 in 10 strings train, 1 calibration (thresholds), 1 held out (evaluation only)."""
    bucket = english.nchash.xxh3_64() % 10  # XXH3: the same split in every version of the libraries
    return pl.when(bucket < 8).then(pl.lit("train")).when(bucket == 8).then(pl.lit("calibration")).otherwise(pl.lit("heldout"))


def load_firefox(split: str, with_pivot: bool = False, folder: Path | None = None) -> pl.DataFrame:
    """(text, lang, id) of one split of the Firefox corpus: the locale side, and the English side too with
    `with_pivot` (each English string once)."""
    if split not in FIREFOX_SPLITS:
        raise ValueError(f"unknown Firefox split {split!r}: use one of {', '.join(FIREFOX_SPLITS)}")
    folder = folder or firefox_folder()
    files = sorted(folder.glob("*-eng_Latn.parquet"))
    if not files:
        raise FileNotFoundError(f"no Firefox corpus in {folder} (set BAYLING_FIREFOX_L10N to its folder)")
    pairs = pl.concat([pl.read_parquet(f, columns=["id", "src_lang", "src_text", "tgt_lang", "tgt_text"]) for f in files])
    pairs = pairs.filter(firefox_split(pl.col("tgt_text")) == split)
    frame = pairs.select(text="src_text", lang="src_lang", id="id")
    if with_pivot:
        english = pairs.select(text="tgt_text", lang="tgt_lang", id=pl.col("id").str.splitn(":", 2).struct.field("field_1"))
        frame = pl.concat([frame, english.unique("text", keep="first", maintain_order=True)])
    return frame


GETTEXT_LOCALE = Path("/usr/share/locale")
GETTEXT_PER_LANGUAGE = 2000
# Locale modifiers (`sr@latin`) that name a script; the others (`ca@valencia`, `sr@ije`) name a variety in the
# language's usual script.
GETTEXT_MODIFIER_SCRIPTS = {"latin": "Latn", "Latn": "Latn", "cyrillic": "Cyrl", "Cyrl": "Cyrl", "iqtelif": "Latn", "valencia": None, "ije": None}
# Format placeholders, markup and entities: a string that is nothing else (with punctuation, digits) has no
# language to identify.
_PLACEHOLDERS = (
    r"%(?:\d+\$|\([A-Za-z_]\w*\))?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t|I|PRI\w+)?[diouxXeEfFgGaAcspnSC%]"
    r"|\$\{[^}]*\}|\{[^{}]*\}|<[^<>]*>|&#?\w+;|\$\w+"
)


def gettext_folder() -> Path:
    return Path(os.environ.get("BAYLING_GETTEXT_LOCALE", GETTEXT_LOCALE))


def gettext_locale_code(locale: str) -> tuple[str | None, str | None]:
    """(language code as to_flores reads it, script of the modifier or None) of a locale folder name, or
    (None, reason) for a locale that is left out."""
    base, _, modifier = locale.partition("@")
    if base == "en" or base.startswith("en_"):
        return None, "English (the msgids are the English side, see +pivot)"
    if modifier and modifier not in GETTEXT_MODIFIER_SCRIPTS:
        return None, f"unknown locale modifier @{modifier}"
    return base, GETTEXT_MODIFIER_SCRIPTS.get(modifier)


def _catalog_entries(path: Path):
    import polib

    try:
        catalog = polib.mofile(str(path)) if path.suffix == ".mo" else polib.pofile(str(path))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read gettext catalog {path}: {e}") from None
    for entry in catalog:
        if not entry.msgid or entry.obsolete or "fuzzy" in getattr(entry, "flags", ()):
            continue
        sources = [entry.msgid, entry.msgid_plural] if entry.msgid_plural else [entry.msgid]
        translations = list(entry.msgstr_plural.values()) if entry.msgstr_plural else [entry.msgstr]
        translations = [t for t in translations if t and t not in sources]
        if translations:
            yield sources, translations


@functools.lru_cache(maxsize=4)
def load_gettext(folder: Path | None = None, with_pivot: bool = False, per_language: int = GETTEXT_PER_LANGUAGE) -> pl.DataFrame:
    """(text, lang) of the translations in the gettext catalogs of `folder` (<locale>/LC_MESSAGES/*.mo or .po).

    HELD OUT: for evaluation only; never train, calibrate thresholds or tune on it.

    Each locale is labelled with its FLORES-200 code (schemas.language_codes.to_flores on the locale; the script
    from a modifier such as `@latin`, else the script most of the catalog's text is in, so Crimean Tatar in Latin
    is crh_Latn and Korean kor_Hang; Chinese keeps Hans/Hant from the region). Left out: English locales, locales
    to_flores cannot map or with an unknown modifier (`skipped` in the log), the `iso_*` catalogs (names of
    countries, languages, currencies and scripts from iso-codes: proper names, often the place's own name, not
    text of the locale's language), untranslated and fuzzy entries, translations equal to the msgid, strings that
    are only placeholders, markup, digits and punctuation, and texts mostly not in the label's script. Each (text,
    lang) once; a text found under several languages (the English msgids included) is dropped (it cannot tell
    them apart); at most
    `per_language` texts per language, the same ones on every run (smallest XXH3 of the text), so the large
    locales do not dominate. `with_pivot` adds the msgids of the kept entries as eng_Latn, capped the same way."""
    folder = Path(folder or gettext_folder())
    locales = sorted(p for p in folder.iterdir() if (p / "LC_MESSAGES").is_dir()) if folder.is_dir() else []
    if not locales:
        raise FileNotFoundError(f"no gettext catalogs (<locale>/LC_MESSAGES/*.mo) in {folder} (set BAYLING_GETTEXT_LOCALE to such a folder)")
    parts, english, skipped = [], [], {}
    for locale in locales:
        found = _locale_texts(locale)
        if isinstance(found, str):
            skipped[locale.name] = found
            continue
        texts, msgids = found
        parts.append(texts)
        english.append(pl.DataFrame({"text": normalize_text(pl.Series(msgids, dtype=pl.String)), "lang": "eng_Latn"}))
    if not parts:
        raise FileNotFoundError(f"no usable gettext catalogs in {folder}; skipped: {skipped}")
    # the English side takes part in the filters either way: a translation equal to some English msgid is as
    # ambiguous as any text found under two languages, and gettext:heldout is the non-English part of +pivot
    frame = in_declared_script(pl.concat(parts + english).unique(maintain_order=True))
    frame = frame.filter(pl.col("text").str.replace_all(_PLACEHOLDERS, "").str.contains(r"\p{L}"))
    ambiguous = frame.group_by("text").agg(pl.col("lang").n_unique().alias("n")).filter(pl.col("n") > 1)
    frame = _first_per_language(frame.join(ambiguous.select("text"), on="text", how="anti"), per_language)
    if not with_pivot:
        frame = frame.filter(pl.col("lang") != "eng_Latn")
    log.info("gettext %s: %d texts in %d languages; %d texts under several languages dropped; skipped locales: %s",
             folder, frame.height, frame["lang"].n_unique(), ambiguous.height, skipped)  # fmt: skip
    return frame


def _locale_texts(locale: Path) -> tuple[pl.DataFrame, list[str]] | str:
    """(text, lang) of the translations of one locale folder and the msgids they translate, or the reason the
    locale is left out."""
    from schemas.language_codes import UnknownLanguageCode, to_flores

    base, script = gettext_locale_code(locale.name)
    if base is None:
        return script
    try:
        default = to_flores(base)
    except UnknownLanguageCode as e:
        return str(e)
    texts, msgids = _locale_catalog_entries(locale)
    frame = pl.DataFrame({"text": texts}, schema={"text": pl.String}).with_columns(normalize_text(pl.Series(texts, dtype=pl.String)))
    frame = frame.filter(pl.col("text").str.replace_all(_PLACEHOLDERS, "").str.contains(r"\p{L}"))
    if not frame.height:
        return "no translated text"
    if script is None and default.split("_")[1] not in ("Hans", "Hant"):
        script = _most_common_script(frame["text"].head(300).to_list())
    try:
        lang = to_flores(base, script=script)
    except UnknownLanguageCode as e:
        return str(e)
    return frame.select("text", lang=pl.lit(lang)), msgids


def _locale_catalog_entries(locale: Path) -> tuple[list[str], list[str]]:
    """The translations and msgids of a locale's catalogs, leaving out the iso_* ones (proper names)."""
    texts, msgids = [], []
    for path in sorted((locale / "LC_MESSAGES").iterdir()):
        if path.suffix in (".mo", ".po") and not path.name.startswith("iso_"):
            for sources, translations in _catalog_entries(path):
                texts += translations
                msgids += sources
    return texts, msgids


def _most_common_script(texts: list[str]) -> str | None:
    """The script most of `texts` are written in, or None when none has letters of a known script."""
    from langid.scripts import dominant_script

    votes = collections.Counter(dominant_script(t) for t in texts)
    votes.pop(None, None)
    return votes.most_common(1)[0][0] if votes else None


def _first_per_language(frame: pl.DataFrame, per_language: int) -> pl.DataFrame:
    """At most `per_language` texts of each language: the smallest XXH3 of the text, the same ones on every run."""
    return (
        frame.with_columns(key=pl.col("text").nchash.xxh3_64())
        .sort("lang", "key", "text")
        .filter(pl.int_range(pl.len()).over("lang") < per_language)
        .drop("key")
    )


# Software UI catalogs of openly licensed Python packages, read from their installed .po files (the packages are
# never imported): Django (BSD-3-Clause, 99 locales) and Sphinx (BSD-2-Clause, 70 locales).
CATALOG_PACKAGES = {"django": "BSD-3-Clause (Django Software Foundation and contributors)", "sphinx": "BSD-2-Clause (the Sphinx developers)"}


def catalog_roots() -> tuple[Path, ...]:
    """The folders of the CATALOG_PACKAGES that are installed, found without importing them."""
    import importlib.util

    roots = []
    for package in CATALOG_PACKAGES:
        spec = importlib.util.find_spec(package)
        roots += [Path(root) for root in (spec.submodule_search_locations or [])] if spec else []
    return tuple(roots)


def catalog_files(roots: tuple[Path, ...] | None = None) -> list[Path]:
    """The <locale>/LC_MESSAGES/*.po files under `roots` (default: the installed packages), sorted; none is a
    FileNotFoundError."""
    roots = catalog_roots() if roots is None else roots
    files = sorted(path for root in roots for path in Path(root).rglob("locale/*/LC_MESSAGES/*.po"))
    if not files:
        raise FileNotFoundError(f"no .po catalogs in {[str(r) for r in roots] or 'no package'}: pip install --no-deps {' '.join(CATALOG_PACKAGES)}")
    return files


def _catalog_locale_code(locale: str) -> str:
    """FLORES-200 style code of a package locale folder (`pt_BR`, `sr@latin`, `zh_TW.Big5`, `zh_Hans`), or a
    ValueError saying why it is left out. The script comes from the name or the language's usual one."""
    base, script = gettext_locale_code(locale.split(".")[0])
    if base is None:
        raise ValueError(script)
    try:
        return to_flores(base, script=script)
    except UnknownLanguageCode as e:
        raise ValueError(str(e)) from None


@functools.lru_cache(maxsize=4)
def load_catalog_pairs(roots: tuple[Path, ...] | None = None) -> pl.DataFrame:
    """(msgid, text, lang) of every translated entry of the package catalogs (translations of plural forms
    under their singular msgid), cleaned as the gettext source is: untranslated, fuzzy and copied entries, texts
    that are only placeholders and punctuation and texts mostly not in the label's script left out, and a text
    found under several languages (the English msgids included) dropped. Locales that cannot be mapped (English,
    unknown codes) are logged and skipped."""
    rows, skipped = [], {}
    for path in catalog_files(roots):
        locale = path.parents[1].name
        try:
            lang = _catalog_locale_code(locale)
        except ValueError as e:
            skipped[locale] = str(e)
            continue
        for sources, translations in _catalog_entries(path):
            rows += [(sources[0], text, lang) for text in translations]
    pairs = pl.DataFrame(rows, schema={"msgid": pl.String, "text": pl.String, "lang": pl.String}, orient="row")
    pairs = pairs.with_columns(normalize_text(pairs["text"]), normalize_text(pairs["msgid"]).alias("msgid"))
    letters = pl.col("text").str.replace_all(_PLACEHOLDERS, "").str.contains(r"\p{L}")
    pairs = in_declared_script(pairs.filter(letters & (pl.col("text") != pl.col("msgid"))).unique(maintain_order=True))
    labelled = pl.concat([pairs.select("text", "lang"), pairs.select(text="msgid", lang=pl.lit("eng_Latn"))]).unique()
    ambiguous = labelled.group_by("text").agg(pl.col("lang").n_unique().alias("n")).filter(pl.col("n") > 1)
    log.info("catalogs: %d translations in %d languages; skipped locales: %s", pairs.height, pairs["lang"].n_unique(), skipped)
    return pairs.join(ambiguous.select("text"), on="text", how="anti").sort("lang", "msgid", "text")


def load_catalogs(split: str, with_pivot: bool = False, roots: tuple[Path, ...] | None = None) -> pl.DataFrame:
    """(text, lang) of one split of the package catalogs, split by English msgid as Firefox's strings are
    (`firefox_split`): a held-out msgid is held out in every locale, and a held-out text in every split. `with_pivot` adds each msgid once as eng_Latn
    (a msgid that is also some language's translation stays out, as that text is ambiguous)."""
    if split not in FIREFOX_SPLITS:
        raise ValueError(f"unknown catalogs split {split!r}: use one of {', '.join(FIREFOX_SPLITS)}")
    every = load_catalog_pairs(roots).with_columns(split=firefox_split(pl.col("msgid")))
    pairs = every.filter(pl.col("split") == split)
    # two msgids can share a translation ("Delete" and "Remove"): a text of a later split (held out, then
    # calibration) is left out of the earlier ones, so no text is in two splits
    later = every.filter(pl.col("split").is_in(FIREFOX_SPLITS[FIREFOX_SPLITS.index(split) + 1 :]))
    frame = pairs.select("text", "lang").unique(maintain_order=True).join(later.select("text").unique(), on="text", how="anti")
    if with_pivot:
        english = pairs.select(text="msgid", lang=pl.lit("eng_Latn")).unique(maintain_order=True)
        english = english.join(load_catalog_pairs(roots).select("text"), on="text", how="anti")
        frame = pl.concat([frame, english.filter(pl.col("text").str.replace_all(_PLACEHOLDERS, "").str.contains(r"\p{L}"))])
    return frame


CLDR_SPLITS = ("train", "heldout")
# Locale-data categories that hold words of the language. Patterns (dates, numbers) hold mostly symbols, symbols and
# exemplar characters no words; narrow forms are single letters.
CLDR_CATEGORIES = (
    "languages", "territories", "scripts", "variants", "months", "days", "quarters", "eras", "day_periods",
    "date_fields", "currency_names", "currency_names_plural", "unit_display_names", "unit_patterns",
    "compound_unit_patterns", "meta_zones", "time_zones", "list_patterns", "measurement_systems",
)  # fmt: skip
# A string found in this many languages (or more) says nothing about which it is: names shared with English
# ("Internet", "Canada"), values a sparse locale inherits from root, numerals.
CLDR_SHARED_BY = 3
# Where CLDR's likely script is not the one FLORES-200 (and the Firefox corpus) write the language in: Korean is
# `Kore` (Hangul with Hanja) in CLDR, `kor_Hang` in FLORES-200.
CLDR_CODE_FIXES = {"kor_Kore": "kor_Hang"}
_PLACEHOLDER = re.compile(r"\{\d+\}|'")


def cldr_locales() -> dict[str, str]:
    """babel locale id -> FLORES-200 style code, for locales of a language alone or with a script (`sr_Latn`,
    `zh_Hant`, `uz_Arab`); regional locales (`de_AT`) differ from their parent in a few strings and are left out.
    Locales whose language has no code we can map (constructed languages such as `tok`) are skipped."""
    import babel.localedata

    mapped = {}
    for locale in sorted(babel.localedata.locale_identifiers()):
        parts = locale.split("_")
        if locale == "root" or len(parts) > 2 or (len(parts) == 2 and not (len(parts[1]) == 4 and parts[1].istitle())):
            continue
        try:
            code = to_flores(locale)
        except UnknownLanguageCode:
            continue
        mapped[locale] = CLDR_CODE_FIXES.get(code, code)
    return mapped


def cldr_unmapped() -> list[str]:
    """Language (and language_Script) locales of babel that no FLORES-style code could be found for."""
    import babel.localedata

    candidates = [i for i in babel.localedata.locale_identifiers() if i != "root" and (len(i.split("_")) == 1 or (len(i.split("_")) == 2 and i.split("_")[1].istitle() and len(i.split("_")[1]) == 4))]
    return sorted(set(candidates) - set(cldr_locales()))


def _flatten(value, path: str):
    if isinstance(value, str):
        yield path, value
    elif hasattr(value, "keys"):
        for key in value.keys():
            if key == "narrow":
                continue
            try:
                child = value[key]
            except KeyError:  # an alias in the locale data to an entry the locale does not have
                continue
            yield from _flatten(child, f"{path}/{key}")


@functools.cache
def load_cldr_items() -> pl.DataFrame:
    """(key, text, lang) of every word-bearing CLDR string of every mapped locale, placeholders (`{0}`) and quotes
    removed, strings without a letter and strings in CLDR_SHARED_BY or more languages dropped."""
    from babel import Locale

    rows = []
    for locale, lang in cldr_locales().items():
        data = Locale.parse(locale)._data
        for category in CLDR_CATEGORIES:
            for key, text in _flatten(data[category] if category in data else {}, category):
                rows.append((key, text, lang))
    items = pl.DataFrame(rows, schema={"key": pl.String, "text": pl.String, "lang": pl.String}, orient="row")
    items = items.with_columns(pl.col("text").str.replace_all(_PLACEHOLDER.pattern, "").str.replace_all(r"\s+", " ").str.strip_chars(" ,;:"))
    items = items.filter(pl.col("text").str.contains(r"\p{L}") & (pl.col("text").str.len_chars() >= 2))
    items = items.unique(["key", "text", "lang"]).sort(["lang", "key", "text"])
    shared = items.group_by("text").agg(pl.col("lang").n_unique().alias("languages"))
    return items.join(shared, on="text").filter(pl.col("languages") < CLDR_SHARED_BY).drop("languages")


def cldr_split(key: pl.Expr) -> pl.Expr:
    """The split of each CLDR item by its key (`languages/de`, `months/format/wide/3`), so the same in every
    locale: 9 in 10 keys train, 1 held out (evaluation only)."""
    return pl.when(key.nchash.xxh3_64() % 10 < 9).then(pl.lit("train")).otherwise(pl.lit("heldout"))


def load_cldr(split: str) -> pl.DataFrame:
    """(text, lang, key) of one split of the CLDR strings, each text once per language. A text of a held-out key
    is held out under every key it has in its language (a month's name is both its `format` and `stand-alone`
    form), so no held-out (text, lang) is in the train split."""
    if split not in CLDR_SPLITS:
        raise ValueError(f"unknown CLDR split {split!r}: use one of {', '.join(CLDR_SPLITS)}")
    items = load_cldr_items().with_columns(split=cldr_split(pl.col("key")))
    heldout = items.filter(pl.col("split") == "heldout").select("text", "lang").unique()
    if split == "heldout":
        items = items.filter(pl.col("split") == "heldout")
    else:
        items = items.join(heldout, on=["text", "lang"], how="anti")
    return items.unique(["text", "lang"], keep="first", maintain_order=True).select("text", "lang", "key")


UDHR_SPLITS = {"train": ["train"], "validation": ["validation"], "test": ["test"], "heldout": ["validation", "test"]}


def in_declared_script(frame: pl.DataFrame, min_fraction: float = 0.5) -> pl.DataFrame:
    """Rows whose letters are mostly in the script of their label: a few declarations carry paragraphs in
    another script (Chinese characters in a Latin-script declaration), which are not good text of the label."""
    parts = []
    for (lang,), group in frame.group_by("lang", maintain_order=True):
        fraction = script_fraction(group["text"].to_list(), lang.split("_")[1])
        parts.append(group.filter(pl.Series(fraction >= min_fraction)))
    return pl.concat(parts) if parts else frame


def clauses(data: pl.DataFrame, shortest: int = 20, longest: int = 60) -> pl.DataFrame:
    """The texts cut at sentence and clause punctuation, keeping pieces of `shortest`..`longest` characters: short
    text like a software UI string or a subtitle, which the paragraphs of the UDHR are not."""
    pieces = data.select("text", "lang").with_columns(
        pl.col("text").str.replace_all(r"[.;:!?\u3002\uff1b\uff1a\uff01\uff1f\u0964]", "\n").str.split("\n")
    ).explode("text")
    return pieces.with_columns(pl.col("text").str.strip_chars()).filter(pl.col("text").str.len_chars().is_between(shortest, longest))


def with_clauses(data: pl.DataFrame) -> pl.DataFrame:
    """The texts and, after them, their clauses (see `clauses`) that are not texts of their own."""
    pieces = clauses(data).join(data.select("text", "lang"), on=["text", "lang"], how="anti")
    return pl.concat([data.select("text", "lang"), pieces.unique(maintain_order=True)])


def read_labelled_parquet(path: Path) -> pl.DataFrame:
    """(text, lang) rows of a Parquet file with `text` and `lang`, or with both sides of pairs. Strictly: a file that
    is not Parquet, a column that is not text, or a null text or label is a ValueError naming the file (and the row
    group and row), not a traceback from deep inside the evaluation."""
    try:
        columns = pl.read_parquet_schema(path)
    except Exception as e:  # polars names no file in its errors
        raise ValueError(f"{path}: not a Parquet file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if {"text", "lang"} <= set(columns):
        names = ["text", "lang"]
    elif {"src_text", "src_lang", "tgt_text", "tgt_lang"} <= set(columns):
        names = ["src_text", "src_lang", "tgt_text", "tgt_lang"]
    else:
        raise ValueError(f"{path}: needs columns text and lang, or src_text, src_lang, tgt_text, tgt_lang; has {sorted(columns)}")
    for name in names:
        if columns[name] not in (pl.String, pl.Categorical, pl.Null):
            raise ValueError(f"{path}: column {name} holds {columns[name]}, not text")
    frame = pl.read_parquet(path, columns=names).with_columns(pl.col(names).cast(pl.String))
    nulls = frame.with_row_index().filter(pl.any_horizontal(pl.col(names).is_null()))
    if nulls.height:
        row = nulls.row(0, named=True)
        meta = pq.ParquetFile(path).metadata
        group, first = 0, 0
        while first + meta.row_group(group).num_rows <= row["index"]:
            first += meta.row_group(group).num_rows
            group += 1
        column = next(name for name in names if row[name] is None)
        raise ValueError(f"{path}, row group {group}, row {row['index'] - first}: {column} is null ({nulls.height} such rows)")
    if len(names) == 2:
        return frame
    return pl.concat([frame.select(text="src_text", lang="src_lang"), frame.select(text="tgt_text", lang="tgt_lang")])


def load_texts(spec: str) -> pl.DataFrame:
    """(text, lang) rows of `spec`, normalized as the builder normalizes, empty texts dropped."""
    if spec.startswith("udhr:"):
        split, _, extra = spec.removeprefix("udhr:").partition("+")
        if split not in UDHR_SPLITS or extra not in ("", "variants"):
            raise ValueError(f"unknown text source {spec!r}: use udhr:<{'|'.join(UDHR_SPLITS)}>[+variants] or a Parquet file")
        corpus = load_udhr(UDHR_PATH, primary_only=extra != "variants")
        frame = in_declared_script(corpus.filter(pl.col("split").is_in(UDHR_SPLITS[split])).select("text", "lang"))
    elif spec.startswith("gettext:"):
        split, _, extra = spec.removeprefix("gettext:").partition("+")
        if split != "heldout" or extra not in ("", "pivot"):
            raise ValueError(f"unknown text source {spec!r}: use gettext:heldout[+pivot] (the catalogs are held out as a whole)")
        frame = load_gettext(gettext_folder(), with_pivot=extra == "pivot")  # the folder by name: load_gettext caches by it
    elif spec.startswith("cldr:"):
        frame = load_cldr(spec.removeprefix("cldr:")).select("text", "lang")
    elif spec.startswith("catalogs:"):
        split, _, extra = spec.removeprefix("catalogs:").partition("+")
        if extra not in ("", "pivot"):
            raise ValueError(f"unknown text source {spec!r}: use catalogs:<{'|'.join(FIREFOX_SPLITS)}>[+pivot]")
        frame = load_catalogs(split, with_pivot=extra == "pivot")
    elif spec.startswith("firefox:"):
        split, _, extra = spec.removeprefix("firefox:").partition("+")
        if extra not in ("", "pivot"):
            raise ValueError(f"unknown text source {spec!r}: use firefox:<{'|'.join(FIREFOX_SPLITS)}>[+pivot]")
        frame = load_firefox(split, with_pivot=extra == "pivot").select("text", "lang")
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"text source not found: {path}")
        frame = read_labelled_parquet(path)
    frame = frame.with_columns(normalize_text(frame["text"]))
    return frame.filter(pl.col("text").str.len_chars() > 0)
