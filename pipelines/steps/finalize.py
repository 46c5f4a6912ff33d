"""The last step: merge every task's output into the published layout, then write the manifest and the card.

    <output>/data/<split>-NNNNN-of-NNNNN.parquet   instructions, sorted by id (the same whatever the task count)
    <output>/removed/<step>.parquet                 every dropped pair with the step and reason
    <output>/manifest.json, <output>/README.md      provenance and counts; the dataset card
"""

from __future__ import annotations

import collections
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from pipelines.card import write_card
from pipelines.manifest import FORMAT_VERSION, sha256_file, write_manifest
from pipelines.steps.base import write_parquet_atomic
from schemas.records import INSTRUCTION_SCHEMA, REMOVED_SCHEMA, SPLITS


def _read_all(files: list[Path], schema: pa.Schema) -> pa.Table:
    tables = [pq.read_table(f, schema=schema) for f in sorted(files)]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


class FinalizeBuild(PipelineStep):
    name = "finalize"
    type = "📦 - FINALIZE"

    def __init__(self, work_dir: Path, output_dir: Path, manifest_base: dict, rows_per_shard: int = 250_000, license_text: str = ""):
        super().__init__()
        self.license_text = license_text
        self.work_dir = Path(work_dir)
        self.output_dir = Path(output_dir)
        self.manifest_base = manifest_base
        self.rows_per_shard = rows_per_shard

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        files, counts = [], {"split": {}, "language": collections.Counter(), "direction": collections.Counter()}
        for split in SPLITS:
            rows = _read_all(list((self.work_dir / "instructions" / split).glob("*.parquet")), INSTRUCTION_SCHEMA)
            rows = rows.sort_by("id")
            counts["split"][split] = rows.num_rows
            frame = pl.from_arrow(rows.select(["src_lang", "tgt_lang", "pivot"]))
            for src, tgt, n in frame.group_by("src_lang", "tgt_lang").len().iter_rows():
                counts["direction"][f"{src}->{tgt}"] += n
            for lang, n in (
                frame.select(lang=pl.when(pl.col("src_lang") == pl.col("pivot")).then("tgt_lang").otherwise("src_lang"))
                .group_by("lang")
                .len()
                .iter_rows()
            ):
                counts["language"][lang] += n
            shards = max(1, -(-rows.num_rows // self.rows_per_shard))
            for i in range(shards):
                path = self.output_dir / "data" / shard_name(split, i, shards)
                part = rows.slice(i * self.rows_per_shard, self.rows_per_shard)
                write_parquet_atomic(path, part, row_group_size=10_000)
                files.append({"path": str(path.relative_to(self.output_dir)), "sha256": sha256_file(path), "rows": part.num_rows})
                self.stat_update(split, value=part.num_rows)

        removed_counts: dict[str, dict[str, int]] = {}
        for step_dir in sorted(p for p in (self.work_dir / "removed").glob("*") if p.is_dir()):
            removed = _read_all(list(step_dir.glob("*.parquet")), REMOVED_SCHEMA).sort_by("id")
            path = self.output_dir / "removed" / f"{step_dir.name}.parquet"
            write_parquet_atomic(path, removed, row_group_size=10_000)
            files.append({"path": str(path.relative_to(self.output_dir)), "sha256": sha256_file(path), "rows": removed.num_rows})
            reasons = pl.from_arrow(removed.select(["reason"])).group_by("reason").len().sort("reason")
            removed_counts[step_dir.name] = dict(reasons.iter_rows())

        manifest = {
            **self.manifest_base,
            "format_version": FORMAT_VERSION,
            "rows_per_split": counts["split"],
            "rows_per_language": dict(sorted(counts["language"].items())),
            "rows_per_direction": dict(sorted(counts["direction"].items())),
            "removed": removed_counts,
            "files": files,
        }
        license_path = self.output_dir / "LICENSE"
        license_path.write_text(self.license_text, encoding="utf-8")
        card_path = write_card(self.output_dir, manifest)
        for path in (license_path, card_path):
            manifest["files"].append({"path": path.name, "sha256": sha256_file(path), "rows": 0})
        write_manifest(self.output_dir, manifest)  # last: its presence marks a finished build
        return
        yield
