"""Knowledge and understanding benchmarks through lm-evaluation-harness (the `lm-eval` package, extra `eval`).

The harness scores; this module chooses the tasks for the selected languages from the tables below (FLORES-200
code -> the harness's task name), runs them one by one on one loaded model (so a task whose data cannot be had
offline is reported as such and the others still run), and keeps one score per task: accuracy, normalized
accuracy where the harness gives it. Tasks of your own (YAML in the harness's task format) come in with
`include_path`, and `tasks` names them per language.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

# Belebele covers these FLORES-200 codes under its own task names (belebele_<code>).
BELEBELE = """
acm_Arab afr_Latn als_Latn amh_Ethi apc_Arab arb_Arab arb_Latn ars_Arab ary_Arab arz_Arab asm_Beng azj_Latn bam_Latn
ben_Beng ben_Latn bod_Tibt bul_Cyrl cat_Latn ceb_Latn ces_Latn ckb_Arab dan_Latn deu_Latn ell_Grek eng_Latn est_Latn
eus_Latn fin_Latn fra_Latn fuv_Latn gaz_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hin_Latn hrv_Latn
hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kac_Latn kan_Knda kat_Geor kaz_Cyrl
kea_Latn khk_Cyrl khm_Khmr kin_Latn kir_Cyrl kor_Hang lao_Laoo lin_Latn lit_Latn lug_Latn luo_Latn lvs_Latn mal_Mlym
mar_Deva mkd_Cyrl mlt_Latn mri_Latn mya_Mymr nld_Latn nob_Latn npi_Deva npi_Latn nso_Latn nya_Latn ory_Orya pan_Guru
pbt_Arab pes_Arab plt_Latn pol_Latn por_Latn ron_Latn rus_Cyrl shn_Mymr sin_Latn sin_Sinh slk_Latn slv_Latn sna_Latn
snd_Arab som_Latn sot_Latn spa_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn tam_Taml tel_Telu tgk_Cyrl tgl_Latn
tha_Thai tir_Ethi tsn_Latn tso_Latn tur_Latn ukr_Cyrl urd_Arab urd_Latn uzn_Latn vie_Latn war_Latn wol_Latn xho_Latn
yor_Latn zho_Hans zho_Hant zsm_Latn zul_Latn
""".split()  # noqa: SIM905 - a table is easier to read as words

# The other families name languages by ISO 639-1 (or their own) codes.
_ISO = {
    "arb_Arab": "ar",
    "ben_Beng": "bn",
    "bul_Cyrl": "bg",
    "cat_Latn": "ca",
    "dan_Latn": "da",
    "deu_Latn": "de",
    "ell_Grek": "el",
    "eng_Latn": "en",
    "est_Latn": "et",
    "eus_Latn": "eu",
    "fra_Latn": "fr",
    "guj_Gujr": "gu",
    "hat_Latn": "ht",
    "hin_Deva": "hi",
    "hrv_Latn": "hr",
    "hun_Latn": "hu",
    "hye_Armn": "hy",
    "ind_Latn": "id",
    "isl_Latn": "is",
    "ita_Latn": "it",
    "jpn_Jpan": "jp",
    "kan_Knda": "kn",
    "mal_Mlym": "ml",
    "mar_Deva": "mr",
    "mya_Mymr": "my",
    "nld_Latn": "nl",
    "nob_Latn": "nb",
    "npi_Deva": "ne",
    "por_Latn": "pt",
    "quy_Latn": "qu",
    "ron_Latn": "ro",
    "rus_Cyrl": "ru",
    "slk_Latn": "sk",
    "spa_Latn": "es",
    "srp_Cyrl": "sr",
    "swe_Latn": "sv",
    "swh_Latn": "sw",
    "tam_Taml": "ta",
    "tel_Telu": "te",
    "tha_Thai": "th",
    "tur_Latn": "tr",
    "ukr_Cyrl": "uk",
    "urd_Arab": "ur",
    "vie_Latn": "vi",
    "zho_Hans": "zh",
}
_FAMILIES = {  # task name template -> the ISO codes the harness has it for
    "xcopa_{}": "et ht id it qu sw ta th tr vi zh",
    "xstorycloze_{}": "ar es eu hi id my ru sw te zh",
    "xnli_{}": "ar bg de el es fr hi ru sw th tr ur vi zh",
    "xwinograd_{}": "fr jp pt ru zh",
    "m_mmlu_{}": "ar bn ca da de es eu fr gu hi hr hu hy id is it kn ml mr nb ne nl pt ro ru sk sr sv ta te uk vi zh",
    "hellaswag_{}": "ar bn ca da de es eu fr gu hi hr hu hy id it kn ml mr ne nl pt ro ru sk sr sv ta te uk vi",
    "arc_{}": "ar bn ca da de es eu fr gu hi hr hu hy id it kn ml mr ne nl pt ro ru sk sr sv ta te uk vi zh",
}
ENGLISH_TASKS = ("mmlu", "hellaswag", "arc_easy", "arc_challenge", "winogrande", "piqa", "belebele_eng_Latn")


def _knowledge_table() -> dict[str, list[str]]:
    table: dict[str, list[str]] = {code: [f"belebele_{code}"] for code in BELEBELE if code != "eng_Latn"}
    by_iso = {iso: code for code, iso in _ISO.items()}
    for template, isos in _FAMILIES.items():
        for iso in isos.split():
            table.setdefault(by_iso[iso], []).append(template.format(iso))
    return table


KNOWLEDGE_TASKS: dict[str, list[str]] = _knowledge_table()  # FLORES-200 code -> the harness's task names


def select_tasks(suite: str, langs: Iterable[str] | None) -> dict[str, list[str]]:
    """Language -> tasks: the knowledge table for the selected languages (every language in it for None), or
    the English tasks."""
    if suite == "english":
        return {"eng_Latn": list(ENGLISH_TASKS)}
    if suite != "knowledge":
        raise ValueError(f"suite {suite!r}: knowledge or english")
    chosen = (
        KNOWLEDGE_TASKS if langs is None else {lang: KNOWLEDGE_TASKS[lang] for lang in langs if lang in KNOWLEDGE_TASKS}
    )
    return {lang: list(tasks) for lang, tasks in sorted(chosen.items())}


def parse_task_list(spec: str) -> dict[str, list[str]]:
    """`deu_Latn:belebele_deu_Latn,deu_Latn:xnli_de,eng_Latn:my_task` -> {language: [tasks]}."""
    chosen: dict[str, list[str]] = {}
    for item in spec.replace(" ", "").split(","):
        if not item:
            continue
        lang, sep, task = item.partition(":")
        if not sep or not lang or not task:
            raise ValueError(f"--lm-eval-tasks item {item!r}: expected <FLORES code>:<task name>")
        chosen.setdefault(lang, []).append(task)
    return chosen


def preferred_metric(metrics: dict[str, Any]) -> tuple[str, float] | None:
    for name in ("acc_norm,none", "acc,none", "exact_match,none", "f1,none"):
        if isinstance(metrics.get(name), (int, float)):
            return name.split(",")[0], float(metrics[name])
    numeric = [
        (k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and "stderr" not in k and k != "samples"
    ]
    return (numeric[0][0].split(",")[0], float(numeric[0][1])) if numeric else None


def task_documents(task_manager: Any, task: str, limit: int | None = None) -> list[list[str]]:
    """The texts of each evaluation document of a task, for the contamination count: the task's own
    decontamination query where it defines one (Belebele: the question), else its prompt; and the answer."""
    found = []
    for task_object in task_manager.load([task])["tasks"].values():
        documents = list(task_object.eval_docs)
        for document in documents[:limit] if limit else documents:
            if task_object.should_decontaminate():
                texts = [str(task_object.doc_to_decontamination_query(document))]
            else:
                texts = [str(task_object.doc_to_text(document))]
            target = task_object.doc_to_target(document)
            choices = task_object.doc_to_choice(document) if task_object.config.doc_to_choice is not None else None
            if isinstance(target, int) and choices and 0 <= target < len(choices):
                target = choices[target]
            texts.append(str(target))
            found.append([t for t in texts if t.strip()])
    return found


def make_task_manager(include_path: str | None = None, include_defaults: bool = True) -> Any:
    from lm_eval.tasks import TaskManager

    if not include_defaults and not include_path:
        raise ValueError("--lm-eval-no-defaults needs --lm-eval-include (there would be no task at all)")
    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def run_tasks(
    model: Any,
    tokenizer: Any,
    tasks_by_lang: dict[str, list[str]],
    task_manager: Any,
    *,
    batch_size: int = 8,
    limit: int | None = None,
    num_fewshot: int | None = None,
    device: str = "cpu",
) -> dict[str, dict]:
    """task -> {lang, metric, score, n, error}; a task that cannot be loaded or run gets its error instead."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
    known = set(task_manager.all_tasks)
    results: dict[str, dict] = {}
    for lang, tasks in tasks_by_lang.items():
        for task in tasks:
            entry: dict[str, Any] = {"lang": lang, "metric": None, "score": None, "n": None, "error": None}
            results[task] = entry
            if task not in known:
                entry["error"] = "not a task of the installed lm-eval (nor of --lm-eval-include)"
                continue
            try:
                output = simple_evaluate(
                    model=lm,
                    tasks=[task],
                    task_manager=task_manager,
                    limit=limit,
                    num_fewshot=num_fewshot,
                    log_samples=False,
                    bootstrap_iters=0,
                    verbosity="WARNING",
                )
            except Exception as error:  # noqa: BLE001 - the harness raises many kinds (data not reachable offline, ...)
                entry["error"] = f"{type(error).__name__}: {str(error)[:300]}"
                log.warning("lm-eval task %s failed: %s", task, entry["error"])
                continue
            metrics = output["results"].get(task) or next(iter(output["results"].values()))
            chosen = preferred_metric(metrics)
            if chosen is None:
                entry["error"] = f"no numeric metric in {sorted(metrics)}"
                continue
            entry["metric"], entry["score"] = chosen[0], round(100 * chosen[1], 4)
            samples = output.get("n-samples", {}).get(task, {})
            entry["n"] = samples.get("effective") or samples.get("original")
    return results
