"""Packing: several encoded rows per sequence of `seq_len` tokens, with no attention across rows.

`Packer` fills each sequence with the oldest waiting row (so no row waits for ever and the shuffled order is
kept roughly), then with the longest waiting rows that still fit (best fit), from a small buffer of rows. It is
deterministic: the same rows in the same order give the same sequences.

`collate` stacks sequences into a batch: `input_ids`, `labels` (IGNORE_INDEX on padding and on the first token
of every row, so no row is trained to predict the start of the next one), `position_ids` restarting at 0 for
every row (the padding at the end counts as one more row), and `cu_seqlens`/`max_seqlen`, the row boundaries
over the flattened batch that flash-attention's varlen kernel takes.

`model_inputs` turns a batch into the keyword arguments of a transformers causal-LM forward for the model's
attention implementation. Both ways keep rows apart exactly like separate forward passes:
- flash attention: `cu_seq_lens_q/k` and `max_length_q/k` go through to `flash_attn_varlen_func` (transformers
  5 only infers them from `position_ids` when the batch has a single row, so they are given explicitly);
- sdpa, eager and the rest: a block-diagonal causal 4D mask, which transformers uses as it is (boolean for
  sdpa, additive in the model's dtype for eager). Transformers would build the same mask from `position_ids`
  alone, but only when no attention mask is passed and no cache is used; the explicit mask does not depend on
  either;
- flex attention: no mask, and so transformers' own block-sparse mask from `position_ids` (a dense 4D mask would
  waste what flex attention is for).
"""

from __future__ import annotations

import bisect
from typing import Any

import torch

from training.chat_format import IGNORE_INDEX

Row = tuple[list[int], list[int]]  # (input_ids, labels)


class Packer:
    """Greedy best-fit packing of rows into sequences of at most `seq_len` tokens, from a buffer of
    `buffer_size` rows. Rows must already be at most `seq_len` long."""

    def __init__(self, seq_len: int, buffer_size: int = 256):
        if seq_len < 2 or buffer_size < 1:
            raise ValueError(f"packing: seq_len must be >= 2 and buffer_size >= 1, got {seq_len} and {buffer_size}")
        self.seq_len = seq_len
        self.buffer_size = buffer_size
        self._rows: dict[int, Row] = {}  # arrival number -> row, oldest first
        self._by_length: list[tuple[int, int]] = []  # sorted (length, -arrival)
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._rows)

    def full(self) -> bool:
        return len(self._rows) >= self.buffer_size

    def add(self, input_ids: list[int], labels: list[int]) -> None:
        if not 0 < len(input_ids) <= self.seq_len or len(labels) != len(input_ids):
            raise ValueError(f"packing: a row of {len(input_ids)} tokens does not fit a sequence of {self.seq_len}")
        arrival = self._arrivals
        self._arrivals += 1
        self._rows[arrival] = (input_ids, labels)
        bisect.insort(self._by_length, (len(input_ids), -arrival))

    def pop(self) -> list[Row]:
        """The rows of one sequence: the oldest row, then the longest that fit, until none fits."""
        if not self._rows:
            raise IndexError("packing: no rows waiting")
        oldest = next(iter(self._rows))
        sequence = [self._take(len(self._rows[oldest][0]), oldest)]
        room = self.seq_len - len(sequence[0][0])
        while room > 0 and self._by_length:
            # the last entry of length <= room; among equal lengths the oldest (largest -arrival)
            k = bisect.bisect_right(self._by_length, (room, 1)) - 1
            if k < 0:
                break
            length, negative_arrival = self._by_length[k]
            sequence.append(self._take(length, -negative_arrival, k))
            room -= length
        return sequence

    def _take(self, length: int, arrival: int, index: int | None = None) -> Row:
        if index is None:
            index = bisect.bisect_left(self._by_length, (length, -arrival))
        del self._by_length[index]
        return self._rows.pop(arrival)

    def state_dict(self) -> dict[str, Any]:
        """The waiting rows, oldest first (small: at most `buffer_size` rows of token ids)."""
        return {"rows": [[ids, labels] for ids, labels in self._rows.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rows.clear()
        self._by_length.clear()
        self._arrivals = 0
        for ids, labels in state["rows"]:
            self.add(list(ids), list(labels))


def collate(sequences: list[list[Row]], seq_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """A batch of packed sequences as tensors [B, seq_len] (see the module's docstring)."""
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    boundaries = [0]
    for rows in sequences:
        used = 0
        for ids, row_labels in rows:
            input_ids += ids
            labels.append(IGNORE_INDEX)
            labels += row_labels[1:]
            positions += range(len(ids))
            used += len(ids)
            boundaries.append(boundaries[-1] + len(ids))
        if used > seq_len:
            raise ValueError(f"packing: a sequence of {used} tokens is longer than seq_len {seq_len}")
        if used < seq_len:  # the padding is one more row, attending only to itself
            input_ids += [pad_id] * (seq_len - used)
            labels += [IGNORE_INDEX] * (seq_len - used)
            positions += range(seq_len - used)
            boundaries.append(boundaries[-1] + seq_len - used)
    cu_seqlens = torch.tensor(boundaries, dtype=torch.int32)
    shape = (len(sequences), seq_len)
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long).view(shape),
        "labels": torch.tensor(labels, dtype=torch.long).view(shape),
        "position_ids": torch.tensor(positions, dtype=torch.long).view(shape),
        "cu_seqlens": cu_seqlens,
        "max_seqlen": torch.diff(cu_seqlens).max().to(torch.int32),
    }


def block_causal_mask(position_ids: torch.Tensor) -> torch.Tensor:
    """[B, 1, L, L] boolean: token q attends to token k when k <= q and both are in the same row (a row starts
    where its position id is 0)."""
    rows = (position_ids == 0).cumsum(dim=-1)
    same_row = rows[:, :, None] == rows[:, None, :]
    length = position_ids.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=position_ids.device).tril()
    return (same_row & causal)[:, None, :, :]


def model_inputs(batch: dict[str, torch.Tensor], attn_implementation: str, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Keyword arguments for `model(**model_inputs(batch, model.config._attn_implementation))` that keep the
    packed rows apart; labels are left out (the trainer computes its own loss). `dtype` is the model's, for
    the additive mask of eager attention."""
    inputs: dict[str, Any] = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
    if attn_implementation.startswith("flash_attention") or attn_implementation.endswith("flash-attn2"):
        cu_seqlens = batch["cu_seqlens"].to(device=batch["input_ids"].device, dtype=torch.int32)
        max_seqlen = int(batch["max_seqlen"])
        inputs.update(cu_seq_lens_q=cu_seqlens, cu_seq_lens_k=cu_seqlens, max_length_q=max_seqlen, max_length_k=max_seqlen)
        return inputs
    if attn_implementation == "flex_attention":
        # No mask and no cache: transformers then builds the block-sparse mask of the rows from position_ids.
        return inputs
    mask = block_causal_mask(batch["position_ids"])
    if attn_implementation == "eager":
        additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        mask = additive.masked_fill_(~mask, torch.finfo(dtype).min)
    inputs["attention_mask"] = mask
    return inputs
