"""Cross-lingual instructions from pairs: X->pivot and pivot->X for every pair.

The request is phrased in English when the pivot is English and in Chinese when it is Chinese, as in
BayLing 2. Each instruction draws one of the phrasings below, chosen by a hash of the seed and the row, so the
same seed gives the same rows on any executor.
"""

from __future__ import annotations

import functools

import pyarrow as pa

from schemas.language_codes import language_name
from schemas.records import INSTRUCTION_SCHEMA, stable_id

PHRASINGS = {
    "eng_Latn": (
        "Translate the following {src} text into {tgt}.\n\n{text}",
        "Translate this from {src} to {tgt}:\n{text}",
        "Please translate the {src} sentence below into {tgt}.\n\n{text}",
        "{text}\n\nTranslate the text above into {tgt}.",
        "What is the {tgt} translation of the following {src} text?\n\n{text}",
        "Render this {src} passage in {tgt}:\n\n{text}",
        "I need this {src} text translated into {tgt}. Here it is:\n{text}",
        "{src} to {tgt}:\n{text}",
        "Could you translate the following into {tgt}? The original is in {src}.\n\n{text}",
        "Give a faithful {tgt} translation of this {src} text.\n\n{text}",
        "Source ({src}): {text}\nTranslate into {tgt}.",
        "How would you say this in {tgt}?\n\n{text}",
    ),
    "zho_Hans": (
        "将下面的{src}文本翻译成{tgt}。\n\n{text}",
        "请把这段{src}翻译成{tgt}：\n{text}",
        "把以下内容从{src}翻译为{tgt}：\n\n{text}",
        "{text}\n\n请将上面的文字翻译成{tgt}。",
        "下面这段{src}用{tgt}怎么说？\n\n{text}",
        "请将以下{src}句子译成{tgt}。\n\n{text}",
        "翻译成{tgt}：\n{text}",
        "我需要把这段{src}文字翻译成{tgt}，原文如下：\n{text}",
        "请给出下面{src}文本的{tgt}译文。\n\n{text}",
        "{src}译{tgt}：\n{text}",
        "原文（{src}）：{text}\n请翻译成{tgt}。",
        "请忠实地把下面的话翻译成{tgt}：\n\n{text}",
    ),
}
_NAME_LANGUAGE = {"eng_Latn": "en", "zho_Hans": "zh"}


@functools.lru_cache(maxsize=4096)
def _name(code: str, instruction_lang: str) -> str:
    return language_name(code, _NAME_LANGUAGE[instruction_lang])


def choose_phrasing(seed: int, pair_id: str, direction: str, count: int) -> int:
    return int(stable_id(str(seed), pair_id, direction)[:8], 16) % count


def translation_rows(pairs: list[dict], reverse: list[bool], seed: int) -> pa.Table:
    """One instruction per (pair, direction): X->pivot, or pivot->X where `reverse`."""
    rows = []
    for pair, backwards in zip(pairs, reverse):
        pivot = pair["tgt_lang"]
        phrasings = PHRASINGS[pivot]
        (src_lang, src_text), (tgt_lang, tgt_text) = ((pair["src_lang"], pair["src_text"]), (pivot, pair["tgt_text"]))[:: -1 if backwards else 1]
        direction = f"{src_lang}->{tgt_lang}"
        k = choose_phrasing(seed, pair["id"], direction, len(phrasings))
        prompt = phrasings[k].format(src=_name(src_lang, pivot), tgt=_name(tgt_lang, pivot), text=src_text)
        template_id = f"translate.{_NAME_LANGUAGE[pivot]}.{k:02d}"
        rows.append(
            {
                "id": stable_id(pair["source"], pair["source_id"], direction, template_id, prompt, tgt_text),
                "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": tgt_text}],
                "task": "translation",
                "src_lang": src_lang,
                "tgt_lang": tgt_lang,
                "instruction_lang": pivot,
                "pivot": pivot,
                "source": pair["source"],
                "source_id": pair["source_id"],
                "template_id": template_id,
                "split": pair["split"],
            }
        )
    return pa.Table.from_pylist(rows, schema=INSTRUCTION_SCHEMA)
