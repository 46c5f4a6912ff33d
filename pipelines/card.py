"""The dataset card (README.md) and its chart (rows.png): YAML front matter the Hub and `datasets.load_dataset`
read (languages, license, size, one config per task family and per language), and a summary for readers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import langcodes
import yaml

from schemas.language_codes import PIVOTS, language_name
from schemas.records import SPLITS

CARD_NAME = "README.md"
CHART_NAME = "rows.png"
ALL, CROSS_LINGUAL = "all", "cross_lingual"
FAMILIES = {"zh": "zho_Hans", "en": "eng_Latn"}  # the general-instruction configs and their language
DIRECTIONS = ("{x}->eng_Latn", "eng_Latn->{x}", "{x}->zho_Hans", "zho_Hans->{x}")


def size_category(rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]  # fmt: skip
    return next((name for bound, name in bounds if rows < bound), "n>1T")


def hub_language_codes(flores_codes) -> list[str]:
    """The Hub's `language:` takes ISO 639-1 where a language has one, else ISO 639-3."""
    return sorted({langcodes.standardize_tag(code.split("_")[0]) for code in flores_codes})


def config_files(manifest: dict) -> dict[str, dict[str, str]]:
    """config -> split -> data_files pattern. Language and family configs are folders; `all` and `cross_lingual`
    are unions of folders (a FLORES-200 code is the only folder name with an underscore)."""
    per_config = manifest["rows_per_config"]
    union = {ALL: list(per_config), CROSS_LINGUAL: [c for c in per_config if c not in FAMILIES]}
    configs = {}
    for name, members in union.items():
        splits = [s for s in SPLITS if any(per_config[c].get(s) for c in members)]
        folder = "*" if name == ALL else "*_*"
        if splits:
            configs[name] = {s: f"data/{folder}/{s}-*.parquet" for s in splits}
    for name in sorted(per_config, key=lambda c: (c not in FAMILIES, c)):
        configs[name] = {s: f"data/{name}/{s}-*.parquet" for s in SPLITS if per_config[name].get(s)}
    return configs


def front_matter(manifest: dict) -> dict:
    languages = set(manifest["rows_per_language"]) | set(PIVOTS)
    return {
        "pretty_name": manifest["name"],
        "language": hub_language_codes(languages),
        "license": "other",
        "license_name": "per-source",
        "license_link": "LICENSE",
        "multilinguality": "multilingual",
        "size_categories": [size_category(sum(manifest["rows_per_split"].values()))],
        "task_categories": ["translation", "text-generation"],
        "tags": ["bayling", "cross-lingual", "instruction-tuning", "flores-200-codes", manifest["version"]],
        "configs": [
            {"config_name": name, "data_files": [{"split": s, "path": p} for s, p in splits.items()], **({"default": True} if name == ALL else {})}
            for name, splits in config_files(manifest).items()
        ],
    }


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_chart(path: Path, manifest: dict) -> Path:
    """Two bar charts: instructions per language (sorted, log scale) and per direction kind; of the manifest, reads
    only `rows_per_language` and `rows_per_direction`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_language = sorted(manifest["rows_per_language"].items(), key=lambda kv: (-kv[1], kv[0]))
    direction = manifest["rows_per_direction"]
    kinds = {d.format(x="X"): sum(n for key, n in direction.items() if _matches(key, d)) for d in DIRECTIONS}
    kinds.update({f"{family} instructions": direction.get(f"instruction:{lang}", 0) for family, lang in FAMILIES.items()})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    left.bar(range(len(per_language)), [n for _, n in per_language], width=1.0, color="#4c72b0")
    left.set_yscale("log")
    left.set_title(f"Instructions per language ({len(per_language)} languages, most to fewest)")
    step = max(1, len(per_language) // 12)
    left.set_xticks(range(0, len(per_language), step), [code for code, _ in per_language][::step], rotation=60, fontsize=7)
    right.barh(list(kinds), list(kinds.values()), color="#dd8452")
    right.set_title("Instructions per direction")
    right.invert_yaxis()
    fig.tight_layout()
    return save_chart(fig, path)


def save_chart(fig, path: Path) -> Path:
    """Write a matplotlib figure as a PNG under a temporary name, then move it into place."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})  # no version stamp: the same bytes each build
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _matches(key: str, pattern: str) -> bool:
    if ":" in key or "->" not in key:
        return False
    src, tgt = key.split("->")
    want_src, want_tgt = pattern.split("->")
    return (src == want_src or (want_src == "{x}" and src not in PIVOTS)) and (tgt == want_tgt or (want_tgt == "{x}" and tgt not in PIVOTS))


def card_text(manifest: dict, recipe_text: str = "", quality_section: str = "") -> str:
    """The card's Markdown; `quality_section` is the "Data quality" section (`pipelines.quality_report.card_section`)
    of a version that has a quality report."""
    configs = config_files(manifest)
    sections = [
        _summary_section(manifest),
        _configs_section(manifest, configs),
        _loading_section(configs, manifest["version"]),
        _sources_section(manifest),
        _filtering_section(manifest),
        quality_section,
        _rows_section(manifest),
        _reproducing_section(manifest, recipe_text),
    ]
    # Each section ends with a newline and the next starts after a blank line; an absent quality section leaves
    # an empty line of its own, as the published cards have it.
    return "\n" + "\n".join(sections)


def _summary_section(manifest: dict) -> str:
    version = manifest["version"]
    total = sum(manifest["rows_per_split"].values())
    return f"""# {manifest["name"]} ({version})

Cross-lingual instructions in the way of BayLing 2: every language X is linked to both pivots, English
(`eng_Latn`) and Chinese (`zho_Hans`), in both directions (X->pivot, pivot->X), with general instructions in
Chinese and English. Requests are phrased in English for the English pivot and in Chinese for the Chinese pivot.
Language codes are FLORES-200 style.

Version **{version}**, content hash `{manifest["content_hash"]}` (a sha256 over every data file's hash, see
`manifest.json`), {len(manifest["rows_per_language"])} languages besides the pivots, {total} rows.
"""


def _configs_section(manifest: dict, configs: dict) -> str:
    per_config = manifest["rows_per_config"]
    config_rows = [[f"`{name}`", *[sum(per_config[c].get(s, 0) for c in per_config if _in_config(c, name)) for s in SPLITS]] for name in configs]
    return f"""## Configs

`all` (the default) holds every row; `zh` and `en` the general instructions; `cross_lingual` every translation
instruction; and one config per language (its FLORES-200 code) its translation instructions to and from both
pivots. Every row is stored once, under `data/<config>/`; `all` and `cross_lingual` are unions of those folders.

{_table(["config", *SPLITS], config_rows)}
"""


def _loading_section(configs: dict, version: str) -> str:
    return f"""## Loading

```python
from datasets import load_dataset

{_loading_examples(configs, version)}
```

Replace `ORG/NAME` with the repository this card is in, or with the path of a local copy (then leave out
`revision`). Each row has `messages` (a user request and the assistant's answer) and `id`, `task`, `src_lang`,
`tgt_lang`, `instruction_lang`, `pivot`, `source`, `source_id`, `template_id`, `split`.
"""


def flagged(source: dict) -> bool:
    """Whether a manifest's source is marked non-commercial (its license forbids commercial use)."""
    return (source.get("details") or {}).get("noncommercial") == "true"


def _sources_section(manifest: dict) -> str:
    sources = [[s["name"], s["version"] or "-", s["origin"] or "-", (s["license"] or "not stated") + (" **(non-commercial)**" if flagged(s) else "")]
               for s in manifest["sources"]]  # fmt: skip
    noncommercial = [s["name"] for s in manifest["sources"] if flagged(s)]
    warning = (f"\n**Non-commercial sources**: {', '.join(noncommercial)}. Their rows may not be used commercially; rebuild with "
               "`--exclude-noncommercial` for a version without them.\n") if noncommercial else ""  # fmt: skip
    return f"""## Sources and licenses

Each row's `source` names where it came from; the license of each source applies to its rows (full texts in
`LICENSE`).
{warning}
{_table(["source", "version", "origin", "license"], sources)}
"""


def _filtering_section(manifest: dict) -> str:
    removed_rows = [[stage, reason, n] for stage, reasons in manifest["removed"].items() for reason, n in reasons.items()]
    args = manifest["arguments"]
    script_only = set(manifest["language_id"]["checked_by_script_only"])
    return f"""## Filtering

Every dropped pair or instruction is in `removed/<step>.parquet` with its reason.

{_table(["step", "reason", "rows"], removed_rows)}

Decontamination: a train row is dropped when a side equals, quotes whole, or shares a run of {_ngram(args)} words with a
text of an evaluation set:

{_table(["evaluation set", "origin", "version", "rows removed"], _eval_set_rows(manifest))}

Language identification: fastText models {", ".join(f"`{m['name']}`" for m in manifest["language_id"]["models"])}
(a side is dropped when a model is sure of another language, by per-language thresholds calibrated by text length)
and the Unicode script of each side; {len(script_only)} languages no model has a label for were checked by their script only.
"""


def _eval_set_rows(manifest: dict) -> list[list]:
    """The held-out UDHR articles, then every evaluation set of the recipe, with the train rows each removed."""
    removed_by_set = manifest["decontamination"]
    rows = [["udhr-heldout", "UDHR articles 25-30 of every language (this corpus's validation and test text)", "-", removed_by_set.get("udhr-heldout", 0)]]
    rows += [[e["name"], e["origin"], e.get("version") or e.get("sha256") or "-",
              f"not used: {e['skipped']}" if e.get("skipped") else removed_by_set.get(e["name"], 0)] for e in manifest["eval_sets"]]  # fmt: skip
    return rows


def _rows_section(manifest: dict) -> str:
    per_language = manifest["rows_per_language"]
    direction = manifest["rows_per_direction"]
    script_only = set(manifest["language_id"]["checked_by_script_only"])
    language_rows = [
        [code, language_name(code), per_language[code], *[direction.get(d.format(x=code), 0) for d in DIRECTIONS],
         "script only" if code in script_only else "fastText + script"]
        for code in sorted(per_language)
    ]  # fmt: skip
    return f"""## Rows per language and direction

![rows per language and direction]({CHART_NAME})

{_table(["split", "rows"], [[s, n] for s, n in manifest["rows_per_split"].items()])}

<details><summary>{len(language_rows)} languages</summary>

{_table(["code", "language", "rows", "X->eng", "eng->X", "X->zho", "zho->X", "language check"], language_rows)}

</details>
"""


def _reproducing_section(manifest: dict, recipe_text: str) -> str:
    return f"""## Reproducing

With the code at git commit `{manifest["code_version"]["git_commit"] or "unknown"}` (package
{manifest["code_version"]["package"]}) and the recipe of this version (`recipe.yaml`, below):

```bash
{manifest["arguments"].get("reproduce", "")}
```

```yaml
{recipe_text.strip()}
```

The result has the same content hash; `python pipelines/publish.py <version folder> --repo-id ORG/NAME` publishes it.
"""


def _ngram(arguments: dict) -> int:
    try:
        return json.loads(arguments["settings"])["decontamination"]["ngram"]
    except (KeyError, ValueError, TypeError):
        return 13  # the default, for a manifest whose arguments do not say


def _loading_examples(configs: dict, version: str) -> str:
    """One load_dataset line per kind of config this version has."""
    languages = [c for c in configs if c not in (ALL, CROSS_LINGUAL, *FAMILIES)]
    chosen = [ALL, *(c for c in (*FAMILIES, CROSS_LINGUAL) if c in configs), *languages[:1]]
    notes = {ALL: "every row (the default config)", "zh": "the Chinese general instructions", "en": "the English general instructions",
             CROSS_LINGUAL: "every translation instruction"}  # fmt: skip
    variable = {ALL: "everything"}
    lines = [f'{variable.get(name, name.split("_")[0])} = load_dataset("ORG/NAME", "{name}", revision="{version}")  # {notes.get(name, "one language: any code below")}'
             for name in chosen if name in configs]  # fmt: skip
    return "\n".join(lines)


def _in_config(folder: str, config: str) -> bool:
    return config == ALL or folder == config or (config == CROSS_LINGUAL and folder not in FAMILIES)


def write_card(folder: Path, manifest: dict, quality_section: str = "") -> Path:
    """README.md; its chart is `write_chart`'s, drawn from the counts alone (the build draws it while it merges the
    removed rows); `quality_section` as for `card_text`."""
    path = Path(folder) / CARD_NAME
    text = "---\n" + yaml.safe_dump(front_matter(manifest), sort_keys=False, allow_unicode=True) + "---\n" + card_text(manifest, (Path(folder) / "recipe.yaml").read_text(encoding="utf-8"), quality_section)
    return save_text(path, text)


def save_text(path: Path, text: str) -> Path:
    """Write a text file under a temporary name, then move it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
