"""The zh/en instruction part: read the recipe's instruction sources, normalize, deduplicate, decontaminate, and
write `chat/<lang>.parquet` for the mixture. Dropped rows go to `removed/chat_<reason>.parquet`."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep

from pipelines.steps.base import AtomicParquetWriter, write_parquet_atomic
from pipelines.steps.decontaminate import eval_indexes, fold
from schemas.records import CHAT_SCHEMA, stable_id

REMOVED_CHAT_SCHEMA = pa.schema([*CHAT_SCHEMA, pa.field("stage", pa.string()), pa.field("reason", pa.string()), pa.field("detail", pa.string())])


def _clean(content: str) -> str:
    """NFC and no control characters; spacing kept (code in answers depends on it)."""
    import unicodedata

    text = unicodedata.normalize("NFC", content)
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc").strip()


class BuildChat(PipelineStep):
    name = "chat"
    type = "💬 - CHAT"

    def __init__(self, sources: list, work_dir: Path, eval_sets: list[str], ngram: int):
        super().__init__()
        self.sources = sources
        self.work_dir = Path(work_dir)
        self.eval_sets = tuple(eval_sets)
        self.ngram = ngram

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if rank != 0:
            return
        indexes = eval_indexes(self.eval_sets, self.ngram)
        seen: dict[str, str] = {}
        kept: dict[str, list[dict]] = {}
        removed = AtomicParquetWriter(self.work_dir / "removed" / "chat" / "00000.parquet", REMOVED_CHAT_SCHEMA)
        dropped = []
        for source in self.sources:
            for batch in source.read():
                for row in batch.to_pylist():
                    row["messages"] = [{"role": m["role"], "content": _clean(m["content"])} for m in row["messages"]]
                    key = stable_id(row["lang"], json.dumps([[m["role"], fold(m["content"])] for m in row["messages"]], ensure_ascii=False))
                    reason = detail = None
                    if not row["messages"] or not any(m["role"] == "assistant" and m["content"] for m in row["messages"]):
                        reason, detail = "no_answer", "no non-empty assistant turn"
                    elif key in seen:
                        reason, detail = "duplicate", f"same instruction as {seen[key]}"
                    else:
                        for index in indexes:
                            kind = next((k for m in row["messages"] if (k := index.overlap(m["content"]))), None)
                            if kind:
                                reason, detail = f"overlap:{index.name}", f"a turn {kind} an evaluation text of {index.name}"
                                break
                    if reason:
                        dropped.append({**row, "stage": "chat", "reason": reason, "detail": detail})
                        self.stat_update(reason)
                        continue
                    seen[key] = row["id"]
                    kept.setdefault(row["lang"], []).append(row)
        if dropped:
            removed.write(pa.Table.from_pylist(dropped, schema=REMOVED_CHAT_SCHEMA))
        removed.close()
        for lang, rows in kept.items():
            write_parquet_atomic(self.work_dir / "chat" / f"{lang}.parquet", pa.Table.from_pylist(rows, schema=CHAT_SCHEMA))
            self.stat_update(lang, value=len(rows))
        return
        yield

