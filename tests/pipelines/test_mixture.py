import polars as pl
import pytest

from pipelines.mixture import MixtureError, selection_key, selection_keys, split_total, temperature_budgets
from pipelines.planning import plan
from pipelines.recipe import Mixture


def test_split_total_is_exact():
    parts = split_total(3_200_000, {"zh": 0.432, "en": 0.262, "cross_lingual": 0.306})
    assert parts == {"zh": 1_382_400, "en": 838_400, "cross_lingual": 979_200}
    odd = split_total(7, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert sum(odd.values()) == 7 and max(odd.values()) - min(odd.values()) <= 1


def test_temperature_budgets_sum_exactly_and_flatten_with_temperature():
    supply = {"big": 100_000, "mid": 10_000, "small": 1_000}
    for temperature in (1.0, 5.0, 100.0):
        budgets = temperature_budgets(supply, 20_000, temperature)
        assert sum(budgets.values()) == 20_000
        assert all(budgets[k] <= supply[k] for k in supply)
    proportional = temperature_budgets(supply, 11_100, 1.0)
    assert proportional == {"big": 10_000, "mid": 1_000, "small": 100}
    flat = temperature_budgets(supply, 3_000, 1000.0)
    assert max(flat.values()) - min(flat.values()) <= 5  # a high temperature is nearly uniform


def test_caps_floors_and_shortage():
    supply = {"big": 100_000, "mid": 10_000, "small": 50}
    capped = temperature_budgets(supply, 30_000, 1.0, cap=20_000)
    assert capped["big"] == 20_000 and sum(capped.values()) == 30_000
    floored = temperature_budgets(supply, 1_000, 1.0, floor=100)
    assert floored["small"] == 50  # a floor never asks for more than there is
    assert floored["mid"] >= 100 and sum(floored.values()) == 1_000
    with pytest.raises(MixtureError, match="only 110050 are available"):
        temperature_budgets(supply, 200_000, 5.0)


def test_plan_refuses_a_chat_shortage_with_numbers():
    mixture = Mixture(total=1000, shares={"zh": 0.5, "en": 0.2, "cross_lingual": 0.3})
    with pytest.raises(ValueError, match=r"needs 500 zho_Hans instructions .* give 120"):
        plan(mixture, {"deu_Latn": 10_000}, {"zh": 120, "en": 1000})
    budgets = plan(mixture, {"deu_Latn": 10_000, "fra_Latn": 100}, {"zh": 600, "en": 1000})
    assert budgets["zh"] == 500 and budgets["en"] == 200 and sum(budgets["cross_lingual"].values()) == 300
    assert plan(None, {"deu_Latn": 10}, {"zh": 3, "en": 4}) == {"cross_lingual": {"deu_Latn": 10}, "zh": 3, "en": 4}


def test_selection_keys_of_a_column_are_the_per_row_keys():
    ids = ["", "abc", "人人生而自由", "a\x1fb", "é" * 300]
    assert selection_keys(3, pl.Series(ids), "chat").to_list() == [selection_key(3, i, "chat") for i in ids]
    directions = pl.Series(["forth", "back", "", "中", "x"])
    assert selection_keys(0, pl.Series(ids), directions).to_list() == [selection_key(0, i, d) for i, d in zip(ids, directions)]
    assert selection_keys(3, pl.Series([], dtype=pl.String), "chat").to_list() == []
