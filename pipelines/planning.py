"""The driver's planning between stages: what it computes once, from what the earlier stages wrote, so that every
task of the next stage works from the same plan and the rows do not depend on the task count.

- before `chat`: the instruction sources' chunks (`chat_chunks`), which the tasks share out;
- before `mix`: the train rows each language and the zh/en part can give (`supply`), the budgets (`plan`), and the
  largest selection key the zh/en budgets take (`chat_cutoffs`);
- before `shards`: the shard count of every config and split (`shard_plan`, from `parse_size` of the recipe's
  `shard_size`).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from pipelines.mixture import split_total, temperature_budgets
from schemas.records import SPLITS

CHAT_NAMES = {"zh": "zho_Hans", "en": "eng_Latn"}  # the zh/en part's budget and config names -> their language
CHAT_CONFIGS = {lang: name for name, lang in CHAT_NAMES.items()}  # the language of chat-<lang>*.parquet -> config


def chat_chunks(sources: list) -> list[tuple[int, tuple]]:
    """Every instruction source's chunks, in source order: (source index, chunk). Computed once, by the driver."""
    return [(number, chunk) for number, source in enumerate(sources) for chunk in source.chunks()]


def supply(pairs_dir: Path, chat_dir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Train instructions available: per language (two per pair), and per zh/en chat part; from file metadata."""
    cross = {}
    for path in sorted(Path(pairs_dir).glob("*.parquet")):
        train = pl.scan_parquet(path).filter(pl.col("split") == "train").select(pl.len()).collect().item()
        cross[path.stem] = 2 * train
    chat = {name: sum(pq.read_metadata(f).num_rows for f in chat_files(chat_dir, lang)) for name, lang in CHAT_NAMES.items()}
    return cross, chat


def chat_files(chat_dir: Path, lang: str) -> list[Path]:
    """The zh/en part of one language: a file per dedup bucket (see pipelines.chat)."""
    return sorted((Path(chat_dir) / lang).glob("*.parquet"))


def chat_cutoffs(chat_dir: Path, budgets: dict) -> dict[str, str]:
    """For zh and en, the largest selection key among the rows the budget takes (empty: none), computed once so
    that the mix tasks can each select from their own files. The keys were computed by the chat_dedup tasks: here,
    in the driver, hashing every row's id again would be one process's work over millions of rows."""
    cutoffs = {}
    for name, lang in CHAT_NAMES.items():
        files = chat_files(chat_dir, lang)
        keys = pl.read_parquet(files, columns=["selection_key"])["selection_key"].sort() if files and budgets[name] else pl.Series([], dtype=pl.String)
        cutoffs[name] = keys[min(budgets[name], len(keys)) - 1] if len(keys) else ""
    return cutoffs


def plan(mixture, cross_supply: dict[str, int], chat_supply: dict[str, int]) -> dict:
    """Train budgets: {"cross_lingual": {lang: n}, "zh": n, "en": n}; None budgets mean "every row"."""
    if mixture is None:
        return {"cross_lingual": dict(cross_supply), **chat_supply}
    parts = split_total(mixture.total, mixture.shares)
    for name, lang in CHAT_NAMES.items():
        if parts.get(name, 0) > chat_supply[name]:
            raise ValueError(f"the mixture needs {parts[name]} {lang} instructions ({mixture.shares[name]:.1%} of {mixture.total}), "
                             f"but the instruction sources give {chat_supply[name]} after dedup and decontamination")  # fmt: skip
    cross = temperature_budgets(cross_supply, parts.get("cross_lingual", 0), mixture.temperature, mixture.cap_per_language, mixture.floor_per_language)
    return {"cross_lingual": cross, "zh": parts.get("zh", 0), "en": parts.get("en", 0)}


def parse_size(value: str | int, where: str = "shard_size") -> int:
    """'256MB', '1GB', '512KiB' or a number of bytes."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in units or float(match.group(1)) <= 0:
        raise ValueError(f"{where}: expected a size like 256MB, 1GB or a number of bytes, got {value!r}")
    return int(float(match.group(1)) * units[match.group(2).upper()])


def config_of(name: str) -> str:
    """The config a file of the mixture (`mixture_files`) belongs to, by its name."""
    if name.startswith("chat-"):
        return CHAT_CONFIGS[name.removeprefix("chat-").split("-")[0]]
    return name


def uncompressed_bytes(meta: pq.FileMetaData) -> int:
    """What a shard plan counts of a mixture file: its uncompressed Parquet size (like `datasets`' max_shard_size,
    measured before compression), read from the file's metadata."""
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def mixture_files(work_dir: Path, split: str) -> list[Path]:
    """The mixture's files of one split: the zh/en parts (`instructions/<split>/chat-*.parquet`) and each language's
    rows, written as its shard (`ready/<split>/<lang>.parquet`)."""
    return sorted([*(Path(work_dir) / "instructions" / split).glob("*.parquet"), *(Path(work_dir) / "ready" / split).glob("*.parquet")])


def shard_plan(work_dir: Path, shard_bytes: int) -> list[dict]:
    """One job per (config, split) with rows: its input files and shard count, from the `uncompressed_bytes` of the
    mixture's files; those files are each written by one task, so the plan is the same for any task count."""
    jobs: dict[tuple[str, str], dict] = {}
    for split in SPLITS:
        for path in mixture_files(work_dir, split):
            meta = pq.read_metadata(path)
            if not meta.num_rows:
                continue
            job = jobs.setdefault((config_of(path.stem), split), {"config": config_of(path.stem), "split": split, "files": [], "rows": 0, "bytes": 0})
            job["files"].append(str(path))
            job["rows"] += meta.num_rows
            job["bytes"] += uncompressed_bytes(meta)
    plan = []
    for job in sorted(jobs.values(), key=lambda j: (j["config"], SPLITS.index(j["split"]))):
        plan.append({**job, "shards": max(1, -(-job["bytes"] // shard_bytes))})
    return plan
