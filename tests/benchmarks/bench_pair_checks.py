"""The pair checks (pipelines/steps/encoding_check.py, token_check.py, end_punctuation.py, length_ratio.py, lexical_check.py) on real clean pairs and on synthetic corruptions
of them: the share of clean pairs each check drops (false positives), the share of corrupted pairs it catches, and
its speed.

    python tests/benchmarks/bench_pair_checks.py                      # the recipe defaults
    python tests/benchmarks/bench_pair_checks.py --max-deviation 3.5  # another length_ratio threshold
    python tests/benchmarks/bench_pair_checks.py --split calibration  # tune on calibration, report on heldout

Clean: firefox:<split> pairs (X <-> en-GB strings of Firefox, split by English string, langid/texts.py) and the
UDHR held-out paragraphs (articles 25-30) paired with English, normalized as the build normalizes. Corruptions of the
Firefox pairs (the X side): `mojibake` (its UTF-8 read as cp1252, texts with a non-ASCII character), `truncated` (cut
to 30-60% of its characters, texts of 10 characters or more), `misaligned` (the X text of the next row of the same
language file, where it differs), `shuffled` (the X text of a random row of the same language), `numbers` (one digit changed, texts with a digit on both sides). Speed: pairs/s
of each step on one core (process time) over the first `--speed-rows` train pairs, in batches of 10,000.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from langid.texts import firefox_folder, firefox_split  # noqa: E402
from pipelines.batch import RemovedRows  # noqa: E402
from pipelines.steps.encoding_check import EncodingCheck  # noqa: E402
from pipelines.steps.end_punctuation import EndPunctuationCheck  # noqa: E402
from pipelines.steps.length_ratio import LengthRatioCheck  # noqa: E402
from pipelines.steps.token_check import TokenCheck  # noqa: E402
from pipelines.steps.lexical_check import LexicalCheck  # noqa: E402
from pipelines.steps.pair_filters import PairFilter  # noqa: E402
from schemas.text.normalize import normalize_text  # noqa: E402
from schemas.text.udhr import load_udhr, udhr_pairs  # noqa: E402


def normalized(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.with_columns(normalize_text(frame["src_text"]), normalize_text(frame["tgt_text"]))
    return frame.filter((pl.col("src_text").str.len_chars() > 0) & (pl.col("tgt_text").str.len_chars() > 0))


def as_pairs(frame: pl.DataFrame) -> pa.Table:
    """Rows in the shape the pairs stage passes between steps (only the columns the checks read are real)."""
    return frame.select(
        id=pl.int_range(pl.len()).cast(pl.String), src_lang="src_lang", src_text="src_text", tgt_lang="tgt_lang", tgt_text="tgt_text",
        source=pl.lit("bench"), source_id=pl.int_range(pl.len()).cast(pl.String), split=pl.lit("train"),
    ).to_arrow()  # fmt: skip


def firefox_pairs(split: str) -> pl.DataFrame:
    files = sorted(firefox_folder().glob("*-eng_Latn.parquet"))
    frame = pl.concat([pl.read_parquet(f, columns=["src_lang", "src_text", "tgt_lang", "tgt_text"]) for f in files])
    return normalized(frame.filter(firefox_split(pl.col("tgt_text")) == split))


def udhr_heldout() -> pl.DataFrame:
    langs = sorted(set(load_udhr()["lang"]) - {"eng_Latn"})
    frame = pl.concat([pl.from_arrow(t) for t in udhr_pairs([(lang, "eng_Latn") for lang in langs])])
    return normalized(frame.filter(pl.col("split").is_in(["validation", "test"])).select("src_lang", "src_text", "tgt_lang", "tgt_text"))


def corruptions(clean: pl.DataFrame, seed: int = 0) -> dict[str, pl.DataFrame]:
    generator = random.Random(seed)
    texts = clean["src_text"].to_list()

    def mojibake(text: str) -> str:
        return text.encode("utf-8").decode("sloppy-windows-1252")

    def truncate(text: str) -> str:
        return text[: max(1, round(len(text) * generator.uniform(0.3, 0.6)))]

    def change_digit(text: str) -> str:
        spots = [i for i, c in enumerate(text) if c.isdigit()]
        i = generator.choice(spots)
        return text[:i] + generator.choice([d for d in "0123456789" if d != text[i]]) + text[i + 1 :]

    import ftfy  # noqa: F401  (registers the sloppy-windows-1252 codec)

    non_ascii = clean.filter(~pl.col("src_text").str.contains(r"^[\x00-\x7F]*$"))
    long = clean.filter(pl.col("src_text").str.len_chars() >= 10)
    digits = clean.filter(pl.col("src_text").str.contains(r"[0-9]") & pl.col("tgt_text").str.contains(r"[0-9]"))
    shifted = clean.with_columns(old=pl.col("src_text"), src_text=pl.col("src_text").shift(-1).over("src_lang"))
    shuffled = clean.with_columns(old=pl.col("src_text"), src_text=pl.col("src_text").shuffle(seed).over("src_lang"))
    return {
        "mojibake": normalized(non_ascii.with_columns(pl.Series("src_text", [mojibake(t) for t in non_ascii["src_text"]]))),
        "truncated": long.with_columns(pl.Series("src_text", [truncate(t) for t in long["src_text"]])),
        "misaligned": shifted.filter(pl.col("src_text").is_not_null() & (pl.col("src_text") != pl.col("old"))).drop("old"),
        "shuffled": shuffled.filter(pl.col("src_text") != pl.col("old")).drop("old"),
        "numbers": digits.with_columns(pl.Series("src_text", [change_digit(t) for t in digits["src_text"]])),
    } if texts else {}  # fmt: skip


def dropped(step, frame: pl.DataFrame) -> int:
    table = as_pairs(frame)
    count = 0
    for start in range(0, table.num_rows, 10_000):
        verdict = step.reasons(table.slice(start, 10_000))
        count += verdict["reason"].is_not_null().sum()
    return count


def speed(step, frame: pl.DataFrame) -> float:
    table = as_pairs(frame)
    started = time.process_time()
    for start in range(0, table.num_rows, 10_000):
        step.reasons(table.slice(start, 10_000))
    return table.num_rows / max(time.process_time() - started, 1e-9)


class AllChecks:
    """Every check of the recipe defaults at once: a pair counts once however many checks drop it."""

    def __init__(self, steps):
        self.steps = steps

    def reasons(self, table: pa.Table) -> pl.DataFrame:
        verdicts = [step.reasons(table)["reason"] for step in self.steps]
        return pl.DataFrame({"reason": pl.select(pl.coalesce([pl.lit(v) for v in verdicts])).to_series()})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="heldout", choices=["calibration", "heldout"])
    parser.add_argument("--max-deviation", type=float, default=None, help="length_ratio threshold (default: the recipe's)")
    parser.add_argument("--speed-rows", type=int, default=100_000)
    parser.add_argument("--checks", default=None, help="comma-separated names of the rows to run (default: all)")
    args = parser.parse_args(argv)

    from pipelines.recipe import Filters

    filters = Filters()
    removed = RemovedRows(tempfile.mkdtemp())
    deviation = args.max_deviation if args.max_deviation is not None else filters.length.max_deviation
    steps = {
        "encoding_check": EncodingCheck(removed),
        "token_check": TokenCheck(removed, filters.tokens),
        "end_punctuation": EndPunctuationCheck(removed, filters.end_punctuation),
        "length_ratio": LengthRatioCheck(removed, deviation),
    }
    steps["all four"] = AllChecks(list(steps.values()))
    steps["lexical_check"] = LexicalCheck(removed)  # off by default (`filters.lexical`)
    steps["all five"] = AllChecks([*steps["all four"].steps, steps["lexical_check"]])
    steps["old ratio 3.0"] = PairFilter(removed, max_length_ratio=3.0)
    clean = {f"firefox:{args.split}": firefox_pairs(args.split), "udhr:heldout": udhr_heldout()}
    corrupt = corruptions(clean[f"firefox:{args.split}"])
    train = firefox_pairs("train").sample(fraction=1.0, shuffle=True, seed=0).head(args.speed_rows)
    sets = {**clean, **corrupt}
    print(f"length_ratio max_deviation {deviation}; rows: " + ", ".join(f"{k} {v.height}" for k, v in sets.items()))
    print(f"{'check':<16}" + "".join(f"{k:>18}" for k in sets) + f"{'pairs/s':>12}")
    for name, step in steps.items():
        if args.checks and name not in args.checks.split(","):
            continue
        cells = [f"{100 * dropped(step, frame) / frame.height:>17.2f}%" for frame in sets.values()]
        print(f"{name:<16}" + "".join(cells) + f"{speed(step, train):>12,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
