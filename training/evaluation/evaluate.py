"""Evaluate a model the way BayLing 2 reports it: translation, multilingual knowledge, English.

    python -m training.evaluation --model out/model --suite all --langs deu_Latn,swh_Latn,yor_Latn --output eval/tuned
    python -m training.evaluation --model out/model --suite translation --langs all --baseline eval/base/results.json \\
        --train-data out/udhr-cross-lingual --output eval/tuned

Writes `results.json`, `report.md` (one table per suite) and `scores.png` (per-language scores) to --output.
With --baseline, each score gets its difference to the same score in that earlier results.json. With
--train-data, every score is reported next to the number of its evaluation items found in that training data
(training/evaluation/contamination.py), counted before scoring.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

SUITES = ("translation", "knowledge", "english")
log = logging.getLogger("training.evaluation")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.evaluation", description=__doc__.split("\n\n")[0])
    add_general_arguments(parser)
    add_translation_arguments(parser)
    add_harness_arguments(parser)
    return parser.parse_args(argv)


def add_general_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, the suites and languages, the output and what to compare with."""
    parser.add_argument(
        "--model", required=True, help="a Hugging Face model folder (as training/ exports) or a cached Hub id"
    )
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or id (default: the model's)")
    parser.add_argument("--suite", default="all", choices=(*SUITES, "all"))
    parser.add_argument(
        "--langs", default="deu_Latn,fra_Latn,swh_Latn,yor_Latn", help="'all' or FLORES-200 codes, comma-separated"
    )
    parser.add_argument("--output", required=True, help="folder for results.json, report.md and scores.png")
    parser.add_argument(
        "--baseline", default=None, help="results.json of an earlier run (the base model) to compare with"
    )
    parser.add_argument(
        "--train-data",
        default=None,
        help="training dataset version to count leaked items in: a local build folder or hf://datasets/org/name@rev",
    )
    parser.add_argument("--ngram", type=int, default=13, help="contamination: shared word run that counts as overlap")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (on a machine shared with other jobs, 1 can be far faster than 2: idle threads spin)",
    )


def add_translation_arguments(parser: argparse.ArgumentParser) -> None:
    translation = parser.add_argument_group("translation")
    translation.add_argument(
        "--data",
        default=None,
        help="udhr (default: held-out articles of the embedded corpus), a FLORES-200-layout folder, or hf://datasets/org/name@rev",
    )
    translation.add_argument(
        "--split", default=None, help="udhr: test|validation; FLORES: dev|devtest (default test / devtest)"
    )
    translation.add_argument("--pivots", default="eng_Latn,zho_Hans", help="X<->pivot directions for these pivots")
    translation.add_argument("--max-segments", type=int, default=None, help="at most this many segments per direction")
    translation.add_argument(
        "--prompt-format", default="auto", help="auto (the tokenizer's chat template), bayling-llama2, bayling-llama3"
    )
    translation.add_argument(
        "--phrasing", type=int, default=0, help="which instruction phrasing of schemas/text/templates.py"
    )
    translation.add_argument("--max-new-tokens", type=int, default=256)
    translation.add_argument("--num-beams", type=int, default=1, help="1: greedy")
    translation.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "transformers", "vllm"),
        help="auto: vLLM when installed and greedy",
    )
    translation.add_argument(
        "--comet-model", default=None, help="local COMET checkpoint (model.ckpt); needs unbabel-comet"
    )


def add_harness_arguments(parser: argparse.ArgumentParser) -> None:
    harness = parser.add_argument_group("knowledge / english (lm-evaluation-harness)")
    harness.add_argument(
        "--lm-eval-tasks",
        default=None,
        help="instead of the table: <code>:<task>,... e.g. deu_Latn:xnli_de (eng_Latn tasks form the english suite)",
    )
    harness.add_argument("--lm-eval-include", default=None, help="folder of extra task YAML files")
    harness.add_argument(
        "--lm-eval-no-defaults",
        action="store_true",
        help="index only --lm-eval-include's tasks (starts in seconds, not tens of seconds)",
    )
    harness.add_argument("--limit", type=int, default=None, help="at most this many documents per task")
    harness.add_argument("--num-fewshot", type=int, default=None)


def resolve_langs(spec: str, suite: str, data: str | None = None) -> list[str] | None:
    """Translation languages: checked against the embedded corpus when it is the data (the pivots are added);
    knowledge languages: any FLORES-200 code, None for every language of the task table."""
    from schemas.language_codes import PIVOTS, resolve_languages, to_flores

    if suite == "translation" and data in (None, "udhr"):
        from schemas.text.udhr import udhr_languages

        try:
            return resolve_languages(spec, udhr_languages())
        except ValueError as error:
            raise ValueError(f"--langs: {error}".replace("the recipe's sources", "the embedded corpus")) from None
    if spec.strip().lower() == "all":
        if suite == "translation":
            raise ValueError("--langs all: only with the embedded corpus; list the codes of your --data")
        return None
    codes = sorted({to_flores(code) for code in spec.replace(",", " ").split()})
    return sorted(set(codes) | set(PIVOTS)) if suite == "translation" else codes


def load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).to(args.device).eval()
    return model, tokenizer


# ---- suites --------------------------------------------------------------------------------------------------


def run_translation(args, model, tokenizer) -> dict:
    from schemas.language_codes import PIVOTS
    from training.evaluation.translation import evaluate_translation, load_segments

    langs = resolve_langs(args.langs, "translation", args.data)
    pivots = [p for p in args.pivots.replace(" ", "").split(",") if p]
    langs = [lang for lang in langs if lang not in PIVOTS or lang in pivots]
    segments = load_segments(langs, args.data, args.split, args.max_segments, pivots)
    leaks = _count(
        args, {d: [[s.source, s.reference] for s in segments if s.direction == d] for d in _groups(segments)}
    )
    engine = args.engine
    use_path = engine == "vllm" or (engine == "auto" and args.num_beams == 1 and _vllm_installed())
    scores = evaluate_translation(
        args.model if use_path else model,
        tokenizer,
        segments,
        prompt_format=args.prompt_format,
        phrasing=args.phrasing,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
        engine="vllm" if use_path else "transformers",
        comet_model=args.comet_model,
        keep_outputs=True,
    )
    rows = {}
    for direction, score in scores["directions"].items():
        rows[direction] = {**score, "lang": _x_lang(direction), **_leak_fields(leaks, direction)}
    return {
        "metric": "chrf++",
        "rows": rows,
        "by_language": _by_language(rows, "chrf++"),
        "settings": scores["settings"],
        "outputs": scores["outputs"],
    }


def run_harness(args, model, tokenizer, suite: str) -> dict:
    from training.evaluation.knowledge import make_task_manager, parse_task_list, run_tasks, select_tasks, task_documents

    if args.lm_eval_tasks:
        tasks = parse_task_list(args.lm_eval_tasks)
        tasks = {lang: t for lang, t in tasks.items() if (lang == "eng_Latn") == (suite == "english")}
    else:
        tasks = select_tasks(suite, resolve_langs(args.langs, suite))
    if not tasks:
        return {"metric": "score", "rows": {}, "by_language": {}, "note": "no task for the selected languages"}
    manager = make_task_manager(args.lm_eval_include, include_defaults=not args.lm_eval_no_defaults)
    leaks = None
    if args.train_data:
        documents = {}
        known = set(manager.all_tasks)
        for task in (t for ts in tasks.values() for t in ts if t in known):
            try:
                documents[task] = task_documents(manager, task, args.limit)
            except Exception as error:  # noqa: BLE001 - its data may not be reachable; run_tasks reports that
                log.warning("contamination: cannot read the documents of %s: %s", task, error)
        leaks = _count(args, documents)
    results = run_tasks(
        model,
        tokenizer,
        tasks,
        manager,
        batch_size=args.batch_size,
        limit=args.limit,
        num_fewshot=args.num_fewshot,
        device=args.device,
    )
    rows = {task: {**entry, **_leak_fields(leaks, task)} for task, entry in results.items()}
    return {"metric": "score", "rows": rows, "by_language": _by_language(rows, "score")}


def _count(args, items: dict[str, list[list[str]]]) -> dict | None:
    if not args.train_data:
        return None
    from training.evaluation.contamination import count_leaked

    started = time.perf_counter()
    leaks = count_leaked(items, args.train_data, args.ngram)
    total = sum(v["leaked"] for v in leaks.values())
    print(
        f"contamination: {total} of {sum(v['items'] for v in leaks.values())} evaluation items occur in {args.train_data} "
        f"({time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    return leaks


def _leak_fields(leaks: dict | None, group: str) -> dict:
    found = (leaks or {}).get(group)
    if found is None:  # not counted: no --train-data, or the items could not be read
        return {"leaked": None}
    return {"leaked": found["leaked"], "leak_examples": found.get("examples", [])}


def _groups(segments) -> list[str]:
    return sorted({s.direction for s in segments})


def _x_lang(direction: str) -> str:
    """The non-pivot side of a direction (eng_Latn for eng<->zho)."""
    from schemas.language_codes import PIVOTS

    src, tgt = direction.split("->")
    return src if src not in PIVOTS else tgt if tgt not in PIVOTS else "eng_Latn"


def _by_language(rows: dict[str, dict], key: str) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for row in rows.values():
        if row.get(key) is not None:
            values.setdefault(row["lang"], []).append(row[key])
    return {lang: round(sum(v) / len(v), 4) for lang, v in sorted(values.items())}


def _vllm_installed() -> bool:
    from training.evaluation.translation import vllm_available

    return vllm_available()


# ---- baseline and report -------------------------------------------------------------------------------------


def add_baseline(results: dict, baseline: dict) -> None:
    """Each row and language score gets `delta` (this minus the baseline) where the baseline has the same one."""
    for suite, found in results["suites"].items():
        base = baseline.get("suites", {}).get(suite)
        if not base:
            continue
        key = "chrf++" if suite == "translation" else "score"
        for name, row in found["rows"].items():
            before = base.get("rows", {}).get(name, {}).get(key)
            row["baseline"] = before
            row["delta"] = round(row[key] - before, 4) if before is not None and row.get(key) is not None else None
        found["by_language_baseline"] = {lang: base.get("by_language", {}).get(lang) for lang in found["by_language"]}
        found["by_language_delta"] = {
            lang: round(score - before, 4) if (before := found["by_language_baseline"][lang]) is not None else None
            for lang, score in found["by_language"].items()
        }


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _delta(value) -> str:
    return "–" if value is None else f"{value:+.2f}"


def markdown_report(results: dict) -> str:
    has_base = results.get("baseline") is not None
    lines = _report_heading(results, has_base)
    for suite, found in results["suites"].items():
        lines += ["", f"## {suite.capitalize()}", ""]
        if not found["rows"]:
            lines.append(found.get("note", "nothing was evaluated"))
            continue
        if suite == "translation":
            lines += _translation_table(found, has_base)
        else:
            lines += _task_table(found, has_base)
        if found["by_language"]:
            lines += _language_table(suite, found, has_base)
    lines += ["", "![per-language scores](scores.png)", ""]
    return "\n".join(lines)


def _report_heading(results: dict, has_base: bool) -> list[str]:
    """The title and what the report compares with: the baseline, the training data searched for leaks."""
    lines = [
        f"# Evaluation of `{results['model']}`",
        "",
        f"{results['created']}; suites: {', '.join(results['suites'])}.",
    ]
    if has_base:
        lines.append(f"Δ: difference to the baseline `{results['baseline']}`.")
    if results.get("train_data"):
        lines.append(
            f"Leaked: evaluation items that occur in the training data `{results['train_data']}` (counted before scoring)."
        )
    return lines


def _table_head(header: list[str]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]


def _table_row(cells: list) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def _translation_table(found: dict, has_base: bool) -> list[str]:
    """How the translations were made and scored, then a row per direction."""
    settings = found["settings"]
    lines = [
        f"chrF++ and BLEU (sacreBLEU), {settings['engine']} generation, prompt format {settings['prompt_format']}, "
        f"beams {settings['num_beams']}, data {settings['data']}; COMET: {settings['comet']}.",
        "",
    ]
    header = ["direction", "segments", "chrF++", "BLEU", "BLEU tokenizer", "COMET", "leaked"] + (
        ["Δ chrF++"] if has_base else []
    )
    lines += _table_head(header)
    for direction, row in found["rows"].items():
        cells = [
            direction,
            row["segments"],
            _cell(row["chrf++"]),
            _cell(row["bleu"]),
            row["bleu_tokenizer"],
            _cell(row["comet"]),
            _cell(row["leaked"]),
        ] + ([_delta(row.get("delta"))] if has_base else [])
        lines.append(_table_row(cells))
    return lines


def _task_table(found: dict, has_base: bool) -> list[str]:
    """A row per lm-evaluation-harness task; a task that did not run says why."""
    header = ["task", "language", "metric", "score", "documents", "leaked"] + (["Δ"] if has_base else [])
    lines = _table_head(header)
    for task, row in found["rows"].items():
        score = _cell(row["score"]) if row["error"] is None else f"not run: {row['error'][:80]}"
        cells = [task, row["lang"], row["metric"] or "–", score, _cell(row["n"]), _cell(row["leaked"])] + (
            [_delta(row.get("delta"))] if has_base else []
        )
        lines.append(_table_row(cells))
    return lines


def _language_table(suite: str, found: dict, has_base: bool) -> list[str]:
    what = "mean chrF++ over its directions" if suite == "translation" else "mean score over its tasks"
    lines = ["", f"Per language ({what}):", ""]
    header = ["language", "score"] + (["baseline", "Δ"] if has_base else [])
    lines += _table_head(header)
    for lang, score in found["by_language"].items():
        extra = (
            [
                _cell(found.get("by_language_baseline", {}).get(lang)),
                _delta(found.get("by_language_delta", {}).get(lang)),
            ]
            if has_base
            else []
        )
        lines.append(_table_row([lang, _cell(score)] + extra))
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = [(name, found) for name, found in results["suites"].items() if found["by_language"]]
    figure, axes = plt.subplots(
        len(suites) or 1,
        1,
        figsize=(
            max(6, 0.5 * max((len(f["by_language"]) for _, f in suites), default=4) + 2),
            3.2 * max(len(suites), 1),
        ),
        squeeze=False,
    )
    for axis, (name, found) in zip(axes[:, 0], suites):
        langs = list(found["by_language"])
        positions = range(len(langs))
        base = found.get("by_language_baseline")
        width = 0.4 if base else 0.8
        if base:
            axis.bar(
                [p - width / 2 for p in positions],
                [base.get(lang) or 0 for lang in langs],
                width,
                label="baseline",
                color="#bbbbbb",
            )
        axis.bar(
            [p + (width / 2 if base else 0) for p in positions],
            [found["by_language"][lang] for lang in langs],
            width,
            label="model",
            color="#3b6ea5",
        )
        axis.set_xticks(list(positions), langs, rotation=60, ha="right", fontsize=8)
        axis.set_xlim(-0.75, max(len(langs), 4) - 0.25)  # a bar or two stay bar-wide
        axis.set_ylabel("chrF++" if name == "translation" else "score (%)")
        axis.set_title(name)
        if base:
            axis.legend(fontsize=8)
    if not suites:
        axes[0, 0].text(0.5, 0.5, "no scores", ha="center")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def evaluate(args: argparse.Namespace) -> dict:
    output = Path(args.output)
    baseline = None
    if args.baseline:
        try:
            baseline = json.loads(Path(args.baseline).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise SystemExit(f"error: --baseline {args.baseline}: {error}") from None
        if "suites" not in baseline:
            raise SystemExit(
                f"error: --baseline {args.baseline}: not a results.json of training.evaluation (no 'suites' key)"
            )
    suites = SUITES if args.suite == "all" else (args.suite,)
    for suite in suites:  # a bad language code stops the run before the model is loaded
        resolve_langs(args.langs, suite, args.data)
    try:
        model, tokenizer = load_model(args)
    except OSError as error:
        raise ValueError(f"--model {args.model}: cannot load it ({error})") from None
    results: dict[str, Any] = {
        "model": args.model,
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "arguments": {k: v for k, v in vars(args).items()},
        "baseline": args.baseline,
        "train_data": args.train_data,
        "suites": {},
    }
    for suite in suites:
        started = time.perf_counter()
        results["suites"][suite] = (
            run_translation(args, model, tokenizer)
            if suite == "translation"
            else run_harness(args, model, tokenizer, suite)
        )
        results["suites"][suite]["seconds"] = round(time.perf_counter() - started, 1)
        print(
            f"{suite}: {results['suites'][suite]['by_language']} ({results['suites'][suite]['seconds']} s)",
            file=sys.stderr,
        )
    if baseline:
        add_baseline(results, baseline)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (output / "report.md").write_text(markdown_report(results), encoding="utf-8")
    plot(results, output / "scores.png")
    print(f"wrote {output}/results.json, report.md, scores.png", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        evaluate(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
