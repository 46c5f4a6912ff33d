"""A bilingual lexicon X <-> eng_Latn for the lexical check (pipelines/steps/lexical_check.py): learning it,
reading it, and scoring pairs against it. Learnt from firefox:train pairs and UDHR train paragraphs only, never from
the calibration or held-out splits nor from the gettext catalogs. The files (in `data/lexicon/` beside this module):

- `links.parquet` (lang, src, tgt, dice): for each language, word pairs that occur together in translations far
  more often than apart (Dice coefficient of the pairs they occur in); a language's words are lower-cased letter
  runs, or letter unigrams and bigrams for scripts written without spaces (UNSEGMENTED);
- `words.parquet` (lang, word): the words seen at least twice on each side (English as `eng_Latn`), for the
  truncation cue;
- `thresholds.json`: per language, the least number of known tokens from which a pair is judged (`min_known`,
  3 to 8), calibrated on clean firefox:calibration and UDHR validation pairs so that at most REJECT_CLEAN of them
  are dropped; a language none of these keeps under it (Japanese, Thai, Khmer, Burmese) is left out.

Regenerate the lexicon and thresholds:

    python -m pipelines.lexicon
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import polars as pl


LEXICON = Path(__file__).parent / "data" / "lexicon"
PIVOT = "eng_Latn"
# Scripts written without spaces between words: tokens are letters and letter bigrams
UNSEGMENTED = ("Hans", "Hant", "Jpan", "Hira", "Kana", "Thai", "Khmr", "Laoo", "Mymr", "Tibt")
LETTERS = r"[\p{L}\p{M}]+"
MAX_COVERAGE = 0.15  # a pair with less of its known tokens matched is not a translation
MIN_KNOWN = range(3, 9)  # per language the least of these with which few enough clean pairs are dropped
CUT_SHORTER = 0.8  # a cut side is this much shorter than expected at least
MIN_PAIRS = 2  # a link or a word seen in fewer training pairs is left out
MIN_DICE = 0.1
LINKS_PER_WORD = 8
STEM = 5  # words are compared by their first letters: most inflection is at the end
REJECT_CLEAN = 0.01
MIN_CALIBRATION = 100  # a language with fewer clean calibration pairs gets the pooled min_known
MAX_TOKENS_PRODUCT = 3000  # longer training pairs (whole UDHR paragraphs) say little per word pair and cost most


def tokens(texts: pl.Expr, script: str) -> pl.Expr:
    """Each text's distinct lower-cased tokens (a list): letter runs, or letters and letter bigrams in UNSEGMENTED
    scripts."""
    if script in UNSEGMENTED:
        chars = texts.str.to_lowercase().str.extract_all(r"\p{L}\p{M}*")
        bigrams = chars.list.eval((pl.element() + pl.element().shift(-1)).drop_nulls())
        return chars.list.concat(bigrams).list.unique(maintain_order=True)
    words = texts.str.to_lowercase().str.extract_all(LETTERS)
    return words.list.eval(pl.element().str.slice(0, STEM)).list.unique(maintain_order=True)


def whole_words(texts: pl.Expr) -> pl.Expr:
    """Each text's distinct lower-cased letter runs, not shortened (the vocabulary of the truncation cue)."""
    return texts.str.to_lowercase().str.extract_all(LETTERS).list.unique()


def last_word(texts: pl.Expr) -> pl.Expr:
    """The text's last letter run when the text ends with it (nothing after it but white space), else null."""
    return texts.str.to_lowercase().str.extract(r"([\p{L}\p{M}]+)\s*$", 1)


def script_of(lang: str) -> str:
    return lang.split("_")[1] if "_" in lang else ""


def english_pairs(frame: pl.DataFrame, langs: set[str]) -> pl.DataFrame:
    """The X <-> eng_Latn pairs (either order) of a language in `langs`: row, lang, x_text, e_text, x_side."""
    english_src = pl.col("src_lang") == PIVOT
    one_english = (pl.col("src_lang") == PIVOT) != (pl.col("tgt_lang") == PIVOT)
    pairs = frame.with_row_index("row").filter(one_english).select(
        "row",
        lang=pl.when(english_src).then(pl.col("tgt_lang")).otherwise(pl.col("src_lang")),
        x_text=pl.when(english_src).then(pl.col("tgt_text")).otherwise(pl.col("src_text")),
        e_text=pl.when(english_src).then(pl.col("src_text")).otherwise(pl.col("tgt_text")),
        x_side=pl.when(english_src).then(pl.lit("tgt")).otherwise(pl.lit("src")),
    )  # fmt: skip
    return pairs.filter(pl.col("lang").is_in(sorted(langs)))


def only_prefix(word: str, vocabulary: list[str]) -> bool:
    """Whether `word` is not in the sorted `vocabulary` but starts one of its words."""
    at = bisect.bisect_left(vocabulary, word)
    if at < len(vocabulary) and vocabulary[at] == word:
        return False
    return at < len(vocabulary) and vocabulary[at].startswith(word)


def with_tokens(pairs: pl.DataFrame) -> pl.DataFrame:
    """`x_tokens` and `e_tokens` of each pair (see `tokens`), the rows in their order."""
    unsegmented = pl.col("lang").str.split("_").list.get(1, null_on_oob=True).is_in(UNSEGMENTED)
    parts = [pairs.filter(unsegmented == flag).with_columns(x_tokens=tokens(pl.col("x_text"), script), e_tokens=tokens(pl.col("e_text"), "Latn"))
             for flag, script in ((False, "Latn"), (True, UNSEGMENTED[0]))]  # fmt: skip
    return pl.concat(parts).sort("row")


def _key(token: str) -> pl.Expr:
    """A language and a token as one 64-bit hash: joins on it cost far less than on two strings (within one
    process; a collision, one in billions, would link two unrelated tokens)."""
    return pl.concat_str([pl.col("lang"), pl.col(token)], separator="\x00").hash(seed=0)


def keyed(links: pl.DataFrame) -> pl.DataFrame:
    """The links with the keys `score` joins on (see `_key`)."""
    return links.select("src", "tgt", src_key=_key("src"), tgt_key=_key("tgt"))


def score(pairs: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """The pairs (row, lang, x_text, e_text) with `known` (tokens the lexicon knows, both sides), `coverage` (the
    share of them matched on the other side) and `unmatched` (the known tokens that are not). One join over all
    languages: a step per language would cost more than the work itself. `links`: as loaded, or `keyed`."""
    lexicon = links if "src_key" in links.columns else keyed(links)
    frame = with_tokens(pairs)
    x = frame.select("row", "lang", "e_tokens", src=pl.col("x_tokens")).explode("src")
    x = x.with_columns(src_key=_key("src")).join(lexicon.drop("src"), on="src_key")
    x_stats = x.with_columns(hit=pl.col("e_tokens").list.contains(pl.col("tgt"))).group_by("row", "src").agg(pl.col("hit").any())
    e = frame.select("row", "lang", "x_tokens", tgt=pl.col("e_tokens")).explode("tgt")
    e = e.with_columns(tgt_key=_key("tgt")).join(lexicon.drop("tgt"), on="tgt_key")
    e_stats = e.with_columns(hit=pl.col("x_tokens").list.contains(pl.col("src"))).group_by("row", "tgt").agg(pl.col("hit").any())
    # a token on both sides as it is (a name, a borrowed word) is matched on both, known to the lexicon or not
    same = frame.select("row", token=pl.col("x_tokens").list.set_intersection(pl.col("e_tokens"))).explode("token").drop_nulls()
    same = pl.concat([same.with_columns(side=pl.lit(side), hit=pl.lit(True)) for side in ("x", "e")])
    both = pl.concat([x_stats.select("row", side=pl.lit("x"), token="src", hit="hit"), e_stats.select("row", side=pl.lit("e"), token="tgt", hit="hit"),
                      same.select("row", "side", "token", "hit")]).group_by("row", "side", "token").agg(pl.col("hit").any())  # fmt: skip
    per_row = both.group_by("row").agg(known=pl.len(), matched=pl.col("hit").sum(), unmatched=pl.col("token").filter(~pl.col("hit")).sort())
    out = frame.join(per_row, on="row", how="left").with_columns(
        known=pl.col("known").fill_null(0).cast(pl.Int64), matched=pl.col("matched").fill_null(0).cast(pl.Int64),
        unmatched=pl.col("unmatched").fill_null([]))  # fmt: skip
    return out.with_columns(coverage=pl.when(pl.col("known") > 0).then(pl.col("matched") / pl.col("known")).otherwise(1.0)).sort("row")


LEXICON_COLUMNS = {"links.parquet": ("lang", "src", "tgt", "dice"), "words.parquet": ("lang", "word")}


def load_lexicon(folder: str | Path = LEXICON) -> tuple[pl.DataFrame, dict[str, int], pl.DataFrame]:
    """(links, min_known per language, words) of a lexicon folder; an error names the file that is missing or bad."""
    folder = Path(folder)
    regenerate = "regenerate the lexicon with python -m pipelines.lexicon"
    frames = {}
    for name, columns in LEXICON_COLUMNS.items():
        try:
            frames[name] = pl.read_parquet(folder / name)
        except FileNotFoundError:
            raise ValueError(f"{folder}: no {name}; {regenerate}") from None
        except (OSError, pl.exceptions.PolarsError) as e:
            raise ValueError(f"{folder / name}: not a readable Parquet file ({e}); {regenerate}") from None
        missing = [c for c in columns if c not in frames[name].columns]
        if missing:
            raise ValueError(f"{folder / name}: no column {', '.join(missing)}; {regenerate}")
    try:
        thresholds = json.loads((folder / "thresholds.json").read_text(encoding="utf-8"))["languages"]
    except FileNotFoundError:
        raise ValueError(f"{folder}: no thresholds.json; {regenerate}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{folder / 'thresholds.json'}: not a lexicon threshold table ({type(e).__name__}: {e}); {regenerate}") from None
    return frames["links.parquet"], thresholds, frames["words.parquet"]


# --- learning the lexicon --------------------------------------------------------------------------------------------

def firefox_and_udhr(firefox_split_name: str, udhr_split: str) -> pl.DataFrame:
    """(lang, x_text, e_text) of the Firefox pairs of one split and the UDHR paragraphs of one split, each X <->
    eng_Latn, normalized as the build normalizes."""
    from langid.texts import firefox_folder, firefox_split
    from schemas.text.normalize import normalize_text
    from schemas.text.udhr import load_udhr, udhr_pairs

    files = sorted(firefox_folder().glob("*-eng_Latn.parquet"))
    firefox = pl.concat([pl.read_parquet(f, columns=["src_lang", "src_text", "tgt_text"]) for f in files])
    firefox = firefox.filter((firefox_split(pl.col("tgt_text")) == firefox_split_name) & (pl.col("src_lang") != PIVOT))
    langs = sorted(set(load_udhr()["lang"]) - {PIVOT})
    udhr = pl.concat([pl.from_arrow(t) for t in udhr_pairs([(lang, PIVOT) for lang in langs])]).filter(pl.col("split") == udhr_split)
    pairs = pl.concat([firefox, udhr.select("src_lang", "src_text", "tgt_text")]).rename({"src_lang": "lang", "src_text": "x_text", "tgt_text": "e_text"})
    return pairs.with_columns(normalize_text(pairs["x_text"]), normalize_text(pairs["e_text"]))


def learn_language(pairs: pl.DataFrame, lang: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One language's links (src, tgt, dice) and words (tokens in MIN_PAIRS pairs or more)."""
    frame = pairs.select(x=tokens(pl.col("x_text"), script_of(lang)), e=tokens(pl.col("e_text"), "Latn")).with_row_index("pair")
    frame = frame.filter(pl.col("x").list.len() * pl.col("e").list.len() <= MAX_TOKENS_PRODUCT)
    x = frame.select("pair", src=pl.col("x")).explode("src").drop_nulls()
    e = frame.select("pair", tgt=pl.col("e")).explode("tgt").drop_nulls()
    x_count = x.group_by("src").agg(x_pairs=pl.len())
    e_count = e.group_by("tgt").agg(e_pairs=pl.len())
    together = x.join(e, on="pair").group_by("src", "tgt").agg(both=pl.len()).filter(pl.col("both") >= MIN_PAIRS)
    links = (
        together.join(x_count, on="src").join(e_count, on="tgt")
        .with_columns(dice=(2 * pl.col("both") / (pl.col("x_pairs") + pl.col("e_pairs"))).cast(pl.Float32))
        .filter(pl.col("dice") >= MIN_DICE)
        .sort(["src", "dice", "tgt"], descending=[False, True, False])
        .group_by("src", maintain_order=True).head(LINKS_PER_WORD)
    )  # fmt: skip
    words = pairs.select(word=whole_words(pl.col("x_text"))).explode("word").group_by("word").len()
    words = words.filter(pl.col("len") >= MIN_PAIRS).select("word")
    return links.select(lang=pl.lit(lang), src="src", tgt="tgt", dice=pl.col("dice").round(3)), words.with_columns(lang=pl.lit(lang))


def learn(folder: Path = LEXICON) -> dict:
    """Learns links and words from firefox:train and UDHR train, calibrates the thresholds on firefox:calibration
    and UDHR validation, and writes the three files (see the module's docstring)."""
    train = firefox_and_udhr("train", "train")
    links, words = [], []
    for (lang,), group in train.group_by("lang", maintain_order=True):
        lang_links, lang_words = learn_language(group, lang)
        if lang_links.height:
            links.append(lang_links)
            if script_of(lang) not in UNSEGMENTED:
                words.append(lang_words.select("lang", "word"))
    english = train.select(word=whole_words(pl.col("e_text"))).explode("word").group_by("word").len()
    words.append(english.filter(pl.col("len") >= MIN_PAIRS).select(lang=pl.lit(PIVOT), word="word"))
    links = pl.concat(links).sort("lang", "src", "tgt")
    words = pl.concat(words).sort("lang", "word")
    thresholds = calibrate(links)
    folder.mkdir(parents=True, exist_ok=True)
    links.write_parquet(folder / "links.parquet", compression="zstd", compression_level=19, statistics=False)
    words.write_parquet(folder / "words.parquet", compression="zstd", compression_level=19, statistics=False)
    (folder / "thresholds.json").write_text(json.dumps(thresholds, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return thresholds


def calibrate(links: pl.DataFrame, max_coverage: float = MAX_COVERAGE) -> dict:
    """Per language, the least number of known tokens (of MIN_KNOWN) from which a pair with coverage below
    `max_coverage` is dropped, such that at most REJECT_CLEAN of its clean calibration pairs (firefox:calibration,
    UDHR validation) are. A language with fewer than MIN_CALIBRATION calibration pairs gets the one found for
    all languages pooled; one with no such number is left out (its pairs pass)."""
    pairs = firefox_and_udhr("calibration", "validation").with_row_index("row")
    pairs = pairs.filter(pl.col("lang").is_in(links["lang"].unique().implode())).with_columns(x_side=pl.lit("src"))
    scored = score(pairs, links)
    low = scored.select("lang", "known", low=pl.col("coverage") < max_coverage)

    def least(frame: pl.DataFrame) -> int | None:
        return next((k for k in MIN_KNOWN if (frame["low"] & (frame["known"] >= k)).mean() <= REJECT_CLEAN), None)

    pooled = least(low)
    languages = {}
    for (lang,), group in low.group_by("lang"):
        languages[lang] = least(group) if group.height >= MIN_CALIBRATION else pooled
    languages = {lang: k for lang, k in sorted(languages.items()) if k is not None}
    return {
        "calibrated_on": f"links from firefox:train and UDHR train; min_known from firefox:calibration and UDHR validation "
                         f"({scored.height} clean pairs, {scored['lang'].n_unique()} languages)",  # fmt: skip
        "command": "python -m pipelines.lexicon",
        "max_coverage": max_coverage,
        "reject_clean": REJECT_CLEAN,
        "pooled_min_known": pooled,
        "languages": languages,
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipelines.lexicon", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=LEXICON, help=f"the lexicon folder to write (default: {LEXICON})")
    args = parser.parse_args(argv)
    table = learn(args.output)
    print(f"{args.output}: {len(table['languages'])} languages, pooled min_known {table['pooled_min_known']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
