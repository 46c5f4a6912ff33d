"""Cross-lingual instructions from pairs: X->pivot and pivot->X.

Three kinds, each its own `task`:
- `translation`: one pair, one request and its answer;
- `translate_document`: several consecutive segments of one document in one request, the answer their aligned
  translations in the same order, one segment a line;
- `translate_dialogue`: a conversation that translates one segment a turn (user: segment, assistant: its
  translation), the first request saying what is wanted and the later ones short follow-ups.
Documents and dialogues need ordered segments: pairs whose source id gives a position, every part of it ending in
`.p<n>` (the embedded corpus: `deu_1996:a3.p1|eng:a3.p1`, paragraph 1 of article 3); consecutive means positions
n, n+1, ... of the same document, source, languages and split, so no row mixes splits.

The request is phrased in English when the pivot is English and in Chinese when it is Chinese, as in
BayLing 2. Each instruction draws one of the phrasings below, chosen by a hash of the seed and the row, so the
same seed gives the same rows on any executor.
"""

from __future__ import annotations

import functools
import string

import numpy as np
import polars as pl
import pyarrow as pa

from schemas.language_codes import language_name
from schemas.records import INSTRUCTION_SCHEMA, stable_id, stable_ids

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
DOCUMENT_PHRASINGS = {
    "eng_Latn": (
        "Translate the following {src} document into {tgt}, paragraph by paragraph.\n\n{text}",
        "Here is a passage in {src}. Translate all of it into {tgt}, keeping the paragraphs.\n\n{text}",
        "Please translate this {src} text into {tgt}:\n\n{text}",
        "{text}\n\nTranslate the passage above from {src} into {tgt}.",
        "Translate these paragraphs into {tgt}. They are written in {src}.\n\n{text}",
        "I have a document in {src} that needs translating into {tgt}. Translate it paragraph by paragraph:\n\n{text}",
        "Give a faithful {tgt} translation of the following {src} paragraphs, one paragraph per line.\n\n{text}",
        "{src} to {tgt}, the whole passage:\n{text}",
    ),
    "zho_Hans": (
        "将下面的{src}文档逐段翻译成{tgt}。\n\n{text}",
        "这是一段{src}文字，请把它全部翻译成{tgt}，保留分段：\n\n{text}",
        "请把以下{src}文本翻译成{tgt}：\n\n{text}",
        "{text}\n\n请将上面这段{src}文字翻译成{tgt}。",
        "把下面几段{src}译成{tgt}，每段一行。\n\n{text}",
        "我有一份{src}文件需要翻译成{tgt}，请逐段翻译：\n\n{text}",
        "请给出以下{src}段落的{tgt}译文。\n\n{text}",
        "{src}译{tgt}（整段）：\n{text}",
    ),
}
DIALOGUE_OPENINGS = {
    "eng_Latn": (
        "I'll send you a text in {src} one paragraph at a time. Translate each into {tgt}. Here is the first:\n\n{text}",
        "Let's translate a document from {src} into {tgt} paragraph by paragraph. First paragraph:\n{text}",
        "Translate this {src} paragraph into {tgt}; more will follow.\n\n{text}",
        "Can you help me translate a text from {src} into {tgt}? We'll go one paragraph at a time. Start with this:\n\n{text}",
        "Please translate from {src} to {tgt}, one paragraph per message. Paragraph 1:\n{text}",
        "We are going to translate a passage from {src} into {tgt} piece by piece. Here's the first piece:\n\n{text}",
    ),
    "zho_Hans": (
        "我会一段一段地发给你一篇{src}文字，请把每段翻译成{tgt}。第一段：\n\n{text}",
        "我们来把一篇{src}文档逐段翻译成{tgt}。第一段：\n{text}",
        "请把这段{src}翻译成{tgt}，后面还有。\n\n{text}",
        "能帮我把一篇{src}文字翻译成{tgt}吗？我们一段一段来，先翻译这段：\n\n{text}",
        "请从{src}翻译成{tgt}，每条消息一段。第1段：\n{text}",
        "接下来我们分段把一段{src}翻译成{tgt}。这是第一部分：\n\n{text}",
    ),
}
DIALOGUE_FOLLOW_UPS = {
    "eng_Latn": ("Next paragraph:\n{text}", "And this one:\n\n{text}", "Continue with the next part:\n{text}",
                 "Now translate this:\n\n{text}", "Here is the next one.\n\n{text}", "Go on:\n{text}"),
    "zho_Hans": ("下一段：\n{text}", "还有这段：\n\n{text}", "继续翻译下一部分：\n{text}",
                 "再翻译这段：\n\n{text}", "接着来：\n{text}", "这是下一段。\n\n{text}"),
}  # fmt: skip
CROSS_LINGUAL_TASKS = ("translation", "translate_document", "translate_dialogue")
# a source id whose every part ("|" between the sides) ends in a position `.p<n>`: one regex over the column, as
# a corpus without positions (most) has nothing to split or extract
POSITIONED = r"^[^|]*\.p\d+(\|[^|]*\.p\d+)*$"
SEGMENT_SEPARATOR = "\n"  # between the segments of a document, in the request and in the answer
_NAME_LANGUAGE = {"eng_Latn": "en", "zho_Hans": "zh"}


@functools.lru_cache(maxsize=4096)
def _name(code: str, instruction_lang: str) -> str:
    return language_name(code, _NAME_LANGUAGE[instruction_lang])


def no_rows() -> pa.Table:
    """An empty table of instructions. Not `INSTRUCTION_SCHEMA.empty_table()`, nor anything else that converts Python
    objects: pyarrow imports pandas on its first such conversion (a slow import), and a mix task whose pairs
    have no positions (most corpora) has no other."""
    return pa.Table.from_batches([], schema=INSTRUCTION_SCHEMA)


def choose_phrasing(seed: int, pair_id: str, direction: str, count: int) -> int:
    return int(stable_id(str(seed), pair_id, direction)[:8], 16) % count


def _row(first: dict, source_id: str, direction: tuple[str, str], template_id: str, messages: list[dict], task: str) -> dict:
    src_lang, tgt_lang = direction
    pivot = first["tgt_lang"]
    flat = [part for m in messages for part in (m["role"], m["content"])]
    return {
        "id": stable_id(first["source"], source_id, f"{src_lang}->{tgt_lang}", template_id, *flat),
        "messages": messages,
        "task": task,
        "src_lang": src_lang,
        "tgt_lang": tgt_lang,
        "instruction_lang": pivot,
        "pivot": pivot,
        "source": first["source"],
        "source_id": source_id,
        "template_id": template_id,
        "split": first["split"],
    }


def _sides(segments: list[dict], backwards: bool) -> tuple[tuple[str, str], list[str], list[str]]:
    """(direction, texts to translate, their translations) of consecutive pairs, X->pivot or pivot->X."""
    first = segments[0]
    src, tgt = [p["src_text"] for p in segments], [p["tgt_text"] for p in segments]
    if backwards:
        return (first["tgt_lang"], first["src_lang"]), tgt, src
    return (first["src_lang"], first["tgt_lang"]), src, tgt


def document_rows(documents: list[list[dict]], reverse: list[bool], seed: int) -> pa.Table:
    """One `translate_document` instruction per run of consecutive pairs: every segment in one request, the answer
    their translations in the same order."""
    if not documents:
        return no_rows()
    rows = []
    for segments, backwards in zip(documents, reverse):
        pivot = segments[0]["tgt_lang"]
        (src_lang, tgt_lang), texts, answers = _sides(segments, backwards)
        source_id = ";".join(p["source_id"] for p in segments)
        k = choose_phrasing(seed, source_id, f"document:{src_lang}->{tgt_lang}", len(DOCUMENT_PHRASINGS[pivot]))
        prompt = DOCUMENT_PHRASINGS[pivot][k].format(src=_name(src_lang, pivot), tgt=_name(tgt_lang, pivot), text=SEGMENT_SEPARATOR.join(texts))
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": SEGMENT_SEPARATOR.join(answers)}]
        rows.append(_row(segments[0], source_id, (src_lang, tgt_lang), f"document.{_NAME_LANGUAGE[pivot]}.{k:02d}", messages, "translate_document"))
    return pa.Table.from_pylist(rows, schema=INSTRUCTION_SCHEMA)


def dialogue_rows(documents: list[list[dict]], reverse: list[bool], seed: int) -> pa.Table:
    """One `translate_dialogue` instruction per run of consecutive pairs: a user turn per segment, each answered by
    its translation; the first turn says what is asked, the others are short follow-ups."""
    if not documents:
        return no_rows()
    rows = []
    for segments, backwards in zip(documents, reverse):
        pivot = segments[0]["tgt_lang"]
        (src_lang, tgt_lang), texts, answers = _sides(segments, backwards)
        source_id = ";".join(p["source_id"] for p in segments)
        direction = f"dialogue:{src_lang}->{tgt_lang}"
        k = choose_phrasing(seed, source_id, direction, len(DIALOGUE_OPENINGS[pivot]))
        messages = []
        for turn, (text, answer) in enumerate(zip(texts, answers)):
            if turn == 0:
                request = DIALOGUE_OPENINGS[pivot][k].format(src=_name(src_lang, pivot), tgt=_name(tgt_lang, pivot), text=text)
            else:
                follow_ups = DIALOGUE_FOLLOW_UPS[pivot]
                request = follow_ups[choose_phrasing(seed, source_id, f"{direction}:{turn}", len(follow_ups))].format(text=text)
            messages += [{"role": "user", "content": request}, {"role": "assistant", "content": answer}]
        rows.append(_row(segments[0], source_id, (src_lang, tgt_lang), f"dialogue.{_NAME_LANGUAGE[pivot]}.{k:02d}", messages, "translate_dialogue"))
    return pa.Table.from_pylist(rows, schema=INSTRUCTION_SCHEMA)


def translation_rows(pairs: pl.DataFrame, reverse: list[bool] | pl.Series, seed: int) -> pa.Table:
    """One instruction per (pair, direction): X->pivot, or pivot->X where `reverse`. Whole columns at a time, not a
    dict, a str.format and two id hashes per row (see tests/benchmarks/bench_build.py): the same rows as one
    `PHRASINGS[pivot][k].format(...)` and `stable_id(...)` per row, in the same order."""
    if not pairs.height:
        return no_rows()
    backwards = pl.Series(reverse, dtype=pl.Boolean)

    def flip(forth: str, back: str) -> pl.Expr:
        return pl.when("backwards").then(pl.col(back)).otherwise(pl.col(forth))

    frame = pairs.with_columns(backwards=backwards, pivot=pl.col("tgt_lang"), row=pl.int_range(pl.len())).with_columns(
        src_lang=flip("src_lang", "tgt_lang"), tgt_lang=flip("tgt_lang", "src_lang"),
        src_text=flip("src_text", "tgt_text"), tgt_text=flip("tgt_text", "src_text"),
    )  # fmt: skip
    frame = frame.with_columns(direction=pl.concat_str("src_lang", pl.lit("->"), "tgt_lang"))
    counts = pl.col("pivot").replace_strict({pivot: len(p) for pivot, p in PHRASINGS.items()}, return_dtype=pl.Int64)
    frame = frame.with_columns(k=phrasing_hashes(frame.select(pl.concat_str(pl.lit(str(seed)), "id", "direction", separator="\x1f")).to_series()) % counts)
    codes = pl.concat([frame.select(code="src_lang", pivot="pivot"), frame.select(code="tgt_lang", pivot="pivot")]).unique()
    names = {f"{code}\x1f{pivot}": _name(code, pivot) for code, pivot in codes.iter_rows()}

    def name(code: str) -> pl.Expr:
        return pl.concat_str(code, "pivot", separator="\x1f").replace_strict(names, return_dtype=pl.String)

    frame = frame.with_columns(src_name=name("src_lang"), tgt_name=name("tgt_lang"))
    # each phrasing formats its rows; only what it makes goes back into row order (sorting the whole frame back would
    # cost as much as the formatting)
    parts = []
    for (pivot, k), part in frame.select("row", "pivot", "k", "src_name", "tgt_name", "src_text").group_by("pivot", "k"):
        parts.append(part.select("row", prompt=_format(PHRASINGS[pivot][k], src="src_name", tgt="tgt_name", text="src_text"),
                                 template_id=pl.lit(f"translate.{_NAME_LANGUAGE[pivot]}.{k:02d}")))  # fmt: skip
    frame = frame.hstack(pl.concat(parts).sort("row").drop("row"))
    ids = pl.concat_str("source", "source_id", "direction", "template_id", "prompt", "tgt_text", separator="\x1f")
    # each row's [user: prompt, assistant: answer], built as one column of turns cut in twos (concat_list of two
    # structs is slower than all the rest here)
    turns = pl.DataFrame({"role": pl.Series(["user", "assistant"]).gather(np.tile([0, 1], frame.height)),
                          "content": pl.concat([frame["prompt"], frame["tgt_text"]]).gather(np.arange(2 * frame.height).reshape(2, -1).T.ravel())})  # fmt: skip
    messages = turns.select(pl.struct("role", "content")).to_series()
    messages = messages.reshape((frame.height, 2)).cast(pl.List(messages.dtype))
    return frame.select(
        id=stable_ids(frame.select(ids).to_series()),
        messages=messages,
        task=pl.lit("translation"), src_lang="src_lang", tgt_lang="tgt_lang", instruction_lang="pivot", pivot="pivot",
        source="source", source_id="source_id", template_id="template_id", split="split",
    ).to_arrow().cast(INSTRUCTION_SCHEMA)  # fmt: skip


def phrasing_hashes(joined: pl.Series) -> pl.Series:
    """What `choose_phrasing` takes modulo the count, for every row of `seed`, `pair_id` and `direction` already
    joined with "\x1f": the first 32 bits of their `stable_id`."""
    return stable_ids(joined).str.slice(0, 8).str.to_integer(base=16)


def _format(template: str, **columns: str) -> pl.Expr:
    """`template.format(**values)` of every row, with each field's value taken from the named column."""
    pieces = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if spec or conversion:
            raise ValueError(f"template {template!r}: format specs and conversions are not supported")
        pieces += [pl.lit(literal)] if literal else []
        pieces += [pl.col(columns[field])] if field is not None else []
    return pl.concat_str(pieces)


def positioned(pairs: pl.DataFrame) -> pl.DataFrame:
    """The pairs whose source id gives a position (POSITIONED): the only ones documents and dialogues are made of."""
    return pairs.filter(pl.col("source_id").str.contains(POSITIONED))


def ordered_runs(frame: pl.DataFrame, fewest: int, most: int, seed: int, kind: str) -> list[list[dict]]:
    """The `positioned` pairs cut into documents of `fewest` to `most` consecutive segments (how many, by a hash of
    the seed, `kind` and the first segment); a tail shorter than `fewest` is left out. The caller picks the
    positioned pairs once for every kind (the regex is most of the time where a corpus has no positions)."""
    if frame.is_empty():
        return []
    frame = (
        frame.with_columns(positions=pl.col("source_id").str.split("|").list.eval(pl.element().str.extract(r"\.p(\d+)$", 1)))
        .with_columns(
            position=pl.col("positions").list.first().cast(pl.Int64),
            document=pl.col("source_id").str.replace_all(r"\.p\d+(\||$)", "${1}"),
        )
        .sort("source", "src_lang", "tgt_lang", "split", "document", "position")
    )
    same = [pl.col(c) == pl.col(c).shift() for c in ("source", "src_lang", "tgt_lang", "split", "document")]
    consecutive = pl.all_horizontal(*same) & (pl.col("position") == pl.col("position").shift() + 1)
    frame = frame.with_columns(run=(~consecutive.fill_null(False)).cum_sum()).filter(pl.len().over("run") >= fewest)
    rows = frame.drop("positions", "position", "document", "run").to_dicts()
    ends = (frame["run"] != frame["run"].shift(-1)).fill_null(True).arg_true().to_list()
    documents = []
    for first, last in zip([0] + [e + 1 for e in ends[:-1]], ends):  # one run: rows[first..last]
        start = first
        while start <= last:
            size = fewest + choose_phrasing(seed, rows[start]["id"], kind, most - fewest + 1)
            if min(start + size, last + 1) - start >= fewest:
                documents.append(rows[start : min(start + size, last + 1)])
            start += size
    return documents
