"""`--plan`: what a build would read and produce, before anything is streamed.

    python pipelines/build.py --recipe bayling2 --plan                 # plan.json and plan.png in out/bayling2/plan/
    python pipelines/build.py --recipe bayling2 --plan --exclude-noncommercial --output plans/commercial

Every source is resolved as the build would resolve it: a Hub revision to its commit, the Parquet files of each
config and split, their rows from the files' footers (range requests of a few kB; no row is read), the languages
and the license. From those counts (before any filter) it works out the mixture the recipe asks for: rows per
family (zh, en, cross-lingual), per language and per direction, the languages whose budget is below the floor,
and what each source is expected to contribute (a budget is filled by a seeded hash, so each source gives its share
of the rows of its family and language). A source that cannot be reached stops the plan with a message naming it.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from pipelines import recipe as recipes, storage
from pipelines.hub_instructions import HubInstructionSource, _yaml_front_matter, footers, split_files
from pipelines.mixture import MixtureError, split_total
from pipelines.options import BuildOptions, apply_overrides
from pipelines.planning import CHAT_NAMES
from pipelines.planning import plan as mixture_plan
from pipelines.sources import (
    HubSource,
    InstructionSource,
    SourceError,
    TableSource,
    UdhrSource,
    _commit_of,
    _named,
    _x_side,
)
from schemas.language_codes import PIVOTS, resolve_languages

PLAN_FLOOR = 1000  # cross-lingual instructions under which a language is listed as below the floor (recipe floor: 0)


def run_plan(options: BuildOptions) -> dict:
    """Resolve, count, print, and write plan.json and plan.png (to --output, else <store>/<recipe name>/plan/)."""
    started = time.time()
    recipe = apply_overrides(recipes.load(options.recipe), options)
    plan = make_plan(recipe)
    where = storage.location(options.output) if options.output else storage.join(storage.location(options.store), recipe.name, "plan")
    folder = storage.folder(where)  # a local folder or a URL, as the build's --store and --output
    plan["seconds"] = round(time.time() - started, 2)
    with folder.open("plan.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(plan, indent=1, ensure_ascii=False) + "\n")
    with folder.open("plan.png", "wb") as f:
        plot(plan, f)
    if recipe.path:
        with folder.open("recipe.pinned.yaml", "w", encoding="utf-8") as f:
            f.write(pinned_recipe(recipe.path, plan))
    print(summary(plan, storage.shown(where)))
    return plan


def pinned_recipe(path: str, plan: dict) -> str:
    """The recipe with every Hub entry's `revision:` set to the commit the plan resolved (sources matched by name):
    building from it reads exactly what the plan counted, whatever the branches do next."""
    import yaml

    from schemas.config import read_yaml

    data = read_yaml(path, recipes.RecipeError)
    commits = {s["name"]: s["commit"] for s in plan["sources"] if s.get("commit") and s.get("origin", "").startswith("hf://")}
    evals = {e["name"]: e["commit"] for e in plan["eval_sets"] if e.get("commit")}
    for key, parse in (("parallel", recipes._source), ("instructions", recipes._instruction_source)):
        for i, entry in enumerate(data.get(key) or []):
            name = parse(entry, path, i).name
            if name in commits:
                entry["revision"] = commits[name]
    for i, entry in enumerate((data.get("decontamination") or {}).get("eval_sets") or []):
        if isinstance(entry, dict) and recipes._eval_set(entry, path, i).name in evals:
            entry["revision"] = evals[recipes._eval_set(entry, path, i).name]
    header = f"# {Path(path).name} with every Hub revision pinned to the commit `--plan` resolved ({time.strftime('%Y-%m-%d')})\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def make_plan(recipe: recipes.Recipe) -> dict:
    """The plan as data (see the module's doc). SourceError naming every source that cannot be reached."""
    entries = [("parallel", s) for s in recipe.parallel] + [("instructions", s) for s in recipe.instructions]
    with ThreadPoolExecutor(8) as pool:  # each source waits on the Hub: resolve them side by side
        results = list(pool.map(lambda e: _attempt(resolve_source, *e), entries))
        eval_results = list(pool.map(lambda e: _attempt(resolve_eval_set, e), recipe.decontamination.eval_sets))
    failures = [r for r in [*results, *eval_results] if isinstance(r, SourceError)]
    if failures:
        raise SourceError(f"--plan: {len(failures)} source{'s' * (len(failures) > 1)} cannot be reached: " + "; ".join(map(str, failures)))
    sources, eval_sets = results, eval_results
    return {"recipe": recipe.name, "recipe_file": recipe.path, "exclude_noncommercial": recipe.exclude_noncommercial,
            "sources": sources, "eval_sets": eval_sets, **mixture(recipe, sources)}  # fmt: skip


def _attempt(call, *args):
    try:
        return call(*args)
    except SourceError as e:
        return e
    except Exception as e:  # a Hub error the source did not wrap: still one line naming the source
        name = getattr(args[-1], "name", "") or getattr(args[-1], "hub", "?")
        return SourceError(f"source {name}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")


def resolve_source(family: str, source) -> dict:
    record = {"name": source.name, "family": family, "type": type(source).__name__, "license": getattr(source, "license", "") or "",
              "noncommercial": recipes.noncommercial(source)}  # fmt: skip
    if isinstance(source, HubInstructionSource):
        files = source.data_files()
        record.update(origin=f"hf://datasets/{source.repo}", revision=source.revision, commit=source.commit(), split=source.hub_split,
                      format=source.format, files=files, rows=source.rows(), languages={source.lang: source.rows()})  # fmt: skip
    elif isinstance(source, InstructionSource):
        files = source.files()
        rows = sum(_local_records(f) for f in files)
        record.update(origin=source.path, files=files, rows=rows, format=source.format, languages={source.lang or "per row": rows})
    elif isinstance(source, HubSource):
        record.update(_hub_pairs(source))
    elif isinstance(source, UdhrSource):
        from schemas.text.udhr import load_udhr, udhr_provenance

        train = load_udhr().filter(pl.col("split") == "train").group_by("lang").len()
        counts = dict(zip(train["lang"], train["len"]))
        english = counts.get("eng_Latn", 0)
        # multiway: a pair with eng_Latn and one with zho_Hans from every paragraph (at most English's)
        languages = {lang: 2 * min(n, english) for lang, n in counts.items() if lang not in PIVOTS}
        languages["zho_Hans"] = min(counts.get("zho_Hans", 0), english)
        provenance = udhr_provenance()
        record.update(origin=provenance["origin"], commit=provenance["version"], license=provenance["license"], rows=sum(languages.values()),
                      languages=languages, files=["embedded"])  # fmt: skip
    elif isinstance(source, TableSource) and source.format == "parquet":
        import pyarrow.parquet as pq

        files = source.files()
        langs = sorted(source.languages())
        rows = sum(pq.read_metadata(f).num_rows for f in files)
        record.update(origin=source.path, files=files, rows=rows, languages={lang: None for lang in langs} if len(langs) > 1 else {langs[0]: rows})
    else:
        record.update(origin=getattr(source, "path", "") or "local files", rows=None, languages={lang: None for lang in sorted(source.languages())})
    return record


def _local_records(path: str) -> int:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
        if head.startswith(b"["):
            f.seek(0)
            return len(json.load(f))
        f.seek(0)
        return sum(1 for line in f if line.strip())


def _hub_pairs(source: HubSource) -> dict:
    """A parallel Hub source: its configs (as the build resolves them), each config's Parquet files of the split and
    their rows from the footers; rows per language are the X side's pairs (zho_Hans for the pivot pair)."""
    from huggingface_hub import HfApi, hf_hub_download

    source.languages()  # the commit, and the configs that have the split (as the build does)
    commit = source.commit()

    def listing():
        listed = HfApi().list_repo_files(source.repo, repo_type="dataset", revision=commit)
        card = {}
        if "README.md" in listed:
            with open(hf_hub_download(source.repo, "README.md", repo_type="dataset", revision=commit), encoding="utf-8") as f:
                card = _yaml_front_matter(f.read())
        return listed, card

    listed, card = source._hub_call(listing, commit)
    by_config = {config: split_files(listed, card, config, source.hub_split) for config in source.plan()}
    metas = source._hub_call(lambda: footers(source.repo, commit, sorted({f for files in by_config.values() for f in files})), commit)
    languages, configs = {}, {}
    for config, (src, tgt, _) in source.plan().items():
        rows = sum(metas[f].num_rows for f in by_config[config])
        configs[config or "default"] = {"files": by_config[config], "rows": rows}
        for lang in _x_side(src, tgt):
            languages[lang] = languages.get(lang, 0) + rows
    skipped = getattr(source, "_skipped", {})
    return {"origin": f"hf://datasets/{source.repo}", "revision": source.revision, "commit": commit, "split": source.hub_split,
            "files": sorted({f for files in by_config.values() for f in files}), "rows": sum(c["rows"] for c in configs.values()),
            "configs": configs, "skipped_configs": skipped, "languages": languages}  # fmt: skip


def resolve_eval_set(entry) -> dict:
    if isinstance(entry, str):
        found = storage.folder(storage.parent(entry)).isfile(storage.name(entry)) if storage.is_remote(entry) else Path(entry).is_file()
        if not found:
            raise SourceError(f"decontamination.eval_sets: evaluation set not found: {storage.shown(entry)}")
        return {"name": storage.name(entry), "origin": storage.shown(entry)}
    record = {"name": entry.name, "origin": f"hf://datasets/{entry.hub}", "revision": entry.revision, "optional": entry.optional}
    try:
        from huggingface_hub import HfApi

        commit = _commit_of(entry.hub, entry.revision)
        files = [f for f in HfApi().list_repo_files(entry.hub, repo_type="dataset", revision=commit) if f.endswith(".parquet") and entry._in_splits(f)]
        if not files:
            raise SourceError(f"eval set {entry.name}: no Parquet files of splits {', '.join(entry.splits)} at commit {commit}")
        footers(entry.hub, commit, files[:1])  # a gated set answers here: its files need a token that accepted the terms
        record.update(commit=commit, files=len(files))
    except Exception as e:
        error = e if isinstance(e, SourceError) else SourceError(f"eval set {entry.name} ({entry.hub}@{entry.revision}): cannot fetch: {_named(e)}")
        if not entry.optional:
            raise error from None
        record["skipped"] = f"{error} (optional: the build goes on without it)"
    return record


def mixture(recipe: recipes.Recipe, sources: list[dict]) -> dict:
    """What the mixture would be, from the sources' counts before any filter (see the module's doc)."""
    cross_supply, chat_supply = {}, {name: 0 for name in CHAT_NAMES}
    for s in sources:
        for lang, rows in s["languages"].items():
            if s["family"] == "parallel" and rows:
                cross_supply[lang] = cross_supply.get(lang, 0) + 2 * rows  # two directions a pair, as the build counts
            elif s["family"] == "instructions" and rows:
                for name, code in CHAT_NAMES.items():
                    if lang == code:
                        chat_supply[name] += rows
    spec = recipe.languages if isinstance(recipe.languages, str) else ",".join(recipe.languages)
    chosen = set(resolve_languages(spec, sorted(cross_supply))) if cross_supply else set()  # as the driver resolves them
    cross_supply = {k: v for k, v in cross_supply.items() if k in chosen | {"zho_Hans"}}
    problems = []
    try:
        budgets = mixture_plan(recipe.mixture, cross_supply, chat_supply)
    except (ValueError, MixtureError) as e:
        problems.append(str(e))
        budgets = {"cross_lingual": dict(cross_supply), **chat_supply}
    families = {"zh": budgets["zh"], "en": budgets["en"], "cross_lingual": sum(budgets["cross_lingual"].values())}
    total = sum(families.values())
    per_language = dict(budgets["cross_lingual"])
    for name, code in CHAT_NAMES.items():
        per_language[code] = per_language.get(code, 0) + budgets[name]
    floor = recipe.mixture.floor_per_language if recipe.mixture and recipe.mixture.floor_per_language else PLAN_FLOOR
    return {
        "total": total,
        "supply": {"cross_lingual": cross_supply, **chat_supply},
        "rows_per_family": families,
        "shares": {k: round(v / total, 6) if total else 0.0 for k, v in families.items()},
        "rows_per_language": dict(sorted(per_language.items(), key=lambda kv: (-kv[1], kv[0]))),
        "rows_per_direction": directions(budgets["cross_lingual"], recipe.pivot_join),
        "floor": floor,
        "below_floor": sorted(lang for lang, n in budgets["cross_lingual"].items() if n < floor),
        "languages": len([lang for lang, n in per_language.items() if n]),
        "contributions": contributions(sources, budgets),
        "licenses": [{"source": s["name"], "license": s["license"] or "not stated", "noncommercial": s["noncommercial"]} for s in sources],
        "problems": problems,
    }


def directions(cross: dict[str, int], pivot_join: bool) -> dict[str, int]:
    """A language's budget shared evenly by its directions: X <-> eng_Latn, and X <-> zho_Hans (made by the pivot
    join where the sources have no X-zho_Hans pairs); the pivot pair both ways."""
    found = {}
    for lang, budget in sorted(cross.items()):
        if lang == "zho_Hans":
            names = ["zho_Hans->eng_Latn", "eng_Latn->zho_Hans"]
        else:
            names = [f"{lang}->eng_Latn", f"eng_Latn->{lang}"] + ([f"{lang}->zho_Hans", f"zho_Hans->{lang}"] if pivot_join else [])
        found.update(split_total(budget, {n: 1 / len(names) for n in names}) if budget else {n: 0 for n in names})
    return found


def contributions(sources: list[dict], budgets: dict) -> dict[str, int]:
    """Rows each source is expected to give: its share of each family's (zh, en) or language's (cross-lingual)
    rows, since a seeded hash fills every budget."""
    given = {s["name"]: 0 for s in sources}
    for name, code in CHAT_NAMES.items():
        rows = {s["name"]: s["languages"].get(code) or 0 for s in sources if s["family"] == "instructions"}
        if sum(rows.values()) and budgets[name]:
            for source, n in split_total(min(budgets[name], sum(rows.values())), {k: v / sum(rows.values()) for k, v in rows.items()}).items():
                given[source] += n
    for lang, budget in budgets["cross_lingual"].items():
        rows = {s["name"]: s["languages"].get(lang) or 0 for s in sources if s["family"] == "parallel"}
        if sum(rows.values()) and budget:
            for source, n in split_total(budget, {k: v / sum(rows.values()) for k, v in rows.items()}).items():
                given[source] += n
    return given


def summary(plan: dict, folder: str) -> str:
    lines = [f"plan of {plan['recipe']} ({plan['seconds']} s): {plan['total']:,} train instructions in {plan['languages']} languages", "",
             f"{'source':<22}{'rows':>12}{'gives':>11}  commit        license"]  # fmt: skip
    for s in plan["sources"]:
        rows = f"{s['rows']:,}" if s.get("rows") is not None else "?"
        flag = " (NON-COMMERCIAL)" if s["noncommercial"] else ""
        lines.append(f"{s['name']:<22}{rows:>12}{plan['contributions'].get(s['name'], 0):>11,}  {str(s.get('commit', '-'))[:12]:<12}  {s['license'] or 'not stated'}{flag}")
    for e in plan["eval_sets"]:
        lines.append(f"eval set {e['name']}: {e.get('skipped') or 'commit ' + str(e.get('commit', '-'))[:12]}")
    lines += ["", "family            rows   share", *[f"{k:<14}{v:>10,}  {plan['shares'][k]:.4%}" for k, v in plan["rows_per_family"].items()]]
    if plan["below_floor"]:
        lines.append(f"below the floor of {plan['floor']:,} cross-lingual rows: {len(plan['below_floor'])} languages ({', '.join(plan['below_floor'][:12])}{' ...' if len(plan['below_floor']) > 12 else ''})")
    lines += [f"problem: {p}" for p in plan["problems"]]
    lines.append(f"written: {folder}/plan.json, {folder}/plan.png and the recipe pinned to these commits, {folder}/recipe.pinned.yaml")
    return "\n".join(lines)


def plot(plan: dict, path) -> None:
    """Rows per family, the 40 largest languages, and each source's expected rows (non-commercial ones hatched), as
    PNG to `path` (a path or a binary file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (families, kinds, languages, sources) = plt.subplots(4, 1, figsize=(12, 16), gridspec_kw={"height_ratios": [1, 1, 2, 2]})
    names = list(plan["rows_per_family"])
    families.barh(names, [plan["rows_per_family"][n] for n in names], color=["#c0392b", "#2471a3", "#239b56"])
    families.set_title(f"{plan['recipe']}: {plan['total']:,} train instructions (plan, before filters)")
    by_kind = {}
    for direction, n in plan["rows_per_direction"].items():
        src, tgt = direction.split("->")
        kind = f"{'X' if src not in PIVOTS else src} -> {'X' if tgt not in PIVOTS else tgt}"
        by_kind[kind] = by_kind.get(kind, 0) + n
    kinds.barh(list(by_kind), list(by_kind.values()), color="#239b56")
    kinds.set_title("cross-lingual rows per direction (X: every other language)")
    top = list(plan["rows_per_language"].items())[:40]
    languages.bar([k for k, _ in top], [v for _, v in top], color=["#7f8c8d" if k in plan["below_floor"] else "#239b56" for k, _ in top])
    languages.set_title(f"rows per language (largest 40 of {plan['languages']}; grey: below the floor of {plan['floor']:,})")
    languages.tick_params(axis="x", labelrotation=90, labelsize=7)
    contributed = [(f"{s['name']} ({(s['license'] or 'not stated').split(' (')[0][:28]})", plan["contributions"].get(s["name"], 0), s["noncommercial"])
                   for s in plan["sources"]]  # fmt: skip
    bars = sources.barh([n for n, _, _ in contributed], [v for _, v, _ in contributed], color="#5d6d7e")
    for bar, (_, _, flagged) in zip(bars, contributed):
        if flagged:
            bar.set_facecolor("#e67e22")
            bar.set_hatch("//")
    sources.set_title("expected rows per source, and its license (orange, hatched: non-commercial)")
    fig.tight_layout()
    fig.savefig(path, dpi=80, format="png")
    plt.close(fig)
