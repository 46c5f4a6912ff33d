"""Translation quality: X->eng_Latn, eng_Latn->X, X->zho_Hans and zho_Hans->X for every selected X.

The model is asked in the words the trainer taught it (the first instruction phrasing of
schemas/text/templates.py, in English for an English pivot and in Chinese for a Chinese one, rendered by
training/chat_format.py in the trainer's chat format), answers by batched greedy or beam search, and is scored
per direction with sacreBLEU: BLEU and chrF++ (chrF with word bigrams). BLEU uses the FLORES-200 SentencePiece
tokenizer when sacreBLEU has it on disk (it downloads it once, which this module never does), else 13a, or
Chinese / character tokenization for targets written without spaces; the tokenizer used is in the results.
COMET is added when unbabel-comet is installed and a local checkpoint is given.

Data (`data=`): None or "udhr" for the held-out articles of the embedded corpus (the offline default; `split`
"test" = articles 28-30, "validation" = 25-27), a local folder in the FLORES-200 layout (`<split>/<code>.<split>`
one sentence a line, or `<split>/**/<code>.parquet` with a `text` column as in flores_plus; line i of every
language is the same sentence), or `hf://datasets/<org>/<name>[@revision]` for such a dataset on the Hub
(e.g. openlanguagedata/flores_plus), fetched into the Hub cache.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from schemas.language_codes import PIVOTS, language_name
from schemas.text.templates import PHRASINGS

log = logging.getLogger(__name__)

DEFAULT_LANGS = ("deu_Latn", "fra_Latn", "swh_Latn", "yor_Latn")
# BLEU's word tokenizers split on spaces; targets written without them are tokenized by character.
_NO_SPACE_SCRIPTS = {"Hans", "Hant", "Jpan", "Thai", "Khmr", "Laoo", "Mymr", "Tibt"}


@dataclass(frozen=True)
class Segment:
    src_lang: str
    tgt_lang: str
    source: str
    reference: str
    id: str

    @property
    def direction(self) -> str:
        return f"{self.src_lang}->{self.tgt_lang}"


def directions(langs: Iterable[str], pivots: Sequence[str] = PIVOTS) -> list[tuple[str, str]]:
    """(src, tgt) for X->pivot and pivot->X, every X and pivot (the two pivots are linked both ways when either
    is selected)."""
    found = set()
    for lang in langs:
        for pivot in pivots:
            if lang != pivot:
                found |= {(lang, pivot), (pivot, lang)}
    return sorted(found)


# ---- data ----------------------------------------------------------------------------------------------------


def load_segments(
    langs: Iterable[str],
    data: str | None = None,
    split: str | None = None,
    max_per_direction: int | None = None,
    pivots: Sequence[str] = PIVOTS,
) -> list[Segment]:
    """The segments of every direction of `langs` and `pivots` (see the module's docstring for `data`)."""
    unknown = set(pivots) - set(PIVOTS)
    if unknown:
        raise ValueError(f"pivots {sorted(unknown)}: the pivots are {', '.join(PIVOTS)}")
    pairs = directions(langs, pivots)
    if data in (None, "udhr"):
        segments = _udhr_segments(pairs, split or "test")
    else:
        folder = _hub_folder(data, pairs, split) if data.startswith("hf://") else Path(data)
        segments = _flores_segments(folder, pairs, split or "devtest")
    if max_per_direction is not None:
        taken: dict[str, int] = {}
        kept = []
        for segment in segments:
            taken[segment.direction] = taken.get(segment.direction, 0) + 1
            if taken[segment.direction] <= max_per_direction:
                kept.append(segment)
        segments = kept
    return segments


def _udhr_segments(pairs: list[tuple[str, str]], split: str) -> list[Segment]:
    from schemas.text.udhr import align, load_udhr

    if split not in ("test", "validation"):
        raise ValueError(
            f"split {split!r}: the embedded corpus holds out 'test' (articles 28-30) and 'validation' (25-27)"
        )
    corpus = load_udhr().sort("lang", "article", "paragraph")
    by_lang = {lang: group for (lang,), group in corpus.group_by("lang")}
    missing = sorted({lang for pair in pairs for lang in pair} - set(by_lang))
    if missing:
        raise ValueError(f"languages not in the embedded corpus: {', '.join(missing)}")
    segments = []
    for src, tgt in pairs:
        for source, reference, source_id, row_split in align(by_lang[src], by_lang[tgt]):
            if row_split == split:
                segments.append(Segment(src, tgt, source, reference, f"udhr:{source_id}"))
    return segments


def _flores_file(folder: Path, split: str, lang: str) -> Path:
    for pattern in (
        f"{split}/{lang}.{split}",
        f"{split}/{lang}.txt",
        f"{split}/{lang}.parquet",
        f"{split}/**/{lang}.parquet",
        f"{split}/**/{lang}.{split}",
        f"{split}/**/{lang}.txt",
    ):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise FileNotFoundError(
        f"{folder}: no {split} file for {lang} (looked for {split}/{lang}.{split}, .txt or .parquet)"
    )


def _flores_lines(file: Path) -> list[str]:
    if file.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(file)
        if "text" not in table.column_names:
            raise ValueError(f"{file}: a FLORES parquet file needs a text column; has {table.column_names}")
        return table.column("text").to_pylist()
    return file.read_text(encoding="utf-8").rstrip("\n").split("\n")


def _flores_segments(folder: Path, pairs: list[tuple[str, str]], split: str) -> list[Segment]:
    if not folder.is_dir():
        raise FileNotFoundError(f"translation data folder not found: {folder}")
    lines = {
        lang: _flores_lines(_flores_file(folder, split, lang))
        for lang in sorted({lang for pair in pairs for lang in pair})
    }
    counts = {lang: len(text) for lang, text in lines.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(
            f"{folder}/{split}: the languages have different line counts, so lines are not aligned: {counts}"
        )
    return [
        Segment(src, tgt, s, t, f"{folder.name}/{split}:{i}")
        for src, tgt in pairs
        for i, (s, t) in enumerate(zip(lines[src], lines[tgt]))
        if s.strip() and t.strip()
    ]


def _hub_folder(url: str, pairs: list[tuple[str, str]], split: str | None) -> Path:
    from huggingface_hub import snapshot_download

    repo, _, revision = url.removeprefix("hf://datasets/").partition("@")
    if not url.startswith("hf://datasets/") or repo.count("/") != 1:
        raise ValueError(f"translation data {url!r} should look like hf://datasets/<org>/<name>[@revision]")
    langs = sorted({lang for pair in pairs for lang in pair})
    patterns = [f"{split or '*'}/**{lang}*" for lang in langs] + [f"{split or '*'}/{lang}*" for lang in langs]
    return Path(snapshot_download(repo, repo_type="dataset", revision=revision or None, allow_patterns=patterns))


# ---- prompts -------------------------------------------------------------------------------------------------


def instruction_language(src_lang: str, tgt_lang: str) -> str:
    """The language the request is written in: English when English is on either side, as the trainer's data."""
    return "eng_Latn" if "eng_Latn" in (src_lang, tgt_lang) else "zho_Hans"


def prompt_messages(segment: Segment, phrasing: int = 0) -> list[dict]:
    pivot = instruction_language(segment.src_lang, segment.tgt_lang)
    name_language = "en" if pivot == "eng_Latn" else "zh"
    text = PHRASINGS[pivot][phrasing].format(
        src=language_name(segment.src_lang, name_language),
        tgt=language_name(segment.tgt_lang, name_language),
        text=segment.source,
    )
    return [{"role": "user", "content": text}]


def encode_prompts(
    segments: Sequence[Segment], tokenizer: Any, prompt_format: str = "auto", phrasing: int = 0
) -> list[list[int]]:
    from training.chat_format import encode_prompt  # the trainer's own formatting: the model sees what it learned

    return [encode_prompt(prompt_messages(segment, phrasing), tokenizer, prompt_format) for segment in segments]


# ---- generation ----------------------------------------------------------------------------------------------


def stop_token_ids(tokenizer: Any) -> list[int]:
    """EOS and the end-of-turn tokens of the chat formats (a chat model ends its answer with them)."""
    vocabulary = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] + [
        vocabulary[t] for t in ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>") if t in vocabulary
    ]
    return list(dict.fromkeys(i for i in ids if i is not None))


def generate_transformers(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    batch_size: int = 8,
    max_new_tokens: int = 256,
    num_beams: int = 1,
) -> list[str]:
    """Greedy (num_beams=1) or beam-search answers, batched with left padding; longest prompts first, so a batch
    holds prompts of similar length. Returned in the order of `prompts`."""
    import torch

    stops = stop_token_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    from tqdm import tqdm

    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, desc="translating", unit="batch", disable=not sys.stderr.isatty()):
        batch = [prompts[i] for i in order[start : start + batch_size]]
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
        with torch.no_grad():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=num_beams,
                eos_token_id=stops,
                pad_token_id=pad,
            )
        texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        for i, text in zip(order[start : start + batch_size], texts):
            answers[i] = text.strip()
    return answers


def generate_vllm(model_path: str, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int = 256) -> list[str]:
    """Greedy answers with vLLM (the same prompt ids and stop tokens as the transformers path)."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    engine = LLM(model=model_path, tokenizer=model_path, seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=stop_token_ids(tokenizer))
    outputs = engine.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False)
    return [output.outputs[0].text.strip() for output in outputs]


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


# ---- scoring -------------------------------------------------------------------------------------------------


def bleu_tokenizer(tgt_lang: str) -> str:
    """flores200 when sacreBLEU has its SentencePiece model on disk; else by the target's script."""
    from sacrebleu.utils import SACREBLEU_DIR

    if os.path.exists(os.path.join(SACREBLEU_DIR, "models", "flores200sacrebleuspm")):
        return "flores200"
    script = tgt_lang.split("_")[1]
    if script in ("Hans", "Hant"):
        return "zh"
    return "char" if script in _NO_SPACE_SCRIPTS else "13a"


def score_direction(hypotheses: list[str], references: list[str], tgt_lang: str) -> dict:
    from sacrebleu.metrics import BLEU, CHRF

    tokenize = bleu_tokenizer(tgt_lang)
    bleu, chrf = BLEU(tokenize=tokenize), CHRF(word_order=2)
    return {
        "chrf++": round(chrf.corpus_score(hypotheses, [references]).score, 4),
        "bleu": round(bleu.corpus_score(hypotheses, [references]).score, 4),
        "bleu_tokenizer": tokenize,
        "signatures": {"chrf++": str(chrf.get_signature()), "bleu": str(bleu.get_signature())},
    }


def comet_scores(
    segments: Sequence[Segment], hypotheses: list[str], checkpoint: str | None, batch_size: int = 8
) -> dict[str, float] | str:
    """System COMET per direction, or the reason there is none."""
    if not checkpoint:
        return "no --comet-model checkpoint given"
    if not Path(checkpoint).is_file():
        return f"COMET checkpoint not found: {checkpoint}"
    try:
        from comet import load_from_checkpoint
    except ImportError:
        return "unbabel-comet is not installed"
    model = load_from_checkpoint(checkpoint)
    rows = [{"src": s.source, "mt": h, "ref": s.reference} for s, h in zip(segments, hypotheses)]
    scores = model.predict(rows, batch_size=batch_size, gpus=0, progress_bar=False).scores
    by_direction: dict[str, list[float]] = {}
    for segment, value in zip(segments, scores):
        by_direction.setdefault(segment.direction, []).append(float(value))
    return {d: round(100 * sum(v) / len(v), 4) for d, v in by_direction.items()}


# ---- the whole evaluation ------------------------------------------------------------------------------------


def evaluate_translation(
    model: Any,
    tokenizer: Any = None,
    segments: Sequence[Segment] | None = None,
    *,
    langs: Iterable[str] = DEFAULT_LANGS,
    data: str | None = None,
    split: str | None = None,
    prompt_format: str = "auto",
    phrasing: int = 0,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    num_beams: int = 1,
    max_pairs_per_direction: int | None = None,
    engine: str = "transformers",
    comet_model: str | None = None,
    keep_outputs: bool = False,
) -> dict:
    """Translate every segment and score each direction.

    `model`: a loaded causal LM (as in the training loop) or the path of a Hugging Face folder (needed for
    vLLM). `segments` defaults to `load_segments(langs, data, split, max_pairs_per_direction)`. `engine`:
    "transformers", "vllm", or "auto" (vLLM when installed, the model is a path and the search is greedy).
    Returns the mean chrF++ and BLEU over directions (`chrf++`, `bleu`), per-direction scores under
    `directions`, and how they were computed under `settings`.
    """
    if segments is None:
        segments = load_segments(langs, data, split, max_pairs_per_direction)
    if not segments:
        raise ValueError("translation: no segments to evaluate")
    hypotheses, use_vllm = translate(
        model, tokenizer, segments, engine, prompt_format, phrasing, batch_size, max_new_tokens, num_beams
    )
    comet = comet_scores(segments, hypotheses, comet_model, batch_size)
    results = score_directions(segments, hypotheses, comet)
    summary = {
        "chrf++": round(sum(r["chrf++"] for r in results.values()) / len(results), 4),
        "bleu": round(sum(r["bleu"] for r in results.values()) / len(results), 4),
        "directions": results,
        "settings": {
            "engine": "vllm" if use_vllm else "transformers",
            "prompt_format": prompt_format,
            "phrasing": phrasing,
            "num_beams": num_beams,
            "max_new_tokens": max_new_tokens,
            "data": data or "udhr",
            "comet": "scored" if isinstance(comet, dict) else comet,
        },
    }
    if keep_outputs:
        summary["outputs"] = [{**asdict(s), "hypothesis": h} for s, h in zip(segments, hypotheses)]
    return summary


def translate(
    model: Any,
    tokenizer: Any,
    segments: Sequence[Segment],
    engine: str,
    prompt_format: str,
    phrasing: int,
    batch_size: int,
    max_new_tokens: int,
    num_beams: int,
) -> tuple[list[str], bool]:
    """(the model's answer to every segment's prompt, whether vLLM made them); `model` and `engine` as for
    `evaluate_translation`."""
    model_path = str(model) if isinstance(model, (str, Path)) else None
    if model_path is not None:
        tokenizer = tokenizer or _load_tokenizer(model_path)
    use_vllm = _use_vllm(engine, model_path, num_beams)
    prompts = encode_prompts(segments, tokenizer, prompt_format, phrasing)
    if use_vllm:
        return generate_vllm(model_path, tokenizer, prompts, max_new_tokens), True
    if model_path is not None:
        model = _load_model(model_path)
    return generate_transformers(model, tokenizer, prompts, batch_size, max_new_tokens, num_beams), False


def _use_vllm(engine: str, model_path: str | None, num_beams: int) -> bool:
    """Whether `engine` means vLLM here; vLLM loads the model itself, so it needs a path, and it only searches
    greedily."""
    if engine not in ("transformers", "vllm", "auto"):
        raise ValueError(f"engine {engine!r}: use transformers, vllm or auto")
    use_vllm = engine == "vllm" or (engine == "auto" and vllm_available() and model_path is not None and num_beams == 1)
    if use_vllm and (model_path is None or num_beams != 1):
        raise ValueError("engine vllm needs the model as a folder path and greedy search (num_beams 1)")
    return use_vllm


def score_directions(segments: Sequence[Segment], hypotheses: list[str], comet: dict[str, float] | str) -> dict:
    """Direction -> its segment count, sacreBLEU scores and COMET (None where COMET did not run), sorted by
    direction."""
    by_direction: dict[str, list[int]] = {}
    for i, segment in enumerate(segments):
        by_direction.setdefault(segment.direction, []).append(i)
    results = {}
    for direction, indices in sorted(by_direction.items()):
        tgt_lang = segments[indices[0]].tgt_lang
        scores = score_direction([hypotheses[i] for i in indices], [segments[i].reference for i in indices], tgt_lang)
        results[direction] = {
            "segments": len(indices),
            **scores,
            "comet": comet.get(direction) if isinstance(comet, dict) else None,
        }
    return results


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _load_model(path: str) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).eval()
