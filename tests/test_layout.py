"""tests/ mirrors the packages (README, "Set up and run the tests"): tests/langid/test_identify.py tests
langid/identify.py, so a module's tests are found by its path. Every test folder is a Python package, so that two
test files of one name in two folders get distinct module names."""

from pathlib import Path

from tests.conftest import REPO_ROOT

TESTS = REPO_ROOT / "tests"
OWN_FOLDERS = {"faults", "benchmarks"}  # fault injection across packages; the benchmarks and the tests of their code


def folders_under(root: Path = TESTS) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__")


def test_every_test_folder_mirrors_a_package_and_is_one():
    folders = folders_under()
    assert {f.parts[0] for f in folders} >= {"schemas", "langid", "pipelines", "training"} | OWN_FOLDERS
    not_packages = [str(f) for f in folders if not (TESTS / f / "__init__.py").is_file()]
    assert not_packages == []
    mirrored = [f for f in folders if f.parts[0] not in OWN_FOLDERS]
    assert [str(f) for f in mirrored if not (REPO_ROOT / f / "__init__.py").is_file()] == []  # no such package


def test_a_folder_of_no_package_is_found(tmp_path):
    (tmp_path / "pipelines" / "stpes").mkdir(parents=True)
    no_package = [str(f) for f in folders_under(tmp_path) if not (REPO_ROOT / f / "__init__.py").is_file()]
    assert no_package == ["pipelines/stpes"]
