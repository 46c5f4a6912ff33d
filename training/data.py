"""Training data: instruction rows from Parquet shards to packed batches of token ids, per rank, resumable.

The rows of a split are read from the Parquet files of a local dataset version, of one on object storage
(`s3://bucket/name/v1.0.0`, read through fsspec), or of a Hub dataset at a pinned
revision (`hf://datasets/org/name@v1.0.0`, fetched once into the local Hugging Face cache, then read from there,
offline too). Each epoch:
1. the row groups of all files are put in an order drawn from (seed, epoch) and seen as one sequence of rows;
2. rank r of W takes the rows [N*r/W, N*(r+1)/W) of that sequence: no row is read by two ranks, every row is
   read by one, and the ranks differ by at most one row, however few files there are;
3. a rank reads its rows in windows of `shuffle_window` rows and shuffles each window (seed, epoch, rank,
   window), then formats and tokenizes them (`training.chat_format`), truncates or drops rows longer than
   `seq_len`, and packs them (`training.packing`).

All of it is a function of the files, the config and the seed, so `state_dict()` only needs the epoch, the
number of rows of this epoch already given to the packer, and the rows waiting in the packer: a resumed run
goes on with exactly the batches the interrupted run would have given.
"""

from __future__ import annotations

import glob
import itertools
import multiprocessing
import os
import re
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

import numpy as np
import pyarrow.parquet as pq
import torch

from pydantic import Field

from schemas.config import STRICT_KEYS_NUMBERS_AS_TEXT, check
from training.chat_format import FORMATS, IGNORE_INDEX, check_messages, encode_batch
from training.packing import Packer, collate

STATE_VERSION = 1
HUB_PREFIX = "hf://datasets/"
ChatFormat = Literal[FORMATS]
Positive = Annotated[int, Field(ge=1)]


@dataclass
class DataConfig:
    """What the run reads and how it packs it (the `data` section of a training config; its values are checked by
    schemas.config, as annotated)."""

    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    path: str = ""
    """Required: a local dataset version (the folder with data/), a glob of Parquet files, or
    hf://datasets/<org>/<name>@<revision>."""
    split: str = "train"
    """The split to read."""
    config: str | None = None
    """For versions laid out as data/<config>/<split>-*.parquet: null or all reads every config, else the configs
    named (comma-separated folder names or globs: zh,en or deu_Latn or *_*)."""
    messages_column: str = "messages"
    """Column of the chat messages."""
    chat_format: ChatFormat = "auto"
    """auto (the tokenizer's chat template), bayling-llama2 or bayling-llama3."""
    max_length: Literal["truncate", "drop"] = "truncate"
    """Rows longer than seq_len are truncated or dropped (both counted in stats())."""
    shuffle: bool = True
    """Shuffle the rows."""
    shuffle_window: Positive = 10_000
    """Rows shuffled together within a rank."""
    pack_buffer: Positive = 256
    """Rows the packer chooses from."""
    epochs: Positive | None = None
    """Passes over the data; null: repeat for ever (the trainer stops after its steps)."""
    encode_batch: Positive = 512
    """Rows formatted and tokenized together."""
    workers: Annotated[int, Field(ge=0)] = 0
    """Processes that format and tokenize rows (in order, so the batches do not depend on it); 0: in the training
    process, where a fast tokenizer still spreads each batch over its own threads."""

    def validate(self) -> None:
        """What a complete config needs beyond its values' types and ranges."""
        if not self.path:
            raise ValueError("data.path: required (a dataset version folder, a Parquet glob, or hf://datasets/org/name@revision)")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DataConfig":
        config = check(cls, values, prefix=("data",))
        config.validate()
        return config


def build_batches(
    data_cfg: DataConfig, tokenizer: Any, rank: int, world_size: int, seed: int, seq_len: int, micro_batch_size: int
) -> "PackedBatches":
    """An iterator of packed batches for one rank (see `PackedBatches`)."""
    return PackedBatches(data_cfg, tokenizer, rank, world_size, seed, seq_len, micro_batch_size)


def is_url(path) -> bool:
    """Whether `path` is a URL for fsspec (s3://, gs://, memory://...) rather than a local path."""
    return isinstance(path, str) and "://" in path


def parquet_file(file: Path | str) -> pq.ParquetFile:
    """A Parquet file on local disk, or at a URL read through fsspec (credentials and endpoint from the usual
    environment: AWS_*, AWS_ENDPOINT_URL, ...)."""
    if is_url(file):
        import fsspec

        return pq.ParquetFile(fsspec.open(file, "rb").open())
    return pq.ParquetFile(file)


def resolve_files(data_cfg: DataConfig) -> list[Path] | list[str]:
    """The Parquet files of the split, sorted: local Paths, or URLs for a version on object storage (s3://...); a
    Hub dataset is fetched into the local cache first."""
    path = data_cfg.path
    if path.startswith("hf://"):
        path = str(_hub_snapshot(path, data_cfg))
    if is_url(path):
        return _resolve_urls(path, data_cfg)
    if any(char in path for char in "*?[") or path.endswith(".parquet"):
        files = sorted(Path(p) for p in glob.glob(path))
        if not files:
            raise ValueError(f"data.path: no file matches {path}")
        return files
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"data.path: {path} is not a folder, a Parquet file or glob, or hf://datasets/org/name@revision")
    files: set[Path] = set()
    for pattern in _split_globs(data_cfg):
        found = set(root.glob(pattern))
        if not found and data_cfg.config not in (None, "all"):
            configs = sorted({p.parent.name for p in root.glob(f"data/*/{data_cfg.split}-*.parquet")})
            raise ValueError(f"data.config: no {data_cfg.split} files match {root}/{pattern}; configs found: {', '.join(configs) or 'none'}")
        files |= found
    if not files:
        raise ValueError(f"data.split: no {data_cfg.split}-*.parquet under {root}/data/ or {root}/data/<config>/")
    return sorted(files)


def _resolve_urls(url: str, data_cfg: DataConfig) -> list[str]:
    """resolve_files for a URL: the same globs, listed through fsspec."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    try:
        if any(char in root for char in "*?[") or root.endswith(".parquet"):
            files = sorted(fs.unstrip_protocol(p) for p in fs.glob(root))
            if not files:
                raise ValueError(f"data.path: no file matches {url}")
            return files
        if not fs.isdir(root):
            raise ValueError(f"data.path: {url} is not a folder, a Parquet file or glob")
        root = root.rstrip("/")
        files: set[str] = set()
        for pattern in _split_globs(data_cfg):
            found = set(fs.glob(f"{root}/{pattern}"))
            if not found and data_cfg.config not in (None, "all"):
                configs = sorted({p.rsplit("/", 2)[-2] for p in fs.glob(f"{root}/data/*/{data_cfg.split}-*.parquet")})
                raise ValueError(f"data.config: no {data_cfg.split} files match {url.rstrip('/')}/{pattern}; configs found: {', '.join(configs) or 'none'}")
            files |= found
    except OSError as error:  # no such bucket, no credentials, the endpoint down
        raise ValueError(f"data.path: {url}: {type(error).__name__}: {error}") from error
    if not files:
        raise ValueError(f"data.split: no {data_cfg.split}-*.parquet under {url.rstrip('/')}/data/ or {url.rstrip('/')}/data/<config>/")
    return sorted(fs.unstrip_protocol(p) for p in files)


def _split_globs(data_cfg: DataConfig) -> list[str]:
    """Where the split's files are: data/<split>-*.parquet and data/<config>/<split>-*.parquet for every config
    (config null or "all"), or for the configs named (comma-separated folder names or globs, e.g. "zh,en" or
    "*_*" for the translation configs of a version whose configs are FLORES-200 codes)."""
    name = f"{data_cfg.split}-*.parquet"
    if data_cfg.config in (None, "all"):
        return [f"data/{name}", f"data/*/{name}"]
    return [f"data/{config.strip()}/{name}" for config in data_cfg.config.split(",") if config.strip()]


def _hub_snapshot(url: str, data_cfg: DataConfig) -> Path:
    match = re.fullmatch(r"hf://datasets/([\w.-]+/[\w.-]+)@([\w./-]+)", url)
    if not match:
        raise ValueError(f"data.path: {url!r}: expected hf://datasets/<org>/<name>@<revision> (a tag or commit, so the rows are pinned)")
    from huggingface_hub import snapshot_download

    repo_id, revision = match.groups()
    # Only this split's files; huggingface_hub finds them in its cache when offline (HF_HUB_OFFLINE=1).
    return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=_split_globs(data_cfg)))


class PackedBatches:
    """Batches of `micro_batch_size` packed sequences for one rank: dicts of tensors `input_ids`, `labels`,
    `position_ids` [B, seq_len], `cu_seqlens` and `max_seqlen` (see `training.packing.collate`)."""

    def __init__(self, data_cfg: DataConfig, tokenizer: Any, rank: int, world_size: int, seed: int, seq_len: int, micro_batch_size: int):
        data_cfg.validate()
        if not 0 <= rank < world_size:
            raise ValueError(f"data: rank {rank} is not in [0, {world_size})")
        if micro_batch_size < 1:
            raise ValueError(f"data: micro_batch_size must be >= 1, got {micro_batch_size}")
        self.cfg, self.tokenizer = data_cfg, tokenizer
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.seq_len, self.micro_batch_size = seq_len, micro_batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self.pad_id is None:
            raise ValueError("data: the tokenizer has neither a pad token nor an EOS token to pad with")
        self.files = resolve_files(data_cfg)
        self._units = self._row_groups()  # (file index, row group, first row in file, rows)
        self.total_rows = sum(unit[3] for unit in self._units)
        if self.total_rows < world_size:
            raise ValueError(f"data: {self.total_rows} rows in the {data_cfg.split} split, fewer than the {world_size} ranks")
        self.packer = Packer(seq_len, data_cfg.pack_buffer)
        self.epoch = 0
        self.position = 0  # rows of this rank's part of the epoch already given to the packer
        self._stats = dict.fromkeys(
            ("rows_read", "rows_packed", "truncated", "dropped_too_long", "dropped_no_trained_tokens", "sequences",
             "real_tokens", "trained_tokens"), 0)  # fmt: skip
        self._stream: Iterator[dict[str, torch.Tensor]] | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._last_group: tuple[tuple[int, int] | None, Any] = (None, None)

    def _row_groups(self) -> list[tuple[int, int, int, int]]:
        units = []
        for i, file in enumerate(self.files):
            try:
                metadata = parquet_file(file).metadata
            except Exception as error:
                raise ValueError(f"{file}: not a readable Parquet file ({error})") from error
            if self.cfg.messages_column not in metadata.schema.to_arrow_schema().names:
                raise ValueError(f"{file}: no column {self.cfg.messages_column!r} (data.messages_column)")
            first = 0
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                if rows:
                    units.append((i, group, first, rows))
                first += rows
        return units

    # -- the row order -------------------------------------------------------------------------------------
    def _epoch_units(self, epoch: int) -> list[tuple[int, int, int, int]]:
        if not self.cfg.shuffle:
            return self._units
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self._units))
        return [self._units[k] for k in order]

    def rank_rows(self, epoch: int) -> tuple[list[tuple[int, int, int, int]], int, int]:
        """This rank's part of the epoch: the ordered row groups, and the [start, stop) of its rows in them."""
        start = self.total_rows * self.rank // self.world_size
        stop = self.total_rows * (self.rank + 1) // self.world_size
        return self._epoch_units(epoch), start, stop

    def _read_window(self, epoch: int, window: int) -> list[tuple[Any, int, int]]:
        """The rows of one shuffle window: (messages, file index, row in file), in shuffled order."""
        units, start, stop = self.rank_rows(epoch)
        lo = start + window * self.cfg.shuffle_window
        hi = min(stop, lo + self.cfg.shuffle_window)
        rows: list[tuple[Any, int, int]] = []
        offset = 0  # index of the unit's first row in the epoch's sequence
        for file_index, group, first, count in units:
            if offset + count > lo and offset < hi:
                a, b = max(lo - offset, 0), min(hi - offset, count)
                messages = self._row_group(file_index, group).slice(a, b - a).to_pylist()
                rows.extend((m, file_index, first + a + k) for k, m in enumerate(messages))
            offset += count
            if offset >= hi:
                break
        if self.cfg.shuffle:
            order = np.random.default_rng([self.seed, epoch, self.rank, window]).permutation(len(rows))
            rows = [rows[k] for k in order]
        return rows

    def _row_group(self, file_index: int, group: int) -> Any:
        """The messages of one row group; the last one is kept, as a window often ends inside it."""
        if self._last_group[0] != (file_index, group):
            column = parquet_file(self.files[file_index]).read_row_group(group, columns=[self.cfg.messages_column]).column(0)
            self._last_group = ((file_index, group), column)
        return self._last_group[1]

    def row_order(self, epoch: int) -> Iterator[tuple[Path, int]]:
        """(file, row in file) of every row this rank reads in `epoch`, in the order it reads them."""
        _, start, stop = self.rank_rows(epoch)
        for window in range(-(-(stop - start) // self.cfg.shuffle_window)):
            for _, file_index, row in self._read_window(epoch, window):
                yield self.files[file_index], row

    # -- iteration ----------------------------------------------------------------------------------------
    def __iter__(self) -> "PackedBatches":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self._stream is None:
            self._stream = self._batches()
        return next(self._stream)

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        sequences: list = []
        while self.cfg.epochs is None or self.epoch < self.cfg.epochs:
            _, start, stop = self.rank_rows(self.epoch)
            packed_before = self._stats["rows_packed"] if self.position == 0 else None
            window_rows = self.cfg.shuffle_window
            while self.position < stop - start:
                window = self.position // window_rows
                rows = self._read_window(self.epoch, window)
                skip = self.position - window * window_rows
                for input_ids, labels in self._encoded(rows[skip:]):
                    row, outcome = self._fit(input_ids, labels)
                    if row is None:
                        self._count_row(outcome)
                        continue
                    # Pop before adding, so a run resumed after a yield makes the same choices.
                    while self.packer.full():
                        sequences.append(self._pop())
                        if len(sequences) == self.micro_batch_size:
                            yield collate(sequences, self.seq_len, self.pad_id)
                            sequences = []
                    self.packer.add(*row)
                    self._count_row(outcome)  # only now: a state saved at the yield above reads this row again
            if packed_before is not None and self._stats["rows_packed"] == packed_before:
                raise ValueError(f"data: none of the {stop - start} rows of rank {self.rank} fits seq_len {self.seq_len} "
                                 f"with max_length {self.cfg.max_length!r} ({self.stats()})")  # fmt: skip
            self.epoch += 1
            self.position = 0
        while len(self.packer):
            sequences.append(self._pop())
            if len(sequences) == self.micro_batch_size:
                yield collate(sequences, self.seq_len, self.pad_id)
                sequences = []
        if sequences:  # the last batch keeps its shape; empty sequences are all padding and train nothing
            yield collate(sequences + [[]] * (self.micro_batch_size - len(sequences)), self.seq_len, self.pad_id)

    def _encoded(self, rows: list[tuple[Any, int, int]]) -> Iterator[tuple[list[int], list[int]]]:
        """(input_ids, labels) of the rows, in order, encoded `encode_batch` rows at a time, in this process or
        by the workers (a few chunks ahead)."""
        size = self.cfg.encode_batch
        chunks = (rows[k : k + size] for k in range(0, len(rows), size))
        if not self.cfg.workers:
            for chunk in chunks:
                yield from self._checked(chunk, lambda: encode_batch([m for m, _, _ in chunk], self.tokenizer, self.cfg.chat_format))
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.cfg.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(self.tokenizer, self.cfg.chat_format))  # fmt: skip
        pending: deque = deque()
        for chunk in itertools.chain(chunks, [None] * 2 * self.cfg.workers):
            if chunk is not None:
                pending.append((chunk, self._pool.submit(_encode_in_worker, [m for m, _, _ in chunk])))
            if pending and (chunk is None or len(pending) > 2 * self.cfg.workers):
                done, future = pending.popleft()
                yield from self._checked(done, lambda: _split_rows(future.result()))

    def _checked(self, chunk: list[tuple[Any, int, int]], encode: Any) -> list[tuple[list[int], list[int]]]:
        try:
            return encode()
        except ValueError:
            for messages, file_index, row in chunk:  # name the row that is wrong
                try:
                    check_messages(messages)
                    encode_batch([messages], self.tokenizer, self.cfg.chat_format)
                except ValueError as error:
                    raise ValueError(f"{self.files[file_index]}: row {row}: {error}") from error
            raise

    def close(self) -> None:
        """Stop the worker processes (they are started again when needed)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __del__(self) -> None:
        self.close()

    def _fit(self, input_ids: list[int], labels: list[int]) -> tuple[tuple[list[int], list[int]] | None, str]:
        """The row as it goes into a sequence (or None), and what happened to it: a key of the stats."""
        outcome = "rows_packed"
        if len(input_ids) > self.seq_len:
            if self.cfg.max_length == "drop":
                return None, "dropped_too_long"
            input_ids, labels = input_ids[: self.seq_len], labels[: self.seq_len]
            outcome = "truncated"
        if _trained(labels) == 0:
            return None, "dropped_no_trained_tokens"
        return (input_ids, labels), outcome

    def _count_row(self, outcome: str) -> None:
        self.position += 1
        self._stats["rows_read"] += 1
        if outcome == "truncated":
            self._stats["rows_packed"] += 1
        self._stats[outcome] += 1

    def _pop(self) -> list[tuple[list[int], list[int]]]:
        sequence = self.packer.pop()
        self._stats["sequences"] += 1
        self._stats["real_tokens"] += sum(len(ids) for ids, _ in sequence)
        self._stats["trained_tokens"] += sum(_trained(labels) for _, labels in sequence)
        return sequence

    # -- resuming and counting ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (JSON-serializable): where this rank is, to resume at the exact row."""
        return {
            "version": STATE_VERSION,
            "rank": self.rank,
            "world_size": self.world_size,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "config": asdict(self.cfg),
            "epoch": self.epoch,
            "position": self.position,
            "packer": self.packer.state_dict(),
            "stats": dict(self._stats),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"data state: version {state.get('version')!r}, expected {STATE_VERSION}")
        mine = self.state_dict()
        for key in ("rank", "world_size", "seed", "seq_len"):
            if state[key] != mine[key]:
                raise ValueError(f"data state: saved with {key}={state[key]}, now {mine[key]}: the rows would not be the same")
        changed = [k for k in ("path", "split", "config", "messages_column", "chat_format", "max_length", "shuffle", "shuffle_window", "pack_buffer")
                   if state["config"].get(k) != mine["config"][k]]  # fmt: skip
        if changed:
            raise ValueError(f"data state: data.{changed[0]} was {state['config'].get(changed[0])!r}, now {mine['config'][changed[0]]!r}")
        self.epoch, self.position = state["epoch"], state["position"]
        self.packer.load_state_dict(state["packer"])
        self._stats = dict(state["stats"])
        self._stream = None

    def stats(self) -> dict[str, Any]:
        """Counts so far on this rank; `packing_efficiency` is real tokens / token slots of the sequences."""
        stats: dict[str, Any] = dict(self._stats)
        slots = stats["sequences"] * self.seq_len
        stats["packing_efficiency"] = stats["real_tokens"] / slots if slots else 0.0
        stats["epoch"] = self.epoch
        return stats


_WORKER: dict[str, Any] = {}


def _start_worker(tokenizer: Any, style: str) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the workers are the parallelism
    _WORKER.update(tokenizer=tokenizer, style=style)


def _encode_in_worker(rows: list[Any]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The rows' lengths and their ids and labels end to end: two arrays pickle far faster than lists of ints."""
    encoded = encode_batch(rows, _WORKER["tokenizer"], _WORKER["style"])
    lengths = [len(ids) for ids, _ in encoded]
    ids = np.fromiter(itertools.chain.from_iterable(ids for ids, _ in encoded), np.int64, sum(lengths))
    labels = np.fromiter(itertools.chain.from_iterable(labels for _, labels in encoded), np.int64, sum(lengths))
    return lengths, ids, labels


def _split_rows(result: tuple[list[int], np.ndarray, np.ndarray]) -> list[tuple[list[int], list[int]]]:
    lengths, ids, labels = result
    ids_list, labels_list = ids.tolist(), labels.tolist()
    rows, start = [], 0
    for length in lengths:
        rows.append((ids_list[start : start + length], labels_list[start : start + length]))
        start += length
    return rows


def _trained(labels: list[int]) -> int:
    """Trained tokens of a row; its first label never is (packing masks it, see training.packing.collate)."""
    return len(labels) - 1 - labels.count(IGNORE_INDEX) + (labels[0] == IGNORE_INDEX)
