"""How well the build's quality gate keeps good pairs and drops broken ones, on a labelled dirty corpus of real text.

    python tests/benchmarks/bench_quality.py                          # held-out split, ~40k pairs: what we report
    python tests/benchmarks/bench_quality.py --split calibration      # for tuning checks (never tune on heldout)
    python tests/benchmarks/bench_quality.py --rows 4000 --json /tmp/q.json
    python tests/benchmarks/bench_quality.py --recipe-extra langid.min_model_chars=40 --recipe-extra dedup.near.enabled=false
    python tests/benchmarks/bench_quality.py --recipe-extra my-fragment.yaml   # a YAML mapping merged into the recipe

The corpus (tests/benchmarks/dirty_corpus.py): short text from the held-out Firefox strings (langid.texts
firefox_split), long text from the held-out UDHR articles, about 80% clean pairs and the rest corrupted in eight
ways (wrong_language, untranslated, misaligned, duplicated, empty, mojibake, truncated, control_chars), seeded.
It is written as Parquet pair files read by the build's `parquet` source, the labels kept aside keyed by the
`source_id` the build gives each row (`firefox.parquet:s000123`): the build never sees a label.

The build is the real one (pipelines/build.py in a subprocess) with the settings of pipelines/recipes/bayling2.yaml
(filters, language ID, exact and near dedup), except: these sources and no instructions, `mixture: null` (every
row kept), `pivot_join: false`, sentence templates only (documents would join rows), and no FLORES+ evaluation set
(on the Hub; the held-out UDHR articles are always one, and the UDHR rows here are in their own held-out split,
which decontamination does not touch). `--recipe-extra` overrides any of it.

Every row of the corpus ends either in removed/<step>.parquet (`flagged`, with its stage and reason) or in the
output (`kept`, found by its source_id); the report checks that each is in exactly one. A `control_chars` row is
also handled when it is kept and none of its inserted characters is left in any of its output rows
(`repaired`: the normalize step removes C0 controls, U+200B and U+FEFF). A `duplicated` row is the later copy in
reading order of a clean row of the corpus; exact dedup keeps the first copy, so the copy is the one that should
be flagged, and its original is a clean row that should be kept. Language ID drops many clean rows, and so
corrupted rows for reasons that have nothing to do with their corruption; where it names the side that was left
as it was (it checks the English side first, the other only where that passed, and a verdict depends only on the
text), the row would have been dropped uncorrupted too, as would a duplicated copy dropped before dedup (its
original, the same text, was dropped by the same check): the report gives that share beside each kind's.

Prints Markdown tables for the whole corpus and for its short and long parts: per kind the share flagged (and
repaired), clean rows kept with the reasons that removed clean rows (3 examples each), removals per step and
reason, corrupted rows handled overall, and the 10 languages that keep the fewest of their clean rows.
`--json PATH` writes the same numbers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.benchmarks.dirty_corpus import FILES, KINDS, make_corpus, write_corpus  # noqa: E402

WORST_LANGUAGES = 10
# a language with fewer clean rows is left out of the worst-languages table (too few to say); a UDHR language has
# a handful of held-out paragraphs
MIN_CLEAN_ROWS = {"all": 10, "short (Firefox)": 10, "long (UDHR)": 3}


def set_key(recipe: dict, dotted: str, value, where: str) -> None:
    """recipe[a][b][c] = value for `a.b.c`; a missing level is created (the build's recipe check names bad keys)."""
    node = recipe
    *path, last = dotted.split(".")
    for key in path:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise SystemExit(f"{where}: {dotted}: {key} is not a mapping in the recipe")
        node = child
    node[last] = value


def merge(recipe: dict, fragment: dict, prefix: str = "") -> None:
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            merge(recipe[key], value, f"{prefix}{key}.")
        else:
            recipe[key] = value


def apply_extras(recipe: dict, extras: list[str]) -> None:
    """`key.sub=value` (the value read as YAML: 40, false, null, [a, b]) or the path of a YAML mapping to merge."""
    for extra in extras:
        if "=" in extra:
            key, _, text = extra.partition("=")
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise SystemExit(f"--recipe-extra {extra}: the value is not valid YAML: {e}") from None
            set_key(recipe, key.strip(), value, f"--recipe-extra {extra}")
            continue
        path = Path(extra)
        if not path.is_file():
            raise SystemExit(f"--recipe-extra {extra}: neither key=value nor a YAML file")
        try:
            fragment = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise SystemExit(f"--recipe-extra {path}: not valid YAML: {e}") from None
        if not isinstance(fragment, dict):
            raise SystemExit(f"--recipe-extra {path}: expected a mapping of recipe keys")
        merge(recipe, fragment)


def make_recipe(base: str, paths: dict[str, Path], extras: list[str], split: str) -> dict:
    """The base recipe's settings with the dirty corpus as its only sources (see the module's docstring)."""
    from pipelines.recipe import RECIPES_DIR

    base_path = Path(base) if base.endswith((".yaml", ".yml")) or "/" in base else RECIPES_DIR / f"{base}.yaml"
    recipe = yaml.safe_load(base_path.read_text(encoding="utf-8"))
    udhr_split = {"heldout": "test", "calibration": "validation"}[split]
    sources = {"short": ("dirty-firefox", "train", "MPL-2.0"), "long": ("dirty-udhr", udhr_split, "UDHR: public domain text")}
    recipe.update(
        name="dirty-quality-bench",
        description=f"benchmark only: a labelled dirty corpus of the {split} Firefox strings and UDHR articles",
        languages="all",
        parallel=[{"type": "parquet", "name": sources[part][0], "path": str(path), "columns": {"source_id": "id"},
                   "split": sources[part][1], "license": sources[part][2]} for part, path in paths.items()],  # fmt: skip
        instructions=[],
        pivot_join=False,
        mixture=None,
        templates={"sentence": 1.0, "document": 0.0, "dialogue": 0.0, "segments": [2, 4]},
        decontamination={**recipe.get("decontamination", {}), "eval_sets": []},
    )
    apply_extras(recipe, extras)
    return recipe


def run_build(recipe_path: Path, output: Path, tasks: int, workers: int) -> float:
    for folder in (output, output.with_name(f".{output.name}.partial")):  # a rerun of the same build would be a no-op
        shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, str(REPO / "pipelines" / "build.py"), "--recipe", str(recipe_path), "--output", str(output),
               "--tasks", str(tasks), "--workers", str(workers)]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"build failed ({done.returncode}): {shlex.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return time.perf_counter() - started


def outcomes(labels: pl.DataFrame, output: Path) -> pl.DataFrame:
    """Each labelled row with its fate: `removed` (stage, reason, detail) or kept, and `repaired` for kept
    control_chars rows none of whose inserted characters is left in their output rows."""
    removed_files = sorted((output / "removed").glob("*.parquet"))
    columns = ["source_id", "stage", "reason", "detail"]
    removed = pl.concat([pl.read_parquet(f, columns=columns) for f in removed_files]) if removed_files else pl.DataFrame(
        schema={c: pl.String for c in columns})
    data_files = sorted((output / "data").glob("*/*.parquet"))
    kept = pl.concat([pl.read_parquet(f, columns=["source_id", "messages"]) for f in data_files])
    # joined by newlines: never among the inserted characters looked for (a control character would be found)
    texts = kept.select("source_id", text=pl.col("messages").list.eval(pl.element().struct.field("content")).list.join("\n"))
    texts = texts.group_by("source_id").agg(pl.col("text").str.join("\n"))

    twice = removed.group_by("source_id").len().filter(pl.col("len") > 1)
    if twice.height:
        raise SystemExit(f"{output}/removed: {twice.height} rows are removed more than once, e.g. {twice['source_id'][0]}")
    frame = labels.join(removed, on="source_id", how="left").join(texts, on="source_id", how="left")
    both = frame.filter(pl.col("stage").is_not_null() & pl.col("text").is_not_null())
    neither = frame.filter(pl.col("stage").is_null() & pl.col("text").is_null())
    unknown = set(removed["source_id"]) - set(labels["source_id"])
    if both.height or neither.height or unknown:
        raise SystemExit(f"{output}: rows not accounted for: {both.height} both kept and removed, {neither.height} neither "
                         f"(e.g. {(both['source_id'].to_list() + neither['source_id'].to_list())[:3]}), "
                         f"{len(unknown)} removed rows with no label")  # fmt: skip
    frame = frame.with_columns(flagged=pl.col("stage").is_not_null())
    left = [  # the inserted characters still in the output rows of a kept control_chars row
        "".join(c for c in row["note"] if c in row["text"]) if row["text"] is not None and row["label"] == "control_chars" else None
        for row in frame.select("text", "label", "note").iter_rows(named=True)
    ]
    # language ID checks the pivot side first and the other only where it passed, and a verdict depends only on the
    # text: a corrupted row it dropped for the side that was left as it was would have been dropped uncorrupted too
    untouched = pl.col("detail").str.extract(r"^(src|tgt):", 1)
    other_side = (pl.col("stage") == "language_id") & pl.col("side").is_in(["src", "tgt"]) & (untouched != pl.col("side"))
    # a copy dropped before dedup: its original, the same text, met the same verdict
    copy = (pl.col("label") == "duplicated") & ~pl.col("stage").is_in(["exact_dedup", "near_dedup"])
    return frame.with_columns(
        left=pl.Series(left, dtype=pl.String),
        incidental=(other_side | copy).fill_null(False),
        step_reason=pl.col("stage") + "/" + pl.col("reason"),
    ).with_columns(repaired=(pl.col("left") == "").fill_null(False)).drop("text")


def pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def table(header: list[str], rows: list[list], align: str = "") -> str:
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def short(text: str, n: int = 50) -> str:
    text = text.replace("\n", "⏎").replace("|", "\\|")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}" for c in text)
    return text if len(text) <= n else text[: n - 1] + "…"


def summarize(frame: pl.DataFrame, min_clean_rows: int = 10) -> dict:
    """The numbers of one part of the corpus (see the module's docstring)."""
    kinds = {}
    for kind in ("clean", *KINDS):
        rows = frame.filter(pl.col("label") == kind)
        reasons = rows.filter("flagged").group_by("step_reason").len().sort("len", "step_reason", descending=[True, False])
        dropped, repaired = rows["flagged"].sum(), rows["repaired"].sum()
        kinds[kind] = {"rows": rows.height, "dropped": int(dropped), "repaired": int(repaired), "handled": int(dropped + repaired),
                       "dropped_as_clean_original": int(rows["incidental"].sum()),
                       "reasons": dict(reasons.iter_rows())}  # fmt: skip
    clean = frame.filter(pl.col("label") == "clean")
    examples = {}
    for (reason,), rows in clean.filter("flagged").group_by("step_reason", maintain_order=True):
        examples[reason] = [
            {"src_lang": r["src_lang"], "src_text": r["src_text"], "tgt_text": r["tgt_text"], "detail": r["detail"]}
            for r in rows.head(3).iter_rows(named=True)
        ]
    per_reason = (
        frame.filter("flagged")
        .group_by("step_reason")
        .agg(clean=(pl.col("label") == "clean").sum(), corrupted=(pl.col("label") != "clean").sum(), rows=pl.len())
        .sort("rows", "step_reason", descending=[True, False])
    )
    languages = (
        clean.group_by("src_lang")
        .agg(rows=pl.len(), kept=(~pl.col("flagged")).sum(), top=pl.col("step_reason").drop_nulls().mode().first())
        .filter(pl.col("rows") >= min_clean_rows)
        .with_columns(share=pl.col("kept") / pl.col("rows"))
        .sort("share", "src_lang")
        .head(WORST_LANGUAGES)
    )
    corrupted = frame.filter(pl.col("label") != "clean")
    # language ID names the side it rejected first in its detail ("tgt: expected eng_Latn, ...")
    side = pl.col("detail").str.extract(r"^(src|tgt)\b", 1).fill_null("other")
    sides = clean.filter(pl.col("stage") == "language_id").group_by(side=side).len().sort("side")
    left = frame.filter(pl.col("left").is_not_null())["left"].str.split("").explode()
    left = left.filter(left != "").value_counts(sort=True)
    return {
        "rows": frame.height,
        "min_clean_rows": min_clean_rows,
        "control_chars_left": {f"U+{ord(c):04X}": n for c, n in left.iter_rows()},
        "kinds": kinds,
        "clean_kept": int((~clean["flagged"]).sum()),
        "clean_rows": clean.height,
        "clean_removed_examples": examples,
        "clean_language_id_sides": dict(sides.iter_rows()),
        "removals": [dict(r) for r in per_reason.iter_rows(named=True)],
        "corrupted_rows": corrupted.height,
        "corrupted_handled": int(corrupted["flagged"].sum() + corrupted["repaired"].sum()),
        "corrupted_dropped": int(corrupted["flagged"].sum()),
        "worst_languages": [dict(r) for r in languages.iter_rows(named=True)],
    }


def render(name: str, s: dict) -> str:
    out = [f"## {name}: {s['rows']:,} rows", ""]
    out.append(f"Clean rows kept: **{s['clean_kept']:,} / {s['clean_rows']:,} ({pct(s['clean_kept'], s['clean_rows'])})**; "
               f"corrupted rows handled (dropped or repaired): **{s['corrupted_handled']:,} / {s['corrupted_rows']:,} "
               f"({pct(s['corrupted_handled'], s['corrupted_rows'])})**, dropped {pct(s['corrupted_dropped'], s['corrupted_rows'])}.")  # fmt: skip
    out.append("")
    rows = []
    for kind, k in s["kinds"].items():
        top = ", ".join(f"{r} {n}" for r, n in list(k["reasons"].items())[:3])
        repaired = pct(k["repaired"], k["rows"]) if kind == "control_chars" else "-"
        handled = "-" if kind == "clean" else pct(k["handled"], k["rows"])
        incidental = "-" if kind == "clean" else pct(k["dropped_as_clean_original"], k["rows"])
        kept = pct(k["rows"] - k["handled"], k["rows"])
        rows.append([kind, k["rows"], pct(k["dropped"], k["rows"]), incidental, repaired, handled, kept, top])
    header = ["label", "rows", "dropped", "of which as its clean original would be", "repaired", "flagged (dropped or repaired)",
              "kept as is", "top reasons (step/reason: rows)"]  # fmt: skip
    out += [table(header, rows, "lrrrrrrl"), ""]
    sides = s["clean_language_id_sides"]
    if sides:
        by_side = ", ".join(f"{side} {n:,}" for side, n in sides.items())
        out += [f"Clean rows dropped by language ID, by the side it rejected: {by_side}", ""]
    out.append("Removals per step and reason:")
    out.append("")
    removals = [[r["step_reason"], r["rows"], r["clean"], r["corrupted"]] for r in s["removals"]]
    out += [table(["step/reason", "rows", "clean", "corrupted"], removals), ""]
    if s["clean_removed_examples"]:
        out.append("Clean rows removed, by reason (3 examples each):")
        out.append("")
        counts = s["kinds"]["clean"]["reasons"]
        rows = []
        for reason in counts:
            for i, e in enumerate(s["clean_removed_examples"][reason]):
                first = [reason, counts[reason]] if i == 0 else ["", ""]
                rows.append([*first, e["src_lang"], short(e["src_text"]), short(e["tgt_text"]), short(e["detail"], 70)])
        out += [table(["reason", "clean rows", "lang", "src_text", "tgt_text", "detail"], rows, "lrllll"), ""]
    if s["control_chars_left"]:
        out += ["Inserted characters left in kept control_chars rows (not repaired): "
                + ", ".join(f"{c} {n}" for c, n in s["control_chars_left"].items()), ""]
    out.append(f"Clean rows kept, the {WORST_LANGUAGES} worst languages (at least {s['min_clean_rows']} clean rows):")
    out.append("")
    out += [table(["language", "clean rows", "kept", "share kept", "top reason"],
                  [[r["src_lang"], r["rows"], r["kept"], pct(r["kept"], r["rows"]), r["top"] or "-"] for r in s["worst_languages"]], "lrrrl"), ""]  # fmt: skip
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["heldout", "calibration"], default="heldout")
    parser.add_argument("--rows", type=int, default=40_000, help="labelled rows before the duplicated copies (default 40000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-share", type=float, default=0.1, help="share of the rows from UDHR (as many as there are, at most)")
    parser.add_argument("--langs", default=None, help="only these languages, FLORES-200 codes comma-separated (default: all)")
    parser.add_argument("--recipe", default="bayling2", help="recipe whose settings the build uses (name or path)")
    parser.add_argument("--recipe-extra", action="append", default=[],
                        help="key.sub=value (YAML value) or a YAML fragment file; repeatable")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bayling-quality-bench"))
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here too")
    parser.add_argument("--reuse-build", action="store_true",
                        help="report on the build already in --workdir, if it was made from this very corpus and recipe")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    langs = {code.strip() for code in args.langs.split(",") if code.strip()} if args.langs else None
    corpus = make_corpus(args.split, args.rows, args.seed, args.long_share, langs=langs)
    paths = write_corpus(corpus, args.workdir / "corpus")
    recipe = make_recipe(args.recipe, paths, args.recipe_extra, args.split)
    recipe_path = args.workdir / "recipe.yaml"
    recipe_text = yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False)
    made = time.perf_counter() - started
    output = args.workdir / "out"
    if args.reuse_build:
        # the build's recipe.yaml is a copy of the recipe it read; its sources' sha256 in the manifest are the corpus files'
        from pipelines.sources import _file_sha256

        manifest = json.loads((output / "manifest.json").read_text()) if (output / "manifest.json").is_file() else {}
        built = {s["name"]: s["sha256"] for s in manifest.get("sources", [])}
        wanted = {source["name"]: _file_sha256([source["path"]]) for source in recipe["parallel"]}
        used = (output / "recipe.yaml").read_text(encoding="utf-8") if (output / "recipe.yaml").is_file() else None
        if used != recipe_text or built != wanted:
            raise SystemExit(f"--reuse-build: {output} was not built from this corpus and recipe; run without --reuse-build")
        build_seconds = 0.0
    else:
        recipe_path.write_text(recipe_text, encoding="utf-8")
        build_seconds = run_build(recipe_path, output, args.tasks, args.workers)

    labels = pl.read_parquet(args.workdir / "corpus" / "labels.parquet")
    frame = outcomes(labels, output)
    parts = {"all": frame, "short (Firefox)": frame.filter(pl.col("part") == "short"),
             "long (UDHR)": frame.filter(pl.col("part") == "long")}  # fmt: skip
    summaries = {name: summarize(rows, MIN_CLEAN_ROWS[name]) for name, rows in parts.items() if rows.height}
    print(f"# Quality gate on the dirty corpus: split {args.split}, {frame.height:,} rows, seed {args.seed}, recipe {args.recipe}"
          + (f" + {' '.join(args.recipe_extra)}" if args.recipe_extra else ""))
    print(f"\ncorpus {made:.0f} s, build {build_seconds:.0f} s ({args.tasks} tasks, {args.workers} workers); "
          f"recipe {recipe_path}, output {output}\n")
    for name, s in summaries.items():
        print(render(name, s))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"split": args.split, "rows": args.rows, "seed": args.seed, "recipe": args.recipe, "recipe_extra": args.recipe_extra,
                "files": {part: FILES[part] for part in paths}, "corpus_seconds": round(made, 1),
                "build_seconds": round(build_seconds, 1)}  # fmt: skip
        args.json.write_text(json.dumps({"settings": meta, "parts": summaries}, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
