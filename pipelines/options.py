"""What one build is asked to do: `BuildOptions`, the plain form of the command line's options (pipelines/build.py
makes it from argparse; a library user makes it directly), and how its recipe options override the recipe."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import recipe as recipes, storage
from pipelines.console import check_level
from pipelines.planning import parse_size
from schemas.config import set_key

# option -> recipe key: the options that override one key of the recipe each, checked as that key is
RECIPE_KEYS = {"seed": "seed", "langid_model": "langid.models", "langid_threshold": "langid.threshold",
               "min_script_fraction": "langid.min_script_fraction", "max_length_ratio": "filters.max_length_ratio",
               "shard_size": "shard_size"}  # fmt: skip


@dataclass(frozen=True)
class BuildOptions:
    """One build's options; None leaves the recipe's value. The rows depend only on the recipe (after
    `apply_overrides`): executor, tasks, workers, where the version goes and publishing do not change them."""

    recipe: str = "embedded"
    # recipe overrides
    langs: str | None = None
    seed: int | None = None
    total: int | None = None
    share: str | None = None
    langid_model: str | None = None
    langid_threshold: float | None = None
    min_script_fraction: float | None = None
    max_length_ratio: float | None = None
    shard_size: str | None = None
    strict: bool = False
    exclude_noncommercial: bool = False
    # where the version goes
    store: Path | str = Path("out")  # a local folder, or an fsspec URL (s3://, gs://, hf://, file://)
    version: str | None = None
    bump: str | None = None
    output: Path | str | None = None
    verify: bool = False
    work_on_store: bool = False  # the staging folder beside a version on an object store, for workers sharing no folder
    # how it runs
    executor: str = "local"
    ray_address: str | None = None
    tasks: int = 4
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    plan: bool = False  # a dry run: resolve the sources and write the plan (pipelines/plan.py), build nothing
    # what the terminal shows (pipelines.console): DEBUG, INFO, WARNING (progress bars) or ERROR (--quiet)
    log_level: str = "WARNING"
    # publishing
    push_to_hub: str | None = None
    private: bool = False
    # as typed, for the manifest: the whole command line, and the options the reproduce command is made from
    command_line: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """The checks between options (each value's own type is the caller's: argparse, or the library user)."""
        # a URL stays a string: Path("s3://b/x") is the local folder "s3:/b/x"
        object.__setattr__(self, "store", storage.location(self.store))
        if self.output is not None:
            object.__setattr__(self, "output", storage.location(self.output))
        if self.version and self.bump:
            raise ValueError("give --version or --bump, not both")
        if self.bump and self.output:
            raise ValueError("--bump bumps the latest version of the store; with --output, give --version")
        if self.bump not in (None, "major", "minor", "patch"):
            raise ValueError(f"--bump: expected major, minor or patch, got {self.bump!r}")
        if self.executor not in ("local", "ray"):
            raise ValueError(f"--executor: expected local or ray, got {self.executor!r}")
        object.__setattr__(self, "log_level", check_level(self.log_level))  # frozen: the checked, upper-case name
        for name in ("tasks", "workers", "total"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name}: must be at least 1, got {getattr(self, name)}")


def apply_overrides(recipe: recipes.Recipe, options: BuildOptions) -> recipes.Recipe:
    """Command-line options win over the recipe; each is checked as the recipe's key is, and named as the option."""
    if options.langs is not None:
        if not options.langs.replace(",", " ").split():
            raise recipes.RecipeError(f"--langs: no language given in {options.langs!r} (expected all, or codes separated by commas)")
        recipe.languages = options.langs
    recipe.strict = recipe.strict or options.strict
    recipe.exclude_noncommercial = recipe.exclude_noncommercial or options.exclude_noncommercial
    for name in recipes.drop_noncommercial(recipe):
        print(f"excluded (non-commercial license): {name}", file=sys.stderr)
    for option, key in RECIPE_KEYS.items():
        if getattr(options, option) is not None:
            set_key(recipe, key, getattr(options, option), f"--{option.replace('_', '-')}", recipes.RecipeError, name_key=False)
    parse_size(recipe.shard_size, "--shard-size" if options.shard_size is not None else f"{recipe.path}: shard_size")
    if options.total is not None or options.share is not None:
        recipe.mixture = recipe.mixture or recipes.Mixture()
        if options.total is not None:
            set_key(recipe, "mixture.total", options.total, "--total", recipes.RecipeError, name_key=False)
        if options.share is not None:
            set_key(recipe, "mixture.shares", parse_shares(options.share), "--share", recipes.RecipeError, name_key=False)
    return recipe


def parse_shares(text: str) -> dict[str, float]:
    """`zh=0.4,en=0.3,cross_lingual=0.3` as a mapping (the recipe's validation checks names and sum)."""
    try:
        return {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise recipes.RecipeError(f"--share: expected name=value pairs like zh=0.4,en=0.3,cross_lingual=0.3, got {text!r}") from None
