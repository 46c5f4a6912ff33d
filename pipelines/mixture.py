"""The mixture: how many instructions of each kind and language, and which ones.

The train split is sampled to the recipe's total and shares (zh, en, cross-lingual); validation and test keep
every row. Cross-lingual budgets per language follow temperature sampling (p proportional to n ** (1/T), n the
language's supply of instructions) with optional caps and floors, rounded by largest remainder so that the
totals are exact. Which rows fill a budget is decided by a hash of the seed and the row: the same seed gives the
same rows on any executor and task count.
"""

from __future__ import annotations

import math

import polars as pl

from schemas.records import stable_id, stable_ids


class MixtureError(ValueError):
    pass


def split_total(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Exact integer parts of `total` by share (largest remainder, ties by name)."""
    raw = {name: total * share for name, share in shares.items()}
    parts = {name: math.floor(value) for name, value in raw.items()}
    left = total - sum(parts.values())
    for name in sorted(raw, key=lambda n: (-(raw[n] - parts[n]), n))[:left]:
        parts[name] += 1
    return parts


def temperature_budgets(supply: dict[str, int], total: int, temperature: float, cap: int = 0, floor: int = 0) -> dict[str, int]:
    """Per-language budgets summing to exactly `total`, each within [min(floor, supply), min(cap, supply)]."""
    limit = {k: min(n, cap) if cap else n for k, n in supply.items()}
    if total > sum(limit.values()):
        raise MixtureError(f"asked for {total} cross-lingual instructions, but only {sum(limit.values())} are available"
                           f"{' under the cap' if cap else ''} in {len(supply)} languages")  # fmt: skip
    budget = {k: min(floor, limit[k]) for k in supply}
    if sum(budget.values()) > total:
        raise MixtureError(f"the floors ({floor} per language) need {sum(budget.values())} instructions, more than the total {total}")
    remaining = total - sum(budget.values())
    while remaining > 0:
        open_ = [k for k in supply if budget[k] < limit[k]]
        weights = {k: supply[k] ** (1.0 / temperature) for k in open_}
        share = split_total(remaining, {k: w / sum(weights.values()) for k, w in weights.items()})
        for k in open_:
            budget[k] += min(share[k], limit[k] - budget[k])
        remaining = total - sum(budget.values())
    return budget


def selection_key(seed: int, row_id: str, direction: str) -> str:
    return stable_id(str(seed), row_id, direction)


def selection_keys(seed: int, row_ids: pl.Series, directions: str | pl.Series) -> pl.Series:
    """`selection_key` of every row of a column, the same values, joined and hashed a column at a time."""
    joined = pl.select(pl.concat_str(pl.lit(str(seed)), pl.lit(row_ids), pl.lit(directions), separator="\x1f")).to_series()
    return stable_ids(joined)
