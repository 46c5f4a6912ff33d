"""A labelled dirty corpus made from real pairs, for measuring the build's quality gate (bench_quality.py).

Clean base:
- short text: the Firefox benchmark corpus (langid.texts.firefox_folder(), `*-eng_Latn.parquet`), the rows whose
  English string falls in the chosen split of `langid.texts.firefox_split` (`heldout`, or `calibration` for tuning
  checks; `train` is refused: language ID was fitted on it);
- long text: paragraph pairs X <-> eng_Latn of the embedded UDHR, aligned as the build's `udhr` source aligns
  them (schemas.text.udhr.align), from the held-out articles: `test` (28-30) with `heldout`, `validation`
  (25-27) with `calibration`, so that what is tuned on is never what is reported.

The base is cleaned of what the build may rightly remove, so that a clean row it drops is a wrong removal: en-CA
rows (eng_Latn on both sides, no pivot), pairs with an empty side or with the same text on both sides (up to case
and spacing: not a translation), and every second pair of a language that repeats a source or target sentence
(up to case and spacing, after the build's normalization): no clean pair is then a duplicate of another, nor
over the build's cap of translations per sentence. UDHR paragraphs not mostly in their declaration's script are
left out too (langid.texts.in_declared_script: a few declarations carry paragraphs of another language).

Labels (`KINDS`): about 80% `clean`, the rest spread evenly over the corruptions, each applied only where it
changes the pair (compared up to case and spacing after the build's normalization, so that the build cannot see
a corrupted row as its clean original):
- `wrong_language`: the X side replaced by the translation of the same English string (the same paragraph for
  UDHR) in another language; half of them, where there is one, in a language of the same script;
- `untranslated`: the X side is the English side;
- `misaligned`: the X side is that of the next row of the same language file (the previous for the last row):
  an off-by-one shift, as real misalignment looks;
- `duplicated`: an extra row, an exact copy of a clean row of the corpus, placed after it in reading order. The
  build's exact dedup keeps the first copy in reading order, so the later one carries the label and is the one
  expected in removed/; the original stays labelled clean (and should be kept);
- `empty`: one side empty or white space only;
- `mojibake`: a side with non-ASCII text encoded as UTF-8 and decoded as cp1252 (latin-1 where cp1252 has no
  character for a byte, and for a third of them);
- `truncated`: a side of at least 8 characters cut to 30-60% of its length (a strict prefix);
- `control_chars`: one to three characters inserted into a side at random places, from C0 controls and
  zero-width characters (U+200B/C/D, U+2060, U+FEFF) that the side did not contain.
Every other kind replaces its base row. The same seed gives the same corpus.
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl

from langid.texts import FIREFOX_SPLITS, firefox_folder, firefox_split, in_declared_script
from schemas.text.normalize import folded, normalize_text
from schemas.text.udhr import align, load_udhr

KINDS = ("wrong_language", "untranslated", "misaligned", "duplicated", "empty", "mojibake", "truncated", "control_chars")
CLEAN_SHARE = 0.8
UDHR_SPLIT = {"heldout": "test", "calibration": "validation"}
# C0 controls other than tab, newline and carriage return (white space, which the build keeps or turns into
# spaces), and zero-width characters
CONTROL_CHARS = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)] + ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
BLANKS = ["", " ", "  ", "\t", " \n "]
FILES = {"short": "firefox.parquet", "long": "udhr.parquet"}
COLUMNS = ["id", "src_lang", "src_text", "tgt_lang", "tgt_text"]  # what the build reads (its `parquet` source)


def _key(texts: pl.Expr) -> pl.Expr:
    """A text as the build's dedup compares it: normalized, then lower-cased with white space runs as one space."""
    return folded(texts.map_batches(normalize_text, return_dtype=pl.String))


def same_text(a: str, b: str) -> bool:
    """Whether the build would take a and b for the same text (see _key)."""
    frame = pl.DataFrame({"t": [a, b]}).select(_key(pl.col("t")))
    return frame["t"][0] == frame["t"][1]


def firefox_pairs(split: str, folder: Path | None = None, langs: set[str] | None = None) -> pl.DataFrame:
    """Every Firefox pair of `split` (of `langs` only, if given), in file order, with its file and its place among
    the split's rows of it."""
    if split not in FIREFOX_SPLITS or split == "train":
        raise ValueError(f"Firefox split {split!r}: use heldout or calibration (train is what language ID was fitted on)")
    folder = folder or firefox_folder()
    files = sorted(folder.glob("*-eng_Latn.parquet"))
    if langs is not None:  # files are named <lang>[.<locale>]-eng_Latn.parquet
        files = [f for f in files if f.name.split("-")[0].split(".")[0] in langs]
    if not files:
        raise FileNotFoundError(f"no Firefox corpus in {folder} (set BAYLING_FIREFOX_L10N to its folder)")
    parts = []
    for f in files:
        frame = pl.read_parquet(f, columns=COLUMNS).filter(firefox_split(pl.col("tgt_text")) == split)
        parts.append(frame.with_columns(file=pl.lit(f.name), place=pl.int_range(pl.len())))
    frame = pl.concat(parts)
    if (frame["tgt_lang"] != "eng_Latn").any():
        raise ValueError(f"{folder}: expected eng_Latn on the target side of every pair")
    return frame.rename({"id": "origin"}).filter(pl.col("src_lang") != "eng_Latn")  # en-CA: no pivot side


def udhr_pairs(split: str, langs: set[str] | None = None) -> pl.DataFrame:
    """Paragraph pairs X <-> eng_Latn of the held-out articles (see UDHR_SPLIT), aligned as the build does."""
    corpus = load_udhr().sort("lang", "article", "paragraph")
    corpus = corpus.filter(pl.col("split") == UDHR_SPLIT[split])
    if langs is not None:
        corpus = corpus.filter(pl.col("lang").is_in(sorted(set(langs) | {"eng_Latn"})))
    by_lang = {lang: g for (lang,), g in corpus.group_by("lang")}
    rows = []
    for lang in sorted(by_lang):
        if lang != "eng_Latn":
            rows += [(lang, src, tgt, sid) for src, tgt, sid, _ in align(by_lang[lang], by_lang["eng_Latn"])]
    frame = pl.DataFrame(rows, schema=["src_lang", "src_text", "tgt_text", "origin"], orient="row")
    frame = frame.with_columns(tgt_lang=pl.lit("eng_Latn"), file=pl.col("src_lang"))  # a language's paragraphs in order
    return frame.with_columns(place=pl.int_range(pl.len()).over("file"))


def clean_base(pairs: pl.DataFrame) -> pl.DataFrame:
    """The pairs the build has no reason to remove as empty, identical or duplicate (see the module's docstring)."""
    frame = pairs.with_columns(src_key=_key(pl.col("src_text")), tgt_key=_key(pl.col("tgt_text")))
    frame = frame.filter((pl.col("src_key").str.strip_chars() != "") & (pl.col("tgt_key").str.strip_chars() != ""))
    frame = frame.filter(pl.col("src_key") != pl.col("tgt_key"))
    frame = frame.unique(["src_lang", "src_key"], keep="first", maintain_order=True)
    return frame.unique(["src_lang", "tgt_key"], keep="first", maintain_order=True)


def mojibake(text: str, rng: random.Random) -> str | None:
    if text.isascii():
        return None
    raw = text.encode("utf-8")
    if rng.random() < 1 / 3:
        return raw.decode("latin-1")
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined (0x81, 0x8D, ...): decoded as latin-1 does
        return raw.decode("latin-1")


def corrupt(kind: str, row: dict, rng: random.Random, context: dict) -> dict | None:
    """The corrupted row (the changed fields plus `side`, `note`), or None where `kind` would not change it."""
    src, tgt = row["src_text"], row["tgt_text"]
    if kind == "wrong_language":
        script = row["src_lang"].split("_")[1]
        others = [(lang, text) for lang, text, key in context["by_english"].get(row["tgt_text"], [])
                  if lang != row["src_lang"] and key not in (row["src_key"], row["tgt_key"]) and key.strip()]
        same = [o for o in others if o[0].split("_")[1] == script]
        other = [o for o in others if o[0].split("_")[1] != script]
        pool = same if same and (rng.random() < 0.5 or not other) else other
        if not pool:
            return None
        lang, text = rng.choice(pool)
        return {"src_text": text, "side": "src", "note": lang}
    if kind == "untranslated":
        return None if same_text(src, tgt) else {"src_text": tgt, "side": "src", "note": ""}
    if kind == "misaligned":
        rows = context["by_file"][row["file"]]
        if len(rows) < 2:
            return None
        i = row["place"]
        neighbour = rows[i + 1] if i + 1 < len(rows) else rows[i - 1]
        if same_text(neighbour["src_text"], src):
            return None
        return {"src_text": neighbour["src_text"], "side": "src", "note": neighbour["origin"]}
    if kind == "empty":
        side = rng.choice(["src", "tgt"])
        return {f"{side}_text": rng.choice(BLANKS), "side": side, "note": ""}
    if kind == "mojibake":
        sides = [s for s, t in (("src", src), ("tgt", tgt)) if not t.isascii()]
        if not sides:
            return None
        side = sides[0] if len(sides) == 1 else rng.choice(sides)
        broken = mojibake(row[f"{side}_text"], rng)
        return None if broken is None or same_text(broken, row[f"{side}_text"]) else {f"{side}_text": broken, "side": side, "note": ""}
    if kind == "truncated":
        sides = [s for s, t in (("src", src), ("tgt", tgt)) if len(t) >= 8]
        if not sides:
            return None
        side = rng.choice(sides)
        text = row[f"{side}_text"]
        cut = min(len(text) - 1, max(1, round(len(text) * rng.uniform(0.3, 0.6))))
        if not text[:cut].strip():
            return None
        return {f"{side}_text": text[:cut], "side": side, "note": f"{cut}/{len(text)}"}
    if kind == "control_chars":
        side = rng.choice(["src", "tgt"])
        text = row[f"{side}_text"]
        chars = rng.sample([c for c in CONTROL_CHARS if c not in text], rng.randint(1, 3))
        for c in chars:
            at = rng.randint(0, len(text))
            text = text[:at] + c + text[at:]
        return {f"{side}_text": text, "side": side, "note": "".join(chars)}
    raise ValueError(f"unknown corruption kind {kind!r}")


def label_part(base: pl.DataFrame, pairs: pl.DataFrame, rows: int, rng: random.Random, part: str) -> pl.DataFrame:
    """`rows` sampled base rows, about CLEAN_SHARE clean and the rest corrupted, plus the duplicated copies."""
    by_file: dict[str, list[dict]] = {}
    for row in pairs.select("file", "place", "src_text", "origin").iter_rows(named=True):
        by_file.setdefault(row["file"], []).append(row)
    by_english: dict[str, list[tuple[str, str, str]]] = {}  # the English text -> (language, its translation, key)
    for lang, src, tgt, key in pairs.select("src_lang", "src_text", "tgt_text", _key(pl.col("src_text")).alias("key")).iter_rows():
        by_english.setdefault(tgt, []).append((lang, src, key))
    context = {"by_file": by_file, "by_english": by_english}

    chosen = sorted(rng.sample(range(base.height), min(rows, base.height)))
    sample = base[chosen].to_dicts()
    quota = round(len(sample) * (1 - CLEAN_SHARE) / len(KINDS))
    order = list(range(len(sample)))
    rng.shuffle(order)
    labelled = [dict(r, label="clean", side="", note="", order=float(r["place"]), orig_src=r["src_text"], orig_tgt=r["tgt_text"])
                for r in sample]
    places: dict[str, list[int]] = {}
    for r in sample:
        places.setdefault(r["file"], []).append(r["place"])
    extra = []
    taken = set()
    for kind in KINDS:
        done = 0
        for i in order:
            if done == quota:
                break
            if i in taken:
                continue
            row = labelled[i]
            if kind == "duplicated":
                # the copy comes after its original in reading order (see the module's docstring); the original
                # stays clean, so it is taken out of the draw for other kinds
                later = [p for p in places[row["file"]] if p > row["place"]]
                place = rng.choice(later) + 0.5 if later else row["place"] + 0.5
                extra.append(dict(row, label="duplicated", side="both", note=row["origin"], order=place))
            else:
                changed = corrupt(kind, row, rng, context)
                if changed is None:
                    continue
                row.update(changed, label=kind)
            taken.add(i)
            done += 1
    frame = pl.DataFrame(labelled + extra, infer_schema_length=None).sort("file", "order", maintain_order=True)
    # ids that say nothing of the label (the build must not see it): the part's letter and the place in the file
    frame = frame.with_columns(id=pl.lit(part[0]) + pl.int_range(pl.len()).cast(pl.String).str.zfill(6), part=pl.lit(part))
    return frame.select("id", "part", "label", "src_lang", "src_text", "tgt_lang", "tgt_text", "side", "note", "origin", "file",
                        "orig_src", "orig_tgt")


def make_corpus(split: str = "heldout", rows: int = 40_000, seed: int = 0, long_share: float = 0.1,
                folder: Path | None = None, langs: set[str] | None = None) -> pl.DataFrame:
    """The labelled corpus: short (Firefox) and long (UDHR) rows, with each row's label and clean original; of the
    languages `langs` only, if given (FLORES-200 codes)."""
    if split not in UDHR_SPLIT:
        raise ValueError(f"split {split!r}: use one of {', '.join(UDHR_SPLIT)} (train is what language ID was fitted on)")
    rng = random.Random(seed)
    parts = []
    udhr = udhr_pairs(split, langs)
    # a few declarations carry paragraphs in another script (Chinese text in a Latin-script declaration): not clean
    # text of their language, left out of the base as langid.texts leaves them out of its UDHR text
    in_script = in_declared_script(udhr.rename({"src_lang": "lang", "src_text": "text"}))
    udhr_base = clean_base(in_script.rename({"lang": "src_lang", "text": "src_text"}))
    n_long = min(udhr_base.height, round(rows * long_share))
    firefox = firefox_pairs(split, folder, langs)
    for part, pairs, base, n in (("short", firefox, clean_base(firefox), rows - n_long), ("long", udhr, udhr_base, n_long)):
        parts.append(label_part(base, pairs, n, rng, part))
    return pl.concat(parts)


def write_corpus(corpus: pl.DataFrame, folder: Path) -> dict[str, Path]:
    """One pair file per part (what the build reads: id, src_lang, src_text, tgt_lang, tgt_text) and the labels
    beside them (`labels.parquet`, keyed by `source_id` as the build names each row: `<file name>:<id>`)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, name in FILES.items():
        rows = corpus.filter(pl.col("part") == part)
        if rows.height:
            paths[part] = folder / name
            rows.select(COLUMNS).write_parquet(paths[part])
    labels = corpus.with_columns(source_id=pl.col("part").replace_strict(FILES) + ":" + pl.col("id"))
    labels.write_parquet(folder / "labels.parquet")
    return paths
