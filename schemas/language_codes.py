"""Language codes: everything inside the project is FLORES-200 style, `<ISO 639-3>_<ISO 15924 script>`.

`to_flores` turns the codes users and models hand us (ISO 639-1 "de", ISO 639-3 "deu", BCP-47 "zh-Hant-TW",
lid.176 labels "__label__de", FLORES-style "deu_Latn") into that form. langcodes does the parsing and the
likely-script lookup; the tables below only hold the choices FLORES-200 makes that no standard does.
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Annotated

import langcodes
from pydantic import AfterValidator

PIVOTS = ("eng_Latn", "zho_Hans")

# The 204 languages of FLORES-200 (plus sat_Olck, which later releases use instead of sat_Beng).
FLORES200 = tuple(
    """
ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi apc_Arab arb_Arab arb_Latn ars_Arab
ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab azj_Latn bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn
ben_Beng bho_Deva bjn_Arab bjn_Latn bod_Tibt bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn cjk_Latn ckb_Arab
crh_Latn cym_Latn dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn est_Latn eus_Latn ewe_Latn
fao_Latn fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gla_Latn gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn
hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn
jpn_Jpan kab_Latn kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor knc_Arab knc_Latn kaz_Cyrl kbp_Latn kea_Latn
khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kmr_Latn kon_Latn kor_Hang lao_Laoo lij_Latn lim_Latn lin_Latn lit_Latn
lmo_Latn ltg_Latn ltz_Latn lua_Latn lug_Latn luo_Latn lus_Latn lvs_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Arab
min_Latn mkd_Cyrl plt_Latn mlt_Latn mni_Beng khk_Cyrl mos_Latn mri_Latn mya_Mymr nld_Latn nno_Latn nob_Latn npi_Deva
nso_Latn nus_Latn nya_Latn oci_Latn gaz_Latn ory_Orya pag_Latn pan_Guru pap_Latn pes_Arab pol_Latn por_Latn prs_Arab
pbt_Arab quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Beng sat_Olck scn_Latn shn_Mymr sin_Sinh slk_Latn
slv_Latn smo_Latn sna_Latn snd_Arab som_Latn sot_Latn spa_Latn als_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn
swh_Latn szl_Latn tam_Taml tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi taq_Latn taq_Tfng tpi_Latn tsn_Latn
tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn urd_Arab uzn_Latn vec_Latn vie_Latn
war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn yue_Hant zho_Hans zho_Hant zsm_Latn zul_Latn
""".split()
)

# Macrolanguage (or its ISO 639-1 code) -> the individual language FLORES-200 uses for it.
MACRO_TO_FLORES = {
    "ara": "arb", "fas": "pes", "msa": "zsm", "swa": "swh", "lav": "lvs", "uzb": "uzn", "aze": "azj", "sqi": "als",
    "nep": "npi", "ori": "ory", "orm": "gaz", "mon": "khk", "pus": "pbt", "que": "quy", "yid": "ydd", "kur": "kmr",
    "nor": "nob", "kau": "knc", "mlg": "plt", "lah": "pnb", "bik": "bcl", "din": "dik", "kok": "gom", "zza": "diq",
    "tmh": "taq", "chm": "mhr", "iku": "ike", "cmn": "zho",
}  # fmt: skip
# Where the region or script picks another member of the macrolanguage than the default above.
MACRO_BY_REGION = {("fas", "AF"): "prs", ("aze", "IR"): "azb", ("uzb", "AF"): "uzs"}
MACRO_BY_SCRIPT = {("aze", "Arab"): "azb", ("kur", "Arab"): "ckb", ("uzb", "Arab"): "uzs"}

# lid.176 labels that are Wikipedia codes rather than ISO codes, or mean something else in ISO 639.
LID176_LABELS = {
    "als": "gsw_Latn",  # Alemannic Wikipedia, not ISO 639-3 als (Tosk Albanian)
    "bh": "bho_Deva",  # "Bihari" Wikipedia is Bhojpuri
    "sh": "hbs_Latn",  # Serbo-Croatian
    "eml": "egl_Latn",  # Emilian-Romagnol (eml is a retired code)
    "nah": "nah_Latn",  # Nahuatl (collective)
    "no": "nob_Latn",
    "ko": "kor_Hang",  # FLORES-200 writes Korean as Hang (langcodes says Kore)
    "zh": "zho_Hans",  # script decided by the text, see langid
    "wuu": "wuu_Hans",
    "yue": "yue_Hant",
    "sr": "srp_Cyrl",
}

_FLORES_RE = re.compile(r"^([a-z]{3})_([A-Z][a-z]{3})$")


class UnknownLanguageCode(ValueError):
    """A code we cannot turn into a FLORES-200 style code; the message lists close matches."""


def close_matches(code: str, candidates, n: int = 5) -> list[str]:
    """Codes in `candidates` that look like `code`, best first (case-insensitive, also by language name)."""
    candidates = sorted(set(candidates))
    by_lower = {c.lower(): c for c in candidates}
    found = [by_lower[m] for m in difflib.get_close_matches(code.lower(), list(by_lower), n=n, cutoff=0.6)]
    try:  # "german" -> deu_Latn
        guessed = to_flores(langcodes.find(code).to_tag())
        found = [c for c in candidates if c == guessed or c.split("_")[0] == guessed.split("_")[0]] + found
    except (LookupError, ValueError):
        pass
    return list(dict.fromkeys(found))[:n]


def unknown_code_error(code: str, candidates, what: str = "language code") -> UnknownLanguageCode:
    matches = close_matches(code, candidates)
    hint = f"; did you mean {', '.join(matches)}?" if matches else ""
    return UnknownLanguageCode(f"unknown {what} {code!r}{hint}")


@functools.lru_cache(maxsize=4096)
def to_flores(code: str, script: str | None = None) -> str:
    """FLORES-200 style code for `code`; `script` (ISO 15924) overrides the script langcodes would infer."""
    raw = code.strip().removeprefix("__label__")
    if m := _FLORES_RE.match(raw):
        language, found_script = m.groups()
        if not langcodes.Language.get(language).is_valid():
            raise UnknownLanguageCode(f"unknown language {language!r} in code {code!r}")
        return f"{MACRO_TO_FLORES.get(language, language)}_{script or found_script}"
    try:
        tag = langcodes.Language.get(raw.replace("_", "-"), normalize=False)
    except (LookupError, ValueError) as e:
        raise UnknownLanguageCode(f"cannot parse language code {code!r}: {e}") from None
    if not tag.language or not langcodes.Language.get(raw.replace("_", "-")).is_valid():
        raise UnknownLanguageCode(f"unknown language code {code!r}")
    alpha3 = tag.to_alpha3()
    script = script or tag.script
    language = (
        MACRO_BY_SCRIPT.get((alpha3, script))
        or MACRO_BY_REGION.get((alpha3, tag.territory))
        or MACRO_TO_FLORES.get(alpha3, alpha3)
    )
    if script is None:
        script = langcodes.Language.get(raw.replace("_", "-")).maximize().script
        if language == "zho" and tag.territory in ("TW", "HK", "MO"):
            script = "Hant"
    if not script:
        raise UnknownLanguageCode(f"cannot tell the script of {code!r}: give it as <language>_<Script>, e.g. {alpha3}_Latn")
    return f"{language}_{script}"


def check_code(code: str) -> str:
    """`code` as it is, if to_flores reads it and its script is an ISO 15924 code; else UnknownLanguageCode
    (a ValueError, so the configuration validator names the key it came from)."""
    flores = to_flores(code)
    script = flores.split("_")[1]
    if not langcodes.Language.get(f"und-{script}").is_valid():
        raise unknown_code_error(code, FLORES200, what=f"script {script!r} in language code")
    return code


# A field that holds a language code in any form to_flores reads (schemas.config checks it when a file is loaded;
# the value is kept as written).
LanguageCode = Annotated[str, AfterValidator(check_code)]


def from_lid176_label(label: str) -> str:
    """FLORES-200 style code for a fastText lid.176 label such as `__label__de`."""
    raw = label.removeprefix("__label__")
    return LID176_LABELS.get(raw) or to_flores(raw)


def language_name(code: str, in_language: str = "en") -> str:
    """Human name of a FLORES-style code in English ("en") or Chinese ("zh"), naming the script where it is
    not the language's usual one ("Azerbaijani (Cyrillic)"). Individual languages of a macrolanguage that have
    no name of their own in `in_language` take the macrolanguage's ("Standard Arabic" -> "阿拉伯语")."""
    language, script = code.split("_")
    names = []
    for subtag in dict.fromkeys([language, langcodes.standardize_tag(language, macro=True)]):
        likely_script = langcodes.Language.get(subtag).maximize().script
        tag = langcodes.Language.get(subtag if script == likely_script else f"{subtag}-{script}")
        names += [tag.display_name(in_language), tag.display_name("en")]
    usable = [n for n in names if "Unknown language" not in n and "individual language" not in n]
    translated = [n for n in usable if in_language == "en" or n.isascii() is False]
    return (translated or usable or [code])[0]


def resolve_languages(spec: str, available: list[str]) -> list[str]:
    """`all`, or codes separated by commas or spaces in any form to_flores reads (deu_Latn, de, zh-Hant)."""
    if spec.strip().lower() == "all":
        return list(available)
    chosen = []
    for code in spec.replace(",", " ").split():
        try:
            flores = to_flores(code)
        except UnknownLanguageCode:
            flores = code
        if flores not in available:
            raise unknown_code_error(code, available, what="language (not in the recipe's sources)")
        chosen.append(flores)
    return sorted(set(chosen) | ({p for p in PIVOTS} & set(available) if chosen else set()))
