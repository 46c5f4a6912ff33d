"""The build key: a hash of everything a build's rows depend on (the recipe's settings, the languages, the sources,
the evaluation sets, the language-ID models, the embedded corpus and the code), and the command that rebuilds the
same rows. Executor, tasks, workers and where the version goes are in neither."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from langid.identify import LanguageIdentifier
from langid.models import file_sha256
from pipelines import recipe as recipes
from pipelines.manifest import code_version, sha256_file
from schemas.records import stable_id
from schemas.text.udhr import UDHR_PATH

REPO_ROOT = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("pipelines", "langid", "schemas")  # the code the rows depend on


def row_arguments(recipe: recipes.Recipe, langs: list[str], identifier: LanguageIdentifier, sources: list[dict]) -> dict[str, str]:
    """What the rows depend on; their hash is the build key (executor, tasks and workers are not in it)."""
    settings = {k: v for k, v in recipe.to_dict().items() if k not in ("parallel", "instructions", "path", "languages", "strict")}
    return {
        "recipe": recipe.name,
        "langs": ",".join(langs),
        "settings": json.dumps(settings, sort_keys=True),
        "sources": json.dumps([[s["name"], s["sha256"], s["version"]] for s in sources]),
        "langid_models": ",".join(f"{c.model.name}:{c.model.sha256}" for c in identifier.checks),
        "corpus_sha256": file_sha256(UDHR_PATH),
        "code_package": code_version()["package"],
        "code": code_fingerprint(),
    }


def key_of(arguments: dict[str, str]) -> str:
    """The build key of `row_arguments` (with the evaluation sets)."""
    return stable_id(json.dumps(arguments, sort_keys=True))


def code_fingerprint() -> str:
    """What identifies the code, so that a rerun after a code change rebuilds: in a git checkout whose code folders
    have no changes, their git tree ids (a commit touching only docs or training/ keeps the build); otherwise a hash
    of their .py files."""
    try:
        status = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", *CODE_FOLDERS],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        if not status.strip():
            trees = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", *(f"HEAD:{folder}" for folder in CODE_FOLDERS)],
                                   capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            return "git:" + stable_id(*trees)
    except (OSError, subprocess.CalledProcessError):
        pass  # not a git checkout (an installed package, an unpacked archive)
    files = sorted(p for folder in CODE_FOLDERS for p in (REPO_ROOT / folder).rglob("*.py"))
    return "files:" + stable_id(*(f"{p.relative_to(REPO_ROOT).as_posix()}:{sha256_file(p)}" for p in files))


def reproduce_command(argv: list[str], recipe: recipes.Recipe, version: str) -> str:
    """The build command without the options that do not change the rows (executor, tasks, output, Hub)."""
    skip = {"--output", "--store", "--executor", "--ray-address", "--tasks", "--workers", "--push-to-hub", "--bump", "--version",
            "--log-level"}  # fmt: skip
    flags = {"--private", "--verify", "-q", "--quiet", "-v", "--verbose", "--work-on-store"}  # options without a value
    kept, i = [], 0
    while i < len(argv):
        option = argv[i].split("=")[0]
        if option in flags:
            i += 1
            continue
        if option in skip:
            i += 1 if "=" in argv[i] else 2
            continue
        if option == "--recipe":
            value = argv[i].split("=", 1)[1] if "=" in argv[i] else argv[i + 1]
            kept += ["--recipe", value if recipe.path.startswith(str(recipes.RECIPES_DIR)) else "recipe.yaml"]
            i += 1 if "=" in argv[i] else 2
            continue
        kept.append(argv[i])
        i += 1
    return shlex.join(["python", "pipelines/build.py", *kept, "--version", version])
