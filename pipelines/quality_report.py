"""The quality report of a version: what the quality gate removed, why, and from which languages.

    python -m pipelines.quality_report out/udhr-cross-lingual/v1.0.0            # the summary, in the terminal
    python -m pipelines.quality_report out/udhr-cross-lingual/v1.0.0 --examples --languages 40

Written by the manifest stage next to the card, from the merged, published `removed/<step>.parquet`:

    quality.json   machine-readable: removals per step and reason, per language (and which side failed), the
                   share of each language's input, a few examples per reason
    quality.md     every language's row and every example, linked from the card
    quality.png    the removed share of the languages with the largest shares, stacked by reason

Like the card, these describe the content and are left out of the content hash (`pipelines.manifest`).

A language's input is what entered the pair path for it: the pairs that passed every step (`passed`, the pairs
the mixture sampled from, counted by the build from its work files) plus the pairs some step removed. That is the
pairs read plus those the pivot join made (a joined pair can be removed by dedup too), so a share never exceeds 1.
The same for the zh/en instructions (`unit: instructions`, counted by their `lang`). A version whose report is
gone can be reported again from removed/ alone (`--recompute`), without inputs and shares: the work files are not
kept.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

if __package__ in (None, ""):  # run as `python pipelines/quality_report.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.card import save_chart, save_text
from schemas.language_codes import language_name

QUALITY_JSON, QUALITY_MD, QUALITY_CHART = "quality.json", "quality.md", "quality.png"
QUALITY_FILES = (QUALITY_JSON, QUALITY_MD, QUALITY_CHART)
FORMAT_VERSION = 1
EXAMPLES = 3  # per reason: the smallest ids, so the same rows for the same removed/ file
TEXT_CHARS = 160  # of each text of an example in quality.json; the card shortens further
CARD_TEXT_CHARS = 70
CARD_LANGUAGES = 10  # the worst languages shown in the card (every language is in quality.md and quality.json)
CHART_LANGUAGES = 30  # bars of the chart: readable with any number of languages
SIDES = ("src", "tgt", "whole")
# Which side a removal is about, from its detail: language ID says "src: ..." / "tgt: ...", decontamination
# "src_text ..." / "tgt_text ...", the dedup cap "the source sentence ..."; any other detail is about the whole
# pair (length ratio, duplicate) or instruction.
SIDE_PATTERN = r"^(?:the )?(src|tgt|source|target)(?:_text)?\b"


def side_of(detail: pl.Expr) -> pl.Expr:
    side = detail.str.extract(SIDE_PATTERN, 1)
    return side.replace({"source": "src", "target": "tgt"}).fill_null("whole")


def step_files(folder: Path) -> list[Path]:
    return sorted((Path(folder) / "removed").glob("*.parquet"))


def unit_of(path: Path) -> str:
    """`pairs` (REMOVED_SCHEMA: src_lang is the non-pivot language) or `instructions` (the zh/en part: `lang`)."""
    names = pq.read_schema(path).names
    if "src_lang" in names:
        return "pairs"
    if "lang" in names and "messages" in names:
        return "instructions"
    raise ValueError(f"{path}: neither removed pairs (src_lang) nor removed instructions (lang, messages): columns {names}")


def passed_counts(work_dir: Path) -> dict[str, dict[str, int]]:
    """What passed every step, per unit and language, from the build's work files (their metadata only):
    `pairs/<lang>.parquet` (one file per language, tasks own whole languages) and `chat/<lang>/*.parquet`."""
    work_dir = Path(work_dir)
    pairs = {p.stem: pq.read_metadata(p).num_rows for p in sorted((work_dir / "pairs").glob("*.parquet"))}
    chat = {d.name: sum(pq.read_metadata(p).num_rows for p in d.glob("*.parquet")) for d in sorted((work_dir / "chat").glob("*")) if d.is_dir()}
    return {unit: dict(sorted(counts.items())) for unit, counts in (("pairs", pairs), ("instructions", chat)) if counts}


def scan_step(path: Path, unit: str, count: int = EXAMPLES) -> tuple[list[tuple[str, str, str, int]], dict[str, list[str]]]:
    """One pass over a step file, a row group of four columns at a time (merge_removed writes groups of
    REMOVED_ROW_GROUP rows), so memory does not grow with the removed rows, as it did with a polars streaming
    group-by over the file and with pyarrow's iter_batches, which reads ahead: (reason, language, side, rows) and
    the `count` smallest ids of each reason."""
    language = "src_lang" if unit == "pairs" else "lang"
    counts: dict[tuple[str, str, str], int] = {}
    best: dict[str, list[str]] = {}
    file = pq.ParquetFile(path)
    for group in range(file.num_row_groups):
        frame = pl.from_arrow(file.read_row_group(group, columns=["id", "reason", language, "detail"])).rename({language: "language"})
        side = side_of(pl.col("detail")) if unit == "pairs" else pl.lit("whole")
        for reason, lang, which, n in frame.group_by("reason", "language", side.alias("side")).len().iter_rows():
            counts[(reason, lang, which)] = counts.get((reason, lang, which), 0) + n
        for reason, ids in frame.group_by("reason").agg(pl.col("id").bottom_k(count)).iter_rows():
            best[reason] = sorted(set(best.get(reason, [])) | set(ids))[:count]
    return [(*key, n) for key, n in counts.items()], best


def shorten(text: str | None, chars: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def examples_of(path: Path, unit: str, wanted: dict[str, list[str]]) -> dict[str, list[dict]]:
    """The rows behind `wanted` (reason -> ids), in id order; only those rows are kept in memory."""
    ids = sorted({i for chosen in wanted.values() for i in chosen})
    if not ids:
        return {}
    scan = pl.scan_parquet(path).filter(pl.col("id").is_in(ids))
    if unit == "pairs":
        rows = scan.select(
            "id", "reason", "detail", "split", language="src_lang", direction=pl.col("src_lang") + "->" + pl.col("tgt_lang"),
            first="src_text", second="tgt_text", side=side_of(pl.col("detail")),
        )  # fmt: skip
    else:
        def turn(role: str) -> pl.Expr:
            return pl.col("messages").list.eval(pl.element().filter(pl.element().struct.field("role") == role).struct.field("content")).list.first()

        rows = scan.select("id", "reason", "detail", language="lang", direction=pl.lit("instruction"), first=turn("user"),
                           second=turn("assistant"), side=pl.lit("whole"))  # fmt: skip
    found: dict[str, list[dict]] = {}
    for row in rows.collect(engine="streaming").sort("id", "reason", maintain_order=True).iter_rows(named=True):
        chosen = found.setdefault(row["reason"], [])
        if row["id"] in wanted.get(row["reason"], ()) and all(e["id"] != row["id"] for e in chosen):
            example = {"id": row["id"], "language": row["language"], "direction": row["direction"]}
            example |= {"split": row["split"]} if "split" in row else {}
            example |= {"side": row["side"], "texts": [shorten(row["first"], TEXT_CHARS), shorten(row["second"], TEXT_CHARS)], "detail": row["detail"]}
            chosen.append(example)
    return found


def share(part: int, whole: int | None) -> float | None:
    return round(part / whole, 6) if whole else None


Group = tuple[str, str, str, str, str, int]  # unit, step, reason, language, side, rows: a few per language


def build_report(folder: Path, passed: dict[str, dict[str, int]] | None, version: str = "", content_hash: str = "") -> dict:
    """The report of the version in `folder`, from its removed/ files; `passed` is `passed_counts` of the build
    (None: inputs unknown, no shares)."""
    groups, examples = scan_removed(folder)
    removed_per_language: dict[tuple[str, str], int] = {}
    for unit, _, _, lang, _, n in groups:
        removed_per_language[(unit, lang)] = removed_per_language.get((unit, lang), 0) + n
    inputs = inputs_per_language(passed, groups, removed_per_language)
    units = unit_totals(groups, inputs)
    return {
        "format_version": FORMAT_VERSION,
        "version": version,
        "content_hash": content_hash,
        "input": "passed + removed per language: the pairs (or zh/en instructions) that passed every step, plus those "
                 "a step removed; for pairs, those read and those the pivot join made" if passed is not None
                 else "unknown: recomputed from removed/ alone, without the build's counts of what passed",  # fmt: skip
        "units": units,
        "reasons": reason_entries(groups, units, examples),
        "languages": language_entries(groups, inputs, removed_per_language),
    }


def scan_removed(folder: Path) -> tuple[list[Group], dict[tuple[str, str], list[dict]]]:
    """The removal counts of every removed/ file, and the examples of each (step, reason)."""
    groups: list[Group] = []
    examples: dict[tuple[str, str], list[dict]] = {}
    for path in step_files(folder):
        unit = unit_of(path)
        counted, smallest = scan_step(path, unit)
        groups += [(unit, path.stem, *row) for row in counted]
        for reason, rows in examples_of(path, unit, smallest).items():
            examples[(path.stem, reason)] = rows
    return groups, examples


def inputs_per_language(passed: dict[str, dict[str, int]] | None, groups: list[Group],
                        removed_per_language: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """unit -> language -> passed + removed; empty when the build's counts of what passed are unknown."""
    inputs: dict[str, dict[str, int]] = {}
    if passed is None:
        return inputs
    units_seen = {unit for unit, *_ in groups}
    for unit in sorted({*passed, *units_seen}):
        languages = {*passed.get(unit, {}), *(lang for u, lang in removed_per_language if u == unit)}
        inputs[unit] = {lang: passed.get(unit, {}).get(lang, 0) + removed_per_language.get((unit, lang), 0) for lang in sorted(languages)}
    return inputs


def unit_totals(groups: list[Group], inputs: dict[str, dict[str, int]]) -> dict[str, dict]:
    """Input, passed and removed rows of each unit (pairs, instructions) over every language."""
    units = {}
    for unit in sorted({*inputs, *(unit for unit, *_ in groups)}):
        total_removed = sum(n for u, *_, n in groups if u == unit)
        total_input = sum(inputs[unit].values()) if unit in inputs else None
        units[unit] = {"input": total_input, "passed": None if total_input is None else total_input - total_removed, "removed": total_removed,
                       "share": share(total_removed, total_input)}  # fmt: skip
    return units


def tally_sides(rows: list[tuple]) -> dict[str, int]:
    """rows per side, of (..., side, rows) tuples"""
    counted = {side: 0 for side in SIDES}
    for *_, side, n in rows:
        counted[side] += n
    return counted


def reason_entries(groups: list[Group], units: dict[str, dict],
                   examples: dict[tuple[str, str], list[dict]]) -> list[dict]:
    """One entry per (unit, step, reason), the most rows first."""
    by_reason: dict[tuple[str, str, str], list[Group]] = {}
    for row in groups:
        unit, step, reason = row[:3]
        by_reason.setdefault((unit, step, reason), []).append(row)
    reasons = []
    for (unit, step, reason), rows in by_reason.items():
        n = sum(row[-1] for row in rows)
        reasons.append({"step": step, "reason": reason, "unit": unit, "rows": n, "share": share(n, units[unit]["input"]),
                        "languages": len({row[3] for row in rows}), "sides": tally_sides(rows), "examples": examples.get((step, reason), [])})  # fmt: skip
    reasons.sort(key=lambda r: (-r["rows"], r["unit"], r["step"], r["reason"]))
    return reasons


def language_entries(groups: list[Group], inputs: dict[str, dict[str, int]],
                     removed_per_language: dict[tuple[str, str], int]) -> list[dict]:
    """One entry per (unit, language) with input or removals, its reasons the most rows first."""
    by_language: dict[tuple[str, str], dict[tuple[str, str], list[Group]]] = {}
    for row in groups:
        unit, step, reason, lang = row[:4]
        by_language.setdefault((unit, lang), {}).setdefault((step, reason), []).append(row)
    languages = []
    for unit, lang in sorted({*((u, lang) for u, counts in inputs.items() for lang in counts), *removed_per_language}):
        total = inputs.get(unit, {}).get(lang)
        mine = by_language.get((unit, lang), {})
        per_reason = [{"step": step, "reason": reason, "rows": sum(r[-1] for r in rows), "share": share(sum(r[-1] for r in rows), total),
                       "sides": tally_sides(rows)} for (step, reason), rows in mine.items()]  # fmt: skip
        per_reason.sort(key=lambda r: (-r["rows"], r["step"], r["reason"]))
        n = removed_per_language.get((unit, lang), 0)
        languages.append({"language": lang, "unit": unit, "input": total, "passed": None if total is None else total - n, "removed": n,
                          "share": share(n, total), "sides": tally_sides([row for rows in mine.values() for row in rows]), "reasons": per_reason})  # fmt: skip
    return languages


def worst_languages(report: dict, count: int | None = None) -> list[dict]:
    """Languages with removals, the largest removed share first (then the most rows removed, then the code)."""
    removed = [entry for entry in report["languages"] if entry["removed"]]
    removed.sort(key=lambda e: (-(e["share"] or 0), -e["removed"], e["unit"], e["language"]))
    return removed if count is None else removed[:count]


def label(entry: dict) -> str:
    return entry["language"] if entry["unit"] == "pairs" else f"{entry['language']} instructions"


def name_of(code: str) -> str:
    try:
        return language_name(code)
    except (ValueError, LookupError):
        return code  # not a FLORES-style code (a source's own label)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def escape(text: str) -> str:
    """Removed texts inside a Markdown table: no markup, no table breaks."""
    return re.sub(r"([\\`*_\[\]|<>#~])", r"\\\1", " ".join(text.split()))


def reason_key(entry: dict) -> str:
    return f"{entry['step']}/{entry['reason']}"


def reasons_table(report: dict) -> str:
    rows = [[f"`{r['step']}`", f"`{r['reason']}`", r["unit"], r["rows"], percent(r["share"]), r["languages"], *[r["sides"][s] for s in SIDES]]
            for r in report["reasons"]]  # fmt: skip
    return table(["step", "reason", "of", "rows", "share of input", "languages", "src side", "tgt side", "whole"], rows)


def languages_table(entries: list[dict]) -> str:
    rows = [[f"`{e['language']}`", name_of(e["language"]) if e["unit"] == "pairs" else "(instructions)", "-" if e["input"] is None else e["input"],
             e["removed"], percent(e["share"]), e["sides"]["src"], e["sides"]["tgt"],
             ", ".join(f"{reason_key(r)} {r['rows']}" for r in e["reasons"]) or "-"] for e in entries]  # fmt: skip
    return table(["language", "name", "input", "removed", "share", "src side", "tgt side", "reasons"], rows)


def examples_table(report: dict, chars: int) -> str:
    rows = [[f"`{reason_key(r)}`", f"`{e['id'][:12]}`", e["direction"], escape(shorten(e["texts"][0], chars)), escape(shorten(e["texts"][1], chars)),
             escape(e["detail"])] for r in report["reasons"] for e in r["examples"]]  # fmt: skip
    return table(["reason", "id", "direction", "text", "other text", "detail"], rows)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def totals_sentence(report: dict) -> str:
    parts = []
    for unit, t in report["units"].items():
        of = f" of {t['input']} {unit} ({percent(t['share'])})" if t["input"] is not None else f" {unit}"
        parts.append(f"{t['removed']}{of}")
    return "The quality gate removed " + (" and ".join(parts) if parts else "nothing") + "."


def input_sentence(report: dict) -> str:
    if all(t["input"] is not None for t in report["units"].values()):
        return ("A language's input is every pair (or zh/en instruction) that entered the steps for it: those that passed "
                "every step plus those a step removed; for pairs, those read and those the pivot join made.")  # fmt: skip
    return f"Inputs are {report['input']}."


def card_section(report: dict) -> str:
    """The card's "Data quality" section: the reasons, the worst languages, examples and the chart; the rest is
    in quality.md and quality.json."""
    worst = worst_languages(report)
    if not report["reasons"]:
        body = "Nothing was removed."
    else:
        body = f"""{totals_sentence(report)}

{input_sentence(report)} Sides, from the detail of each removal (language ID, decontamination, the
per-sentence cap): "src" is the language's own text, "tgt" its English or Chinese pivot text (for `zho_Hans`, the
Chinese and the English of the pivot pairs); "whole" is a verdict on the pair or instruction as a whole (length
ratio, duplicates).

{reasons_table(report)}

![removed share per language and reason]({QUALITY_CHART})

The {min(CARD_LANGUAGES, len(worst))} of {len(worst)} languages with removals with the largest removed share:

{languages_table(worst[:CARD_LANGUAGES])}

<details><summary>Examples: up to {EXAMPLES} removed rows per reason (the smallest ids)</summary>

{examples_table(report, CARD_TEXT_CHARS)}

</details>"""
    return f"""## Data quality

{body}

Every language: [`{QUALITY_MD}`]({QUALITY_MD}); machine-readable: [`{QUALITY_JSON}`]({QUALITY_JSON}); in a terminal:
`python -m pipelines.quality_report <version folder>`.
"""


def markdown(report: dict) -> str:
    return f"""# Data quality of {report["version"] or "this version"}

{totals_sentence(report)} {input_sentence(report)} Content hash `{report["content_hash"]}`.

## Reasons

{reasons_table(report)}

![removed share per language and reason]({QUALITY_CHART})

## Every language

{languages_table(report["languages"])}

## Examples

Up to {EXAMPLES} removed rows per reason, the smallest ids; `removed/<step>.parquet` has them in full.

{examples_table(report, TEXT_CHARS)}
"""


def write_quality_chart(path: Path, report: dict) -> Path:
    """A stacked horizontal bar per language (the CHART_LANGUAGES largest removed shares): the share of its input
    each reason removed. Without inputs, the rows removed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worst = worst_languages(report)
    shown = worst[:CHART_LANGUAGES]
    with_shares = all(e["input"] for e in shown)
    order = [reason_key(r) for r in report["reasons"]]  # most rows first: the same colour for a reason in every bar
    colours = plt.get_cmap("tab20").colors
    fig, ax = plt.subplots(figsize=(11, 1.6 + 0.3 * max(1, len(shown))))
    left = [0.0] * len(shown)
    for index, key in enumerate(order):
        widths = []
        for entry in shown:
            rows = sum(r["rows"] for r in entry["reasons"] if reason_key(r) == key)
            widths.append(100 * rows / entry["input"] if with_shares else rows)
        if any(widths):
            ax.barh(range(len(shown)), widths, left=left, color=colours[index % len(colours)], label=key)
            left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(range(len(shown)), [f"{label(e)}  {e['removed']}/{e['input'] if e['input'] is not None else '?'}" for e in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("% of the language's input removed" if with_shares else "rows removed")
    ax.set_title(f"Removals per language and reason ({len(shown)} of {len(worst)} languages with removals, largest share first)", fontsize=10)
    if shown:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: it never hides a bar
    else:
        ax.text(0.5, 0.5, "nothing was removed", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return save_chart(fig, path)


def write_quality(folder: Path, report: dict) -> list[Path]:
    """quality.json, quality.md and quality.png in the version folder."""
    folder = Path(folder)
    return [
        save_text(folder / QUALITY_JSON, json.dumps(report, indent=1, ensure_ascii=False) + "\n"),
        save_text(folder / QUALITY_MD, markdown(report)),
        write_quality_chart(folder / QUALITY_CHART, report),
    ]


def read_report(folder: Path) -> dict:
    path = Path(folder) / QUALITY_JSON
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
    for key in ("units", "reasons", "languages"):
        if key not in report:
            raise ValueError(f"{path}: missing key {key!r}")
    return report


def summary(report: dict, languages: int, examples: bool) -> str:
    lines = [totals_sentence(report), f"input: {report['input']}", ""]
    lines.append(f"{'step':<16}{'reason':<26}{'of':<14}{'rows':>9}{'share':>9}{'langs':>7}{'src':>8}{'tgt':>8}{'whole':>8}")
    for r in report["reasons"]:
        lines.append(f"{r['step']:<16}{r['reason']:<26}{r['unit']:<14}{r['rows']:>9}{percent(r['share']):>9}{r['languages']:>7}"
                     + "".join(f"{r['sides'][s]:>8}" for s in SIDES))  # fmt: skip
    worst = worst_languages(report)
    lines += ["", f"the {min(languages, len(worst))} of {len(worst)} languages with removals with the largest removed share:"]
    lines.append(f"{'language':<26}{'input':>9}{'removed':>9}{'share':>9}{'src':>7}{'tgt':>7}  reasons")
    for e in worst[:languages]:
        reasons = ", ".join(f"{reason_key(r)} {r['rows']}" for r in e["reasons"])
        lines.append(f"{label(e):<26}{e['input'] if e['input'] is not None else '-':>9}{e['removed']:>9}{percent(e['share']):>9}"
                     f"{e['sides']['src']:>7}{e['sides']['tgt']:>7}  {reasons}")  # fmt: skip
    if examples:
        for r in report["reasons"]:
            lines += ["", f"{reason_key(r)}:"]
            for e in r["examples"]:
                lines += [f"  {e['id']}  {e['direction']}  ({e['side']})  {e['detail']}", *(f"    | {shorten(t, 100)}" for t in e["texts"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the quality report of a version (its quality.json).")
    parser.add_argument("folder", type=Path, help="a version folder (with manifest.json and removed/)")
    parser.add_argument("--languages", type=int, default=15, help="how many of the worst languages to list (default 15)")
    parser.add_argument("--examples", action="store_true", help="print the examples of each reason")
    parser.add_argument("--recompute", action="store_true", help="count removed/ again instead of reading quality.json (no shares: the inputs are not kept)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        if not (args.folder / "removed").is_dir():
            raise ValueError(f"{args.folder}: not a version folder (no removed/)")
        if args.recompute or not (args.folder / QUALITY_JSON).is_file():
            manifest = json.loads((args.folder / "manifest.json").read_text(encoding="utf-8")) if (args.folder / "manifest.json").is_file() else {}
            if not args.recompute:
                print(f"{args.folder / QUALITY_JSON} not found (a version built before quality reports): counted from removed/, without shares", file=sys.stderr)
            report = build_report(args.folder, None, manifest.get("version", ""), manifest.get("content_hash", ""))
        else:
            report = read_report(args.folder)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1, ensure_ascii=False) if args.json else summary(report, args.languages, args.examples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
