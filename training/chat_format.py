"""Chat formats: turn a row's `messages` into token ids and labels, with the loss only on assistant tokens.

Three formats:
- `auto`: the tokenizer's own chat template (`tokenizer.apply_chat_template`), rendered prefix by prefix so that
  the text of each assistant turn is known exactly, whatever the template;
- `bayling-llama2`: a system line, then "### Instruction:" / "### Response:" blocks, each answer closed by EOS;
- `bayling-llama3`: Llama-3 headers, `<|start_header_id|>role<|end_header_id|>\\n\\n...<|eot_id|>`.

A conversation is cut into segments of text, each either trained (an assistant answer with its end-of-turn
token) or not, and each segment is tokenized on its own. So the ids of `encode_prompt(messages[:-1])` are exactly
the first ids of `encode(messages)`: what the model sees when it generates is what it was trained on.
"""

from __future__ import annotations

from typing import Any, Sequence

IGNORE_INDEX = -100  # the label of a token that is not trained (torch's cross_entropy ignore_index)
FORMATS = ("auto", "bayling-llama2", "bayling-llama3")
ROLES = ("system", "user", "assistant")

# BayLing's Llama-2 format opens every conversation with a system line; a row's own system message replaces it.
LLAMA2_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
LLAMA3_SPECIAL = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")

Segment = tuple[str, bool]  # (text, trained)


def encode(messages: Sequence[dict], tokenizer: Any, style: str = "auto") -> tuple[list[int], list[int]]:
    """Token ids and labels of one conversation; labels are IGNORE_INDEX except on assistant answers."""
    return encode_batch([messages], tokenizer, style)[0]


def encode_prompt(messages: Sequence[dict], tokenizer: Any, style: str = "auto") -> list[int]:
    """Token ids of the prompt for generating the next assistant turn: the conversation up to where the answer
    starts. A trailing assistant message (a reference answer) is left out."""
    messages = list(messages)
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    segments = conversation_segments(messages, tokenizer, style, open_turn=True)
    return [token for ids in _tokenize([text for text, _ in segments], tokenizer) for token in ids]


def encode_batch(rows: Sequence[Sequence[dict]], tokenizer: Any, style: str = "auto") -> list[tuple[list[int], list[int]]]:
    """`encode` for many conversations, with one tokenizer call for all their segments (fast tokenizers spread
    a batch over threads)."""
    build = _segment_builder(tokenizer, style)
    all_segments = [build(messages, tokenizer, False) for messages in rows]
    flat = _tokenize([text for segments in all_segments for text, _ in segments], tokenizer)
    encoded, k = [], 0
    for segments in all_segments:
        input_ids: list[int] = []
        labels: list[int] = []
        for _, trained in segments:
            ids = flat[k]
            k += 1
            input_ids.extend(ids)
            labels.extend(ids if trained else [IGNORE_INDEX] * len(ids))
        encoded.append((input_ids, labels))
    return encoded


def conversation_segments(messages: Sequence[dict], tokenizer: Any, style: str, open_turn: bool = False) -> list[Segment]:
    """The text of a conversation in `style`, cut into (text, trained) segments. With `open_turn` the
    conversation ends with a user turn and the text ends where the assistant's answer starts."""
    return _segment_builder(tokenizer, style)(messages, tokenizer, open_turn)


def _segment_builder(tokenizer: Any, style: str):
    """The function that cuts conversations in `style`, once the tokenizer is known to suit it."""
    if style == "auto":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"chat_format auto: the tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
                "give chat_format bayling-llama2 or bayling-llama3"
            )
        build = _template_segments
    elif style == "bayling-llama2":
        _required_token(tokenizer, "bos_token"), _required_token(tokenizer, "eos_token")
        build = _llama2_segments
    elif style == "bayling-llama3":
        missing = [token for token in LLAMA3_SPECIAL if not _is_token(tokenizer, token)]
        if missing:
            raise ValueError(f"chat_format bayling-llama3: the tokenizer has no {', '.join(missing)} token (a Llama-3 tokenizer is needed)")
        build = _llama3_segments
    else:
        raise ValueError(f"chat_format: unknown format {style!r}; use one of {', '.join(FORMATS)}")

    def segments(messages: Sequence[dict], tokenizer: Any, open_turn: bool) -> list[Segment]:
        check_messages(messages, open_turn)
        return _merge(build(messages, tokenizer, open_turn))

    return segments


def check_messages(messages: Sequence[dict], open_turn: bool = False) -> None:
    """An optional system message, then user and assistant turns in alternation, starting with the user; the
    last turn is the assistant's (or the user's, for a prompt)."""
    if not messages:
        raise ValueError("messages: empty conversation")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ValueError(f"messages[{i}]: expected {{role, content}} with string content, got {message!r:.80}")
        if message.get("role") not in ROLES:
            raise ValueError(f"messages[{i}].role: {message.get('role')!r} is not one of {', '.join(ROLES)}")
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            where = i + (len(messages) - len(turns))
            raise ValueError(f"messages[{where}].role: expected {expected!r} (turns alternate, user first), got {message['role']!r}")
    last = "user" if open_turn else "assistant"
    if not turns or turns[-1]["role"] != last:
        raise ValueError(f"messages: the last turn must be the {last}'s")


def _llama2_segments(messages: Sequence[dict], tokenizer: Any, open_turn: bool) -> list[Segment]:
    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    system = messages[0]["content"] if messages[0]["role"] == "system" else LLAMA2_SYSTEM
    segments: list[Segment] = [(f"{bos}{system}\n\n", False)]
    turns = [m for m in messages if m["role"] != "system"]
    for i, message in enumerate(turns):
        if message["role"] == "user":
            separator = "\n\n" if i else ""
            segments.append((f"{separator}### Instruction:\n{message['content']}\n\n### Response:\n", False))
        else:
            segments.append((f"{message['content']}{eos}", True))
    return segments


def _llama3_segments(messages: Sequence[dict], tokenizer: Any, open_turn: bool) -> list[Segment]:
    segments: list[Segment] = [("<|begin_of_text|>", False)]
    for message in messages:
        header = f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n"
        if message["role"] == "assistant":
            segments += [(header, False), (f"{message['content']}<|eot_id|>", True)]
        else:
            segments.append((f"{header}{message['content']}<|eot_id|>", False))
    if open_turn:
        segments.append(("<|start_header_id|>assistant<|end_header_id|>\n\n", False))
    return segments


def _template_segments(messages: Sequence[dict], tokenizer: Any, open_turn: bool) -> list[Segment]:
    """Render the conversation once whole and once up to each assistant turn (with and without that turn):
    the text an answer adds is what the template renders for it, up to and including the tokenizer's EOS (the
    end-of-turn token of chat tokenizers) when it is there; what follows is not trained. This needs only
    that the template renders a conversation's beginning as the beginning of its text, which every chat
    template meant for multi-turn training does; one that does not is refused, not guessed at."""

    def render(part: Sequence[dict], generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(list(part), tokenize=False, add_generation_prompt=generation_prompt)

    whole = render(messages, open_turn)
    segments: list[Segment] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        last = i + 1 == len(messages)  # then the conversation up to this answer is the whole one: no third render
        prompt, answered = render(messages[:i], True), whole if last else render(messages[: i + 1], False)
        if not (answered.startswith(prompt) and whole.startswith(answered) and len(prompt) >= cursor):
            raise ValueError(
                f"chat_format auto: the chat template of {getattr(tokenizer, 'name_or_path', '')!r} does not render "
                f"the conversation up to turn {i} as the beginning of the whole conversation, so the assistant "
                "tokens cannot be told apart; give chat_format bayling-llama2 or bayling-llama3"
            )
        answer = whole[len(prompt) : len(answered)]
        # What the template writes after the end-of-turn token (ChatML's newline) is not the model's to learn.
        eos = getattr(tokenizer, "eos_token", None)
        end = answer.rindex(eos) + len(eos) if eos and eos in answer else len(answer)
        segments += [(whole[cursor : len(prompt)], False), (answer[:end], True), (answer[end:], False)]
        cursor = len(answered)
    segments.append((whole[cursor:], False))
    return segments


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for text, trained in segments:
        if not text:
            continue
        if merged and merged[-1][1] == trained:
            merged[-1] = (merged[-1][0] + text, trained)
        else:
            merged.append((text, trained))
    return merged


def _is_token(tokenizer: Any, token: str) -> bool:
    token_id = tokenizer.convert_tokens_to_ids(token)
    return token_id is not None and token_id != tokenizer.unk_token_id


def _required_token(tokenizer: Any, name: str) -> str:
    token = getattr(tokenizer, name, None)
    if not token:
        raise ValueError(f"chat_format: the tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no {name}")
    return token


def _tokenize(texts: list[str], tokenizer: Any) -> list[list[int]]:
    if not texts:
        return []
    # The format writes BOS itself, as text, so the tokenizer must not add another.
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "encode_batch_fast"):  # a fast tokenizer, without the offsets
        return [encoding.ids for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]
