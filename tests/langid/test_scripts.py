import numpy as np
import polars as pl
import pytest

from langid.scripts import dominant_script, known_scripts, script_fraction


def test_known_scripts_cover_the_common_ones():
    assert {"Latn", "Cyrl", "Arab", "Deva", "Hani", "Olck", "Ethi", "Tfng", "Adlm"} <= set(known_scripts())


@pytest.mark.parametrize(
    "text, script",
    [
        ("Everyone has the right to life.", "Latn"),
        ("Каждый человек имеет право на жизнь.", "Cyrl"),
        ("人人有权享有生命、自由和人身安全。", "Hani"),
        ("すべての人は、生命、自由及び身体の安全に対する権利を有する。", "Jpan"),
        ("모든 사람은 생명과 신체의 자유와 안전에 대한 권리를 가진다.", "Hang"),
        ("ᱡᱷᱚᱛᱚ ᱦᱚᱲ ᱠᱚ", "Olck"),
        ("12345 !?", None),
    ],
)
def test_dominant_script(text, script):
    assert dominant_script(text) == script


def test_script_fraction_in_batches():
    texts = ["Hello world", "Привет world", "", "人人平等", "नमस्ते दुनिया 123"]
    assert script_fraction(texts, "Latn").tolist() == pytest.approx([1.0, 5 / 11, 0.0, 0.0, 0.0])
    assert script_fraction(texts, "Hans").tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0, 0.0])
    assert script_fraction(pl.Series(texts), "Deva")[-1] == 1.0  # vowel signs are marks, not letters: not counted
    assert script_fraction([], "Latn").shape == (0,)


def test_unknown_script_code():
    with pytest.raises(ValueError, match="Qqqq"):
        script_fraction(["a"], "Qqqq")


def test_script_fraction_classifies_code_points_as_texts_bring_them_with_the_answers_of_a_full_table():
    import random

    generator = random.Random(0)
    points = [c for c in (generator.randrange(0x110000) for _ in range(4000)) if not 0xD800 <= c <= 0xDFFF]
    points += list(range(0x41, 0x5B)) + list(range(0x410, 0x450)) + list(range(0x4E00, 0x4E40))  # letters too
    texts = ["".join(chr(c) for c in points[i : i + 7]) for i in range(0, len(points), 7)]
    for script, pattern in (("Cyrl", r"\p{sc=Cyrl}"), ("Hans", r"\p{sc=Hani}")):
        expected = []
        for text in texts:  # the same regex engine, a character at a time
            chars = pl.Series(list(text), dtype=pl.String)
            letters = chars.filter(chars.str.contains(r"\p{L}"))
            expected.append(letters.str.contains(pattern).sum() / len(letters) if len(letters) else 0.0)
        half = len(texts) // 2  # two calls: the second one finds part of its code points already classified
        assert script_fraction(texts[:half], script).tolist() + script_fraction(texts[half:], script).tolist() == pytest.approx(expected)
        assert 0 < sum(expected) < len(expected)


def test_weighted_fraction_counts_wide_letters_three_and_says_nothing_without_letters():
    from langid.scripts import weighted_script_fraction

    found = weighted_script_fraction(["Firefox 계정", "계정", "×2", "Firefox account"], "Hang")
    assert found[0] == pytest.approx(6 / 13) and found[1] == 1.0 and np.isnan(found[2]) and found[3] == 0.0
