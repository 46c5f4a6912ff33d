"""The length-ratio table of the `length_ratio` check (pipelines/steps/length_ratio.py): per language the expected
log length ratio against English, per script a fallback, and how far a ratio may spread with the text's length.
Calibrated on real text, firefox:train strings and UDHR train paragraphs only (`data/length_ratio.json` beside this
module); regenerate it with

    python -m pipelines.length_table
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

LENGTH_TABLE = Path(__file__).parent / "data" / "length_ratio.json"
PIVOT = "eng_Latn"


def load_length_table(path: str | Path | None = None) -> dict:
    path = Path(path) if path else LENGTH_TABLE
    table = json.loads(path.read_text(encoding="utf-8"))
    for key in ("languages", "scripts", "sigma"):
        if key not in table:
            raise ValueError(f"{path}: not a length-ratio table (no `{key}`); regenerate it with python -m pipelines.length_table")
    return table


def calibrate(output: Path = LENGTH_TABLE) -> dict:
    """The length-ratio table from firefox:train pairs and UDHR train paragraphs (each language against English):
    mu per language (median log ratio, both corpora pooled), per script (median of its languages'), and sigma(n)^2 =
    a + b / n fitted (least squares, weighted by count) to the squared robust deviation (1.4826 MAD) of the log ratio
    from its language's mu, in bins of n a power of two wide."""
    from langid.texts import firefox_folder, firefox_split
    from schemas.text.normalize import normalize_text
    from schemas.text.udhr import load_udhr, udhr_pairs

    files = sorted(firefox_folder().glob("*-eng_Latn.parquet"))
    firefox = pl.concat([pl.read_parquet(f, columns=["src_lang", "src_text", "tgt_text"]) for f in files])
    firefox = firefox.filter(firefox_split(pl.col("tgt_text")) == "train")
    langs = sorted(set(load_udhr()["lang"]) - {PIVOT})
    udhr = pl.concat([pl.from_arrow(t) for t in udhr_pairs([(lang, PIVOT) for lang in langs])]).filter(pl.col("split") == "train")
    pairs = pl.concat([firefox, udhr.select("src_lang", "src_text", "tgt_text")])
    pairs = pairs.with_columns(normalize_text(pairs["src_text"]), normalize_text(pairs["tgt_text"]))
    src, tgt = pl.col("src_text").str.len_chars().cast(pl.Float64), pl.col("tgt_text").str.len_chars().cast(pl.Float64)
    pairs = pairs.filter((src > 0) & (tgt > 0)).with_columns(r=src.log() - tgt.log())
    mu = pairs.group_by("src_lang").agg(mu=pl.col("r").median()).sort("src_lang")
    languages = {**{lang: round(value, 4) for lang, value in mu.iter_rows()}, PIVOT: 0.0}  # en-CA against en-GB is not English's
    by_script = mu.with_columns(script=pl.col("src_lang").str.split("_").list.get(1)).group_by("script").agg(pl.col("mu").median()).sort("script")
    scripts = {script: round(value, 4) for script, value in by_script.iter_rows()}
    residual = pairs.join(mu, on="src_lang").with_columns(d=pl.col("r") - pl.col("mu"), n=pl.max_horizontal(src / pl.col("mu").exp(), tgt))
    bins = (
        residual.group_by(pl.col("n").log(2).floor().alias("bin"))
        .agg(var=((pl.col("d") - pl.col("d").median()).abs().median() * 1.4826) ** 2, n=pl.col("n").mean(), count=pl.len())
        .filter(pl.col("count") >= 20)
    )
    import numpy as np

    weights = np.sqrt(bins["count"].to_numpy())
    design = np.stack([np.ones(bins.height), 1 / bins["n"].to_numpy()], axis=1) * weights[:, None]
    (a, b), *_ = np.linalg.lstsq(design, bins["var"].to_numpy() * weights, rcond=None)
    table = {
        "calibrated_on": f"firefox:train ({firefox.height} pairs, {firefox['src_lang'].n_unique()} languages) and UDHR train "
                         f"paragraphs ({udhr.height} pairs, {udhr['src_lang'].n_unique()} languages), each against eng_Latn",  # fmt: skip
        "command": "python -m pipelines.length_table",
        "sigma": {"a": round(max(float(a), 1e-4), 5), "b": round(max(float(b), 0.0), 5)},
        "scripts": scripts,
        "languages": languages,
    }
    output.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipelines.length_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=LENGTH_TABLE, help=f"where to write the table (default: {LENGTH_TABLE})")
    args = parser.parse_args(argv)
    table = calibrate(args.output)
    print(f"{args.output}: {len(table['languages'])} languages, {len(table['scripts'])} scripts, sigma {table['sigma']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
