"""The dataset card (README.md): YAML front matter the Hub and `datasets.load_dataset` read, and a summary."""

from __future__ import annotations

import os
from pathlib import Path

import langcodes
import yaml

from schemas.language_codes import language_name
from schemas.records import SPLITS

CARD_NAME = "README.md"


def size_category(rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]  # fmt: skip
    return next((name for bound, name in bounds if rows < bound), "n>1T")


def hub_language_codes(flores_codes) -> list[str]:
    """The Hub's `language:` takes ISO 639-1 where a language has one, else ISO 639-3."""
    return sorted({langcodes.standardize_tag(code.split("_")[0]) for code in flores_codes})


def front_matter(manifest: dict) -> dict:
    splits = [s for s in SPLITS if manifest["rows_per_split"].get(s)]
    languages = set(manifest["rows_per_language"]) | {"eng_Latn", "zho_Hans"}
    return {
        "pretty_name": manifest["name"],
        "language": hub_language_codes(languages),
        "license": "other",
        "license_name": "udhr-and-mit",
        "license_link": "LICENSE",
        "multilinguality": "multilingual",
        "size_categories": [size_category(sum(manifest["rows_per_split"].values()))],
        "task_categories": ["translation", "text-generation"],
        "tags": ["bayling", "cross-lingual", "instruction-tuning", "flores-200-codes"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits],
            }
        ],
    }


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def card_text(manifest: dict) -> str:
    args = manifest["arguments"]
    per_language = manifest["rows_per_language"]
    direction = manifest["rows_per_direction"]
    script_only = set(manifest["language_id"]["checked_by_script_only"])
    language_rows = [
        [code, language_name(code), per_language[code],
         direction.get(f"{code}->eng_Latn", 0), direction.get(f"eng_Latn->{code}", 0),
         direction.get(f"{code}->zho_Hans", 0), direction.get(f"zho_Hans->{code}", 0),
         "script only" if code in script_only else "fastText + script"]
        for code in sorted(per_language)
    ]  # fmt: skip
    removed_rows = [[stage, reason, n] for stage, reasons in manifest["removed"].items() for reason, n in reasons.items()]
    sources = "\n".join(f"- **{s['name']}** {s['version']} ({s['origin']}): {s['license']}" for s in manifest["sources"])
    return f"""
# {manifest["name"]}

Cross-lingual instructions in the way of BayLing 2: every language X is linked to both pivots, English
(`eng_Latn`) and Chinese (`zho_Hans`), in both directions (X->pivot, pivot->X). Requests are phrased in English
for the English pivot and in Chinese for the Chinese pivot. Language codes are FLORES-200 style.

{len(per_language)} languages besides the pivots, {sum(manifest["rows_per_split"].values())} rows.

## Splits

{_table(["split", "rows"], [[s, n] for s, n in manifest["rows_per_split"].items()])}

The validation and test splits hold articles 25-27 and 28-30 of the Universal Declaration of Human Rights in
every language; no text of theirs is in the train split.

## Loading

```python
from datasets import load_dataset

rows = load_dataset("<this folder or repo id>", split="train")
print(rows[0]["messages"])
```

Each row has `messages` (a user request and the assistant's translation) and `id`, `task`, `src_lang`,
`tgt_lang`, `instruction_lang`, `pivot`, `source`, `source_id`, `template_id`, `split`.

## Sources and licenses

{sources}

## Filtering

Every dropped pair is in `removed/<step>.parquet` with its reason.

{_table(["step", "reason", "pairs"], removed_rows)}

Language identification: fastText models {", ".join(f"`{m['name']}`" for m in manifest["language_id"]["models"])}
(asked in this order, per-language thresholds) and the Unicode script of each side; {len(script_only)} languages
no model has a label for were checked by their script only.

## Rows per language

<details><summary>{len(language_rows)} languages</summary>

{_table(["code", "language", "rows", "X->eng", "eng->X", "X->zho", "zho->X", "language check"], language_rows)}

</details>

## Reproducing

```bash
python pipelines/build.py {args.get("command_line", "")}
```

Code version {manifest["code_version"]["package"]} (git {manifest["code_version"]["git_commit"] or "unknown"}).
"""


def write_card(folder: Path, manifest: dict) -> Path:
    path = Path(folder) / CARD_NAME
    text = "---\n" + yaml.safe_dump(front_matter(manifest), sort_keys=False, allow_unicode=True) + "---\n" + card_text(manifest)
    tmp = path.with_name(f".{CARD_NAME}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
