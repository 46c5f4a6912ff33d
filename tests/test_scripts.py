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
