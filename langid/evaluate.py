"""Evaluate language identification on labelled text.

    python -m langid.evaluate --model udhr-lid --data udhr:heldout
    python -m langid.evaluate --model lid176 --data my.parquet --output reports/lid176

`--data` is any source langid.texts reads: a Parquet with (text, lang) columns, a pair Parquet, or the UDHR
splits. `--model` is a model spec, or several comma-separated, asked in order as the pipeline asks them (the
first that puts a language first with at least its threshold wins; if none does, the first model's answer).

Prints per-language precision/recall/F1, macro-F1 over the languages the model covers, the confusions that cost
most, sentences/second and macro-F1 and accuracy by text length (LENGTH_BUCKETS); writes <output>.json and a bar
chart <output>.png of per-language F1.

Several `--model` and/or `--data` compare candidates on the same text in one run: one table, a row per model,
per data set macro-F1 (languages covered), accuracy and sentences/second, and a second table by text length;
<output>.json (default langid-compare.json) holds every report:

    python -m langid.evaluate --model lid176 --model udhr-lid --model udhr-lid,lid176 --model heliport \
        --data udhr:heldout --data firefox:heldout+pivot --data gettext:heldout+pivot

A prediction counts as right when it names the language exactly where the model has that exact label, and
through the macrolanguage where it does not (lid.176's `ar` for Moroccan Arabic).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import polars_hash  # noqa: F401  (registers the `nchash` namespace)

from langid.identify import LanguageIdentifier, ModelCheck


def predict(identifier: LanguageIdentifier, texts: list[str]) -> tuple[list[str], list[float]]:
    """Cascade prediction: the first model whose top-1 clears its per-language threshold names the language."""
    first_codes, first_scores = None, None
    decided: list[str | None] = [None] * len(texts)
    score_of = np.zeros(len(texts))
    for check in identifier.checks:
        codes, scores = check.model.predict(texts)
        top = [c[0] for c in codes]
        if first_codes is None:
            first_codes, first_scores = top, scores[:, 0]
        for i, (code, score) in enumerate(zip(top, scores[:, 0])):
            if decided[i] is None and score >= check.thresholds.get(code):
                decided[i], score_of[i] = code, score
    return [d if d is not None else f for d, f in zip(decided, first_codes)], [
        s if d is not None else f for d, s, f in zip(decided, score_of, first_scores)
    ]


def is_right(checks: list[ModelCheck], predicted: str, gold: str) -> bool:
    if any(check.knows_exactly(gold) for check in checks):
        return predicted == gold
    return any(check.covers(gold) and check.matches(np.array([predicted], dtype=object), gold)[0] for check in checks)


def credited(checks: list[ModelCheck], predicted: list[str], gold: list[str]) -> list[str]:
    """Each prediction as the gold code where it is right (see module doc), else as predicted."""
    return [g if is_right(checks, p, g) else p for p, g in zip(predicted, gold)]


def scores_per_language(gold: list[str], predicted: list[str], languages: list[str]) -> pl.DataFrame:
    frame = pl.DataFrame({"gold": gold, "predicted": predicted})
    support = frame.group_by("gold").len().rename({"gold": "lang", "len": "support"})
    tp = frame.filter(pl.col("gold") == pl.col("predicted")).group_by("gold").len().rename({"gold": "lang", "len": "tp"})
    predicted_n = frame.group_by("predicted").len().rename({"predicted": "lang", "len": "predicted"})
    table = (
        pl.DataFrame({"lang": languages})
        .join(support, on="lang", how="left")
        .join(tp, on="lang", how="left")
        .join(predicted_n, on="lang", how="left")
        .fill_null(0)
    )
    return table.with_columns(
        precision=pl.when(pl.col("predicted") > 0).then(pl.col("tp") / pl.col("predicted")).otherwise(0.0),
        recall=pl.when(pl.col("support") > 0).then(pl.col("tp") / pl.col("support")).otherwise(0.0),
    ).with_columns(
        f1=pl.when(pl.col("precision") + pl.col("recall") > 0)
        .then(2 * pl.col("precision") * pl.col("recall") / (pl.col("precision") + pl.col("recall")))
        .otherwise(0.0)
    )


# Text lengths in characters, [low, high): what a UI string, a sentence, a paragraph is.
LENGTH_BUCKETS = {"1-20": (1, 20), "20-60": (20, 60), "60-200": (60, 200), "200+": (200, None)}


def length_buckets(texts: list[str]) -> list[str]:
    """The LENGTH_BUCKETS name of each text."""
    return [next(name for name, (low, high) in LENGTH_BUCKETS.items() if high is None or len(t) < high) for t in texts]


def by_length(gold: list[str], predicted: list[str], buckets: list[str], covered: list[str]) -> dict:
    """Macro-F1 (over the covered languages present in the bucket) and accuracy per length bucket."""
    out = {}
    covered_set = set(covered)
    for name in LENGTH_BUCKETS:
        rows = [i for i, b in enumerate(buckets) if b == name and gold[i] in covered_set]
        if not rows:
            continue
        languages = sorted({gold[i] for i in rows})
        table = scores_per_language([gold[i] for i in rows], [predicted[i] for i in rows], languages)
        out[name] = {
            "texts": len(rows),
            "languages": len(languages),
            "macro_f1": float(table["f1"].mean()),
            "accuracy": float(np.mean([predicted[i] == gold[i] for i in rows])),
        }
    return out


def evaluate(identifier: LanguageIdentifier, data: pl.DataFrame) -> dict:
    texts, gold = data["text"].to_list(), data["lang"].to_list()
    predict(identifier, texts[:10])  # first calls import and build lookup tables (hanzidentifier): not per text
    started = time.perf_counter()
    predicted, _ = predict(identifier, texts)
    seconds = time.perf_counter() - started
    predicted = credited(identifier.checks, predicted, gold)
    covered = sorted({g for g in gold if identifier.covers(g)})
    in_scope = [i for i, g in enumerate(gold) if g in set(covered)]
    table = scores_per_language([gold[i] for i in in_scope], [predicted[i] for i in in_scope], covered)
    confusions = (
        pl.DataFrame({"gold": gold, "predicted": predicted})
        .filter(pl.col("gold") != pl.col("predicted"))
        .group_by("gold", "predicted")
        .len()
        .sort(["len", "gold", "predicted"], descending=[True, False, False])
    )
    return {
        "models": [{"name": c.model.name, "path": str(c.model.path), "sha256": c.model.sha256} for c in identifier.checks],
        "texts": len(texts),
        "languages_in_data": len(set(gold)),
        "languages_covered": len(covered),
        "macro_f1": float(table["f1"].mean()) if table.height else 0.0,
        "accuracy_on_covered": float(np.mean([predicted[i] == gold[i] for i in in_scope])) if in_scope else 0.0,
        "sentences_per_second": len(texts) / seconds if seconds else 0.0,
        "by_length": by_length(gold, predicted, length_buckets(texts), covered),
        "per_language": table.sort("lang").to_dicts(),
        "top_confusions": confusions.head(25).rename({"len": "count"}).to_dicts(),
        "not_covered": sorted(set(gold) - set(covered)),
    }


def verify(identifier: LanguageIdentifier, data: pl.DataFrame) -> dict:
    """What the pipeline asks (is this text in its labelled language?), on labelled text: each text once with its
    true label, whose acceptance should be high, and once with a wrong one, whose acceptance should be low. The
    wrong label is the next language of the same script among those in the data (sorted codes): the hardest
    kind of mislabel, a neighbour. Languages no model covers, and scripts with one language, are left out."""
    data = data.filter(pl.col("lang").map_elements(identifier.covers, return_dtype=pl.Boolean))
    by_script: dict[str, list[str]] = {}
    for lang in sorted(set(data["lang"])):
        by_script.setdefault(lang.split("_")[1], []).append(lang)
    neighbour = {lang: group[(i + 1) % len(group)] for group in by_script.values() if len(group) > 1 for i, lang in enumerate(group)}
    data = data.filter(pl.col("lang").is_in(list(neighbour))).with_columns(wrong=pl.col("lang").replace_strict(neighbour))
    data = data.with_row_index("row").with_columns(bucket=pl.Series(length_buckets(data["text"].to_list()), dtype=pl.String))
    accepted = {}
    for claim in ("lang", "wrong"):
        passed = np.zeros(data.height, dtype=bool)
        for (lang,), group in data.group_by(claim):
            passed[group["row"].to_numpy()] = identifier.check(group["text"].to_list(), lang).passed
        accepted[claim] = passed
    buckets = data["bucket"].to_numpy()
    return {
        "texts": data.height,
        "languages": len(neighbour),
        "true_label_accepted": float(accepted["lang"].mean()) if data.height else 0.0,
        "wrong_label_accepted": float(accepted["wrong"].mean()) if data.height else 0.0,
        "by_length": {
            name: {
                "texts": int((buckets == name).sum()),
                "true_label_accepted": float(accepted["lang"][buckets == name].mean()),
                "wrong_label_accepted": float(accepted["wrong"][buckets == name].mean()),
            }
            for name in LENGTH_BUCKETS
            if (buckets == name).any()
        },
    }


def bar_chart(report: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(report["per_language"], key=lambda r: r["f1"])
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.06), 4.5))
    ax.bar(range(len(rows)), [r["f1"] for r in rows], width=1.0, color="#4472c4")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.set_ylabel("F1")
    ax.set_xlabel(f"{len(rows)} languages, sorted by F1")
    step = max(1, len(rows) // 40)
    ax.set_xticks(range(0, len(rows), step), [rows[i]["lang"] for i in range(0, len(rows), step)], rotation=90, fontsize=6)
    ax.set_title(f"{title}: macro-F1 {report['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def at_most_per_language(data: pl.DataFrame, n: int) -> pl.DataFrame:
    """At most `n` texts of each language, the same ones on every run (smallest XXH3 of the text): a sample for
    models too slow for the whole set, equal for every model compared."""
    key = pl.col("text").nchash.xxh3_64()
    return data.sort(pl.col("lang"), key, pl.col("text")).filter(pl.int_range(pl.len()).over("lang") < n)


def load_all(models: list[str], sources: list[str], only_covered_by: list[str], cut_clauses: bool, per_language: int | None = None):
    """The identifiers and the data sets of a run, or SystemExit with one line naming what is missing or wrong."""
    from langid.texts import clauses, load_texts

    try:
        identifiers = {spec: LanguageIdentifier.load(spec) for spec in models}
        common = [LanguageIdentifier.load(spec) for spec in only_covered_by]
        datasets = {}
        for source in sources:
            data = load_texts(source)
            if cut_clauses:
                data = clauses(data)
            for other in common:
                data = data.filter(pl.col("lang").map_elements(other.covers, return_dtype=pl.Boolean))
            datasets[source] = at_most_per_language(data, per_language) if per_language else data
    except (FileNotFoundError, ImportError, ValueError) as e:  # no such model or file, extra not installed, bad spec
        raise SystemExit(f"langid.evaluate: error: {e}") from None
    return identifiers, datasets


def comparison_tables(reports: dict[str, dict[str, dict]]) -> str:
    """Markdown: a row per model with macro-F1 (languages covered), accuracy and sentences/s per data set; then a
    row per model and data set with macro-F1 / accuracy per length bucket."""
    sources = list(next(iter(reports.values())))
    lines = ["| model | " + " | ".join(f"{s}: macro-F1 (languages) | accuracy | sentences/s" for s in sources) + " |",
             "|---|" + "---|---|---|" * len(sources)]  # fmt: skip
    for model, by_source in reports.items():
        cells = [f"{r['macro_f1']:.4f} ({r['languages_covered']}) | {r['accuracy_on_covered']:.4f} | {r['sentences_per_second']:,.0f}" for r in by_source.values()]
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    lines += ["", "macro-F1 / accuracy by text length in characters (texts):", "",
              "| model | data | " + " | ".join(LENGTH_BUCKETS) + " |", "|---|---|" + "---|" * len(LENGTH_BUCKETS)]  # fmt: skip
    for model, by_source in reports.items():
        for source, r in by_source.items():
            cells = [f"{b['macro_f1']:.3f} / {b['accuracy']:.3f} ({b['texts']:,})" if (b := r["by_length"].get(name)) else "-" for name in LENGTH_BUCKETS]
            lines.append(f"| `{model}` | {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    models, sources = args.model or ["udhr-lid"], args.data or ["udhr:heldout"]
    identifiers, datasets = load_all(models, sources, args.only_covered_by, args.clauses, args.max_per_language)
    if args.verify:
        print_verification(identifiers, datasets, args.clauses)
        return
    reports: dict[str, dict[str, dict]] = {}
    for model, identifier in identifiers.items():
        for source, data in datasets.items():
            report = evaluate(identifier, data)
            report["only_covered_by"] = ",".join(args.only_covered_by) or None
            report["data"] = source
            reports.setdefault(model, {})[source] = report
    if len(models) > 1 or len(sources) > 1:
        write_comparison(reports, args.output or Path("langid-compare"))
        return
    model, source = models[0], sources[0]
    output = args.output or Path(f"langid-eval-{model.replace(',', '+').replace('/', '_')}")
    write_report(reports[model][source], f"{model} on {source}", output)
    print_report(reports[model][source], f"{model} on {source}", output, args.top)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model spec(s), comma-separated as a cascade (see langid.models); repeat to compare "
                        "(default udhr-lid)")  # fmt: skip
    parser.add_argument("--data", action="append", help="labelled text (see langid.texts); repeat to compare (default udhr:heldout)")
    parser.add_argument("--output", type=Path, default=None, help="report path without suffix (default: langid-eval-<model>, or langid-compare "
                        "for several models or data sets)")  # fmt: skip
    parser.add_argument("--only-covered-by", action="append", default=[], help="keep only texts of languages this model spec covers (to compare "
                        "models on common ground); repeat to keep those every spec covers")  # fmt: skip
    parser.add_argument("--max-per-language", type=int, default=None, help="at most this many texts of each language per data set, "
                        "the same for every model (for slow models)")  # fmt: skip
    parser.add_argument("--top", type=int, default=20, help="how many languages and confusions to print")
    parser.add_argument("--verify", action="store_true", help="the pipeline's question instead: acceptance of true and of wrong labels "
                        "(see langid.identify)")  # fmt: skip
    parser.add_argument("--clauses", action="store_true", help="cut the texts into clauses of 20-60 characters first")
    return parser.parse_args(argv)


def print_verification(identifiers: dict[str, LanguageIdentifier], datasets: dict[str, pl.DataFrame],
                       clauses: bool) -> None:
    """--verify: how often each model accepts the true label and a wrong one, overall and by text length."""
    for (model, identifier), (source, data) in ((m, d) for m in identifiers.items() for d in datasets.items()):
        found = verify(identifier, data)
        print(f"{model} on {source}{' (clauses)' if clauses else ''}: "
              f"true labels accepted {found['true_label_accepted']:.4f}, wrong labels accepted {found['wrong_label_accepted']:.4f} "
              f"({found['texts']} texts, {found['languages']} languages)")  # fmt: skip
        for name, b in found["by_length"].items():
            print(f"    {name:>6} characters: true labels accepted {b['true_label_accepted']:.4f}, wrong labels accepted {b['wrong_label_accepted']:.4f} ({b['texts']} texts)")


def write_comparison(reports: dict[str, dict[str, dict]], output: Path) -> None:
    """Several models or data sets: every report in one JSON file, and the comparison tables printed."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(reports, indent=1) + "\n", encoding="utf-8")
    print(comparison_tables(reports))
    print(f"reports: {output.with_suffix('.json')}")


def write_report(report: dict, title: str, output: Path) -> None:
    """One model on one data set: the report as JSON and its per-language F1 chart."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    bar_chart(report, output.with_suffix(".png"), title)


def print_report(report: dict, title: str, output: Path, top: int) -> None:
    """The `top` languages of lowest F1, the costliest confusions, scores by length, and the summary line."""
    table = pl.DataFrame(report["per_language"]).sort("f1")
    with pl.Config(tbl_rows=top, tbl_hide_dataframe_shape=True, float_precision=3):
        print(f"lowest F1 of {table.height} languages:")
        print(table.select("lang", "support", "precision", "recall", "f1").head(top))
        print("confusions that cost most (gold -> predicted):")
        print(pl.DataFrame(report["top_confusions"]).head(top) if report["top_confusions"] else "none")
    print("by length: " + ", ".join(f"{name} characters macro-F1 {b['macro_f1']:.4f} accuracy {b['accuracy']:.4f} ({b['texts']} texts)" for name, b in report["by_length"].items()))
    print(
        f"{title}: macro-F1 {report['macro_f1']:.4f} over {report['languages_covered']} covered languages "
        f"(of {report['languages_in_data']}), accuracy {report['accuracy_on_covered']:.4f}, "
        f"{report['sentences_per_second']:.0f} sentences/s; report {output.with_suffix('.json')}, chart {output.with_suffix('.png')}"
    )


if __name__ == "__main__":
    main()
