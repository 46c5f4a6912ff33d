"""The last steps: merge every language's instructions into the published layout, then the manifest and card.

    <output>/data/<split>-NNNNN-of-NNNNN.parquet   instructions; a row's shard is a hash of its id, rows sorted by
                                                   id within a shard (the same whatever the task count)
    <output>/removed/<step>.parquet                 every dropped row with the step and reason
    <output>/manifest.json, README.md, LICENSE      provenance and counts; the dataset card

Each instruction file is split by shard once (SplitShards), then each shard is built by one task from its parts,
so memory is bounded by the shard size.
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
from pipelines.steps.base import AtomicParquetWriter, write_parquet_atomic
from schemas.records import INSTRUCTION_SCHEMA, SPLITS


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def shard_counts(work_dir: Path, rows_per_shard: int) -> dict[str, int]:
    counts = {}
    for split in SPLITS:
        rows = sum(pq.read_metadata(f).num_rows for f in (work_dir / "instructions" / split).glob("*.parquet"))
        counts[split] = max(1, -(-rows // rows_per_shard))
    return counts


def shard_of(ids: pl.Expr, count: int) -> pl.Expr:
    return ids.str.slice(0, 12).str.to_integer(base=16) % count


class SplitShards(PipelineStep):
    """Each instruction file is read once, by one task, and its rows split by shard into
    `shard_parts/<split>/<shard>/<file>.parquet`: WriteShards then reads only its shard's rows (a shard that
    filtered every input file read all rows once per shard)."""

    name = "split_shards"
    type = "💽 - WRITER"

    def __init__(self, work_dir: Path, rows_per_shard: int):
        super().__init__()
        self.work_dir = Path(work_dir)
        self.rows_per_shard = rows_per_shard

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        counts = shard_counts(self.work_dir, self.rows_per_shard)
        inputs = [(split, path) for split in SPLITS for path in sorted((self.work_dir / "instructions" / split).glob("*.parquet"))]
        for split, path in inputs[rank::world_size]:
            writers: dict[int, AtomicParquetWriter] = {}
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                shards = pl.from_arrow(batch.column("id")).to_frame().select(shard_of(pl.col("id"), counts[split])).to_series()
                for shard in shards.unique().sort().to_list():
                    if shard not in writers:
                        part = self.work_dir / "shard_parts" / split / f"{shard:05d}" / f"{path.stem}.parquet"
                        writers[shard] = AtomicParquetWriter(part, batch.schema)
                    writers[shard].write(pa.Table.from_batches([batch.filter((shards == shard).to_arrow())]))
            for writer in writers.values():
                writer.close()
        return
        yield


class WriteShards(PipelineStep):
    name = "write_shards"
    type = "💽 - WRITER"

    def __init__(self, work_dir: Path, output_dir: Path, rows_per_shard: int):
        super().__init__()
        self.work_dir = Path(work_dir)
        self.output_dir = Path(output_dir)
        self.rows_per_shard = rows_per_shard

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        counts = shard_counts(self.work_dir, self.rows_per_shard)
        jobs = [(split, i) for split in SPLITS for i in range(counts[split])]
        for split, index in jobs[rank::world_size]:
            paths = sorted((self.work_dir / "shard_parts" / split / f"{index:05d}").glob("*.parquet"))
            rows = pa.concat_tables([pq.read_table(p) for p in paths]).sort_by("id") if paths else INSTRUCTION_SCHEMA.empty_table()
            write_parquet_atomic(self.output_dir / "data" / shard_name(split, index, counts[split]), rows.cast(INSTRUCTION_SCHEMA), row_group_size=10_000)
            self.stat_update(split, value=rows.num_rows)
        return
        yield


class WriteManifest(PipelineStep):
    name = "write_manifest"
    type = "📦 - FINALIZE"

    def __init__(self, work_dir: Path, output_dir: Path, manifest_base: dict, license_text: str = ""):
        super().__init__()
        self.work_dir = Path(work_dir)
        self.output_dir = Path(output_dir)
        self.manifest_base = manifest_base
        self.license_text = license_text

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        files, counts = [], {"split": {}, "language": collections.Counter(), "direction": collections.Counter()}
        for split in SPLITS:
            paths = sorted((self.output_dir / "data").glob(f"{split}-*.parquet"))
            frame = pl.read_parquet(paths, columns=["src_lang", "tgt_lang", "pivot", "task"]) if paths else pl.DataFrame()
            counts["split"][split] = frame.height
            for path in paths:
                files.append({"path": str(path.relative_to(self.output_dir)), "sha256": sha256_file(path), "rows": pq.read_metadata(path).num_rows})
            if not frame.height:
                continue
            translation = frame.filter(pl.col("task") == "translation")
            for src, tgt, n in translation.group_by("src_lang", "tgt_lang").len().iter_rows():
                counts["direction"][f"{src}->{tgt}"] += n
            language = pl.when(pl.col("src_lang") == pl.col("pivot")).then("tgt_lang").otherwise("src_lang")
            for lang, n in translation.select(lang=language).group_by("lang").len().iter_rows():
                counts["language"][lang] += n
            for task, lang, n in frame.filter(pl.col("task") != "translation").group_by("task", "src_lang").len().iter_rows():
                counts["direction"][f"{task}:{lang}"] += n

        removed_counts: dict[str, dict[str, int]] = {}
        for step_dir in sorted(p for p in (self.work_dir / "removed").glob("*") if p.is_dir()):
            parts = [pl.read_parquet(f) for f in sorted(step_dir.glob("*.parquet"))]
            removed = pl.concat(parts, how="vertical_relaxed").sort("id") if parts else pl.DataFrame()
            path = self.output_dir / "removed" / f"{step_dir.name}.parquet"
            write_parquet_atomic(path, removed.to_arrow(), row_group_size=10_000)
            files.append({"path": str(path.relative_to(self.output_dir)), "sha256": sha256_file(path), "rows": removed.height})
            if removed.height:
                removed_counts[step_dir.name] = dict(removed.group_by("reason").len().sort("reason").iter_rows())

        manifest = {
            **self.manifest_base,
            "format_version": FORMAT_VERSION,
            "rows_per_split": counts["split"],
            "rows_per_language": dict(sorted(counts["language"].items())),
            "rows_per_direction": dict(sorted(counts["direction"].items())),
            "removed": removed_counts,
            "decontamination": {
                reason.removeprefix("overlap:"): n
                for reasons in removed_counts.values() for reason, n in reasons.items() if reason.startswith("overlap:")
            },  # fmt: skip
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
