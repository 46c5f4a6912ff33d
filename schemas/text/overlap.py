"""Whether a text overlaps an evaluation set: word n-grams and the overlap index, shared by the build's
decontamination and chat stage (pipelines/steps/decontaminate.py, pipelines/steps/prepare_chat.py), dedup's word lists and
the trainer's count of leaked evaluation items (training/evaluation/contamination.py).

A text overlaps an evaluation text when, compared as lower-cased words (Han, kana and Hangul characters count as
words, punctuation does not), it equals it, quotes it whole, or shares a run of `ngram` words with it.

Every word of a match is a word of some evaluation text, so a text is first cut into runs of such words (numpy,
over a whole batch): only runs of `ngram` words are hashed and looked up among the evaluation n-grams, only runs of
MIN_QUOTE_WORDS go through the Aho-Corasick automaton of the short evaluation texts, and only texts all of whose
words are known (and hash as an evaluation text's) are compared whole. Most training text has no such run. A text
with fewer characters than the words of any finding is not cut at all, and a build builds the index once (see
`eval_index`).
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from pathlib import Path

import ahocorasick
import numpy as np
import polars as pl
import pyarrow as pa

from schemas.records import stable_id
from schemas.text.udhr import UDHR_PATH, load_udhr

MIN_QUOTE_WORDS = 6  # a shorter evaluation text is matched only when a whole text equals it
MIN_EXACT_CHARS = 12  # nor that when it is shorter than this ("1", "Article 3" are no evaluation text)
INDEX_FORMAT = 1  # of a saved EvalIndex: a new one when its parts change
_WORD = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]|[\p{L}\p{N}\p{M}]+"


def word_lists(texts: list[str] | pl.Series, lowered: bool = False) -> pl.DataFrame:
    """One row per text, column `words`: its lower-cased words. A text compares as ' w1 w2 ... wn '. `lowered`: the
    texts are already `str.to_lowercase`d (the chat stage lower-cases them once for this and its dedup key)."""
    text = pl.col("t") if lowered else pl.col("t").str.to_lowercase()
    return pl.DataFrame({"t": texts}, schema={"t": pl.String}).select(words=text.str.extract_all(_WORD))


def _canonical(words: pl.DataFrame) -> list[str]:
    return words.select(pl.lit(" ") + pl.col("words").list.join(" ") + pl.lit(" "))[:, 0].to_list()


def read_eval_texts(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"evaluation set not found: {path}")
    if file.suffix in (".parquet", ".jsonl", ".json"):
        frame = pl.read_parquet(file) if file.suffix == ".parquet" else pl.read_ndjson(file)
        columns = [c for c in ("text", "src_text", "tgt_text", "sentence") if c in frame.columns]
        if not columns:
            raise ValueError(f"{path}: an evaluation set needs a text, src_text/tgt_text or sentence column; has {frame.columns}")
        return [t for c in columns for t in frame[c].drop_nulls().to_list()]
    return [line for line in file.read_text(encoding="utf-8").split("\n") if line.strip()]


_BASE = np.uint64(1_000_003)


def _powers(count: int) -> tuple[np.ndarray, np.ndarray]:
    """B**k and B**-k mod 2**64 for k < count (B is odd, so it has an inverse), kept and grown as needed."""
    global _POWERS
    if len(_POWERS[0]) < count:
        size = max(count, 2 * len(_POWERS[0]))
        _POWERS = (_geometric(_BASE, size), _geometric(np.uint64(pow(int(_BASE), -1, 2**64)), size))
    return _POWERS[0][:count], _POWERS[1][:count]


def _geometric(ratio: np.uint64, size: int) -> np.ndarray:
    """ratio**0, ratio**1, ... mod 2**64."""
    out = np.empty(size, dtype=np.uint64)
    out[0] = 1
    with np.errstate(over="ignore"):
        np.cumprod(np.full(size - 1, ratio, dtype=np.uint64), out=out[1:])
    return out


_POWERS: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64))


def _known_runs(known: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop positions of every maximal run of known words that lies inside one text. `known` holds all
    texts' words back to back; text t ends at ends[t]."""
    edge = np.zeros(len(known) + 1, dtype=bool)
    edge[0] = True
    edge[ends] = True  # a run never spans two texts
    previous = np.concatenate(([False], known[:-1]))
    following = np.concatenate((known[1:], [False]))
    starts = np.flatnonzero(known & (edge[:-1] | ~previous))
    stops = np.flatnonzero(known & (edge[1:] | ~following)) + 1
    return starts, stops


def _spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """starts[0], starts[0]+1, ..., starts[0]+lengths[0]-1, starts[1], ...: the positions of the spans, in order."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())


def _prefix_hashes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """prefix[k] = sum of ids[j] * B**(j+1) for j < k (mod 2**64), and the inverse powers: the hash of ids[a:b] is
    (prefix[b] - prefix[a]) * inverse[a + 1], whatever a is."""
    powers, inverse = _powers(len(ids) + 1)
    with np.errstate(over="ignore"):
        return np.concatenate((np.zeros(1, dtype=np.uint64), np.cumsum(ids * powers[1:], dtype=np.uint64))), inverse


def _window_hashes(ids: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Polynomial hashes (mod 2**64) of every n consecutive ids inside one run, with the run each window is in.
    `ids` holds the runs back to back; run r has lengths[r] ids (runs shorter than n have no window). A window's
    hash depends only on its ids, not on where it lies."""
    windows = np.maximum(lengths - n + 1, 0)
    first = _spans(np.cumsum(lengths) - lengths, windows)
    prefix, inverse = _prefix_hashes(ids)
    with np.errstate(over="ignore"):
        hashes = (prefix[first + n] - prefix[first]) * inverse[first + 1]
    return hashes, np.repeat(np.arange(len(lengths)), windows)


def _run_hashes(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The hash of each run as a whole (`ids` and `lengths` as in `_window_hashes`): that of a window of its words."""
    starts = np.cumsum(lengths) - lengths
    prefix, inverse = _prefix_hashes(ids)
    with np.errstate(over="ignore"):
        return (prefix[starts + lengths] - prefix[starts]) * inverse[starts + 1]


class EvalIndex:
    """Every evaluation set's texts (for equality), short ones (for quotes, in an Aho-Corasick automaton) and word
    n-grams (as hashes over word ids, matched with numpy: a trie of all n-grams would take gigabytes).

    Every word of a match is a word of some evaluation text: a text can only quote one in a run of at least
    MIN_QUOTE_WORDS such words, share an n-gram in a run of n, or equal one if all its words are. Such runs are
    rare in training text (about 1% of its words are in runs of 13), so only they are hashed and scanned."""

    def __init__(self, sets: dict[str, list[str]], n: int):
        self._assemble(self._parts(sets, n))

    @classmethod
    def _parts(cls, sets: dict[str, list[str]], n: int) -> dict:
        """What the index is made of, as arrays (see `save`): the canonical forms of the texts compared whole and of
        the quotes (each with its set's number, the first set that has it), and the sorted hashes of the vocabulary,
        the n-grams (with their sets) and the quotes' first words."""
        whole, gram_hashes, gram_sets, quote_starts, vocabulary = [], [], [], [], []
        for set_number, texts in enumerate(sets.values()):
            words = word_lists(texts)["words"]
            lengths = words.list.len().fill_null(0).to_numpy().astype(np.int64)
            flat = _flat(words)
            ids = cls._ids(flat)
            vocabulary.append(ids)
            ids = ids.to_numpy()
            whole.append(pl.DataFrame({"text": _canonical(pl.DataFrame({"words": words})), "words": lengths, "set": set_number,
                                       "hash": _run_hashes(ids, lengths)}, schema=_WHOLE))  # fmt: skip
            hashes, _ = _window_hashes(ids, lengths, n)
            gram_hashes.append(hashes)
            gram_sets.append(np.full(len(hashes), set_number))
            quoted = (MIN_QUOTE_WORDS <= lengths) & (lengths < n)  # the texts in the automaton: their first words
            first_words = np.full(quoted.sum(), MIN_QUOTE_WORDS)
            positions = _spans((np.cumsum(lengths) - lengths)[quoted], first_words)
            quote_starts.append(_window_hashes(ids[positions], first_words, MIN_QUOTE_WORDS)[0])
        whole = pl.concat(whole) if whole else pl.DataFrame(schema=_WHOLE)
        whole = whole.filter(pl.col("words") > 0).unique("text", keep="first", maintain_order=True)  # the first set that has a text names it
        word_chars = pl.col("text").str.len_chars() - pl.col("words") - 1  # ' w1 w2 ... wn ' has n + 1 spaces
        exact = whole.filter(word_chars >= MIN_EXACT_CHARS)
        quotes = whole.filter(pl.col("words").is_between(MIN_QUOTE_WORDS, n - 1))
        order = np.argsort(np.concatenate(gram_hashes)) if gram_hashes else np.zeros(0, dtype=np.int64)
        return {
            "n": n,
            "set_names": list(sets),
            "exact_texts": exact["text"].to_list(),
            "exact_sets": exact["set"].to_numpy(),
            "exact_hashes": exact["hash"].unique().sort().to_numpy(),
            "quote_texts": quotes["text"].to_list(),
            "quote_sets": quotes["set"].to_numpy(),
            "vocabulary": pl.concat(vocabulary).unique().sort().to_numpy() if vocabulary else np.zeros(0, dtype=np.uint64),
            "gram_hashes": np.concatenate(gram_hashes)[order] if gram_hashes else np.zeros(0, dtype=np.uint64),
            "gram_sets": np.concatenate(gram_sets)[order].astype(np.int32) if gram_sets else np.zeros(0, dtype=np.int32),
            "quote_starts": np.unique(np.concatenate(quote_starts)) if quote_starts else np.zeros(0, dtype=np.uint64),
        }

    def _assemble(self, parts: dict) -> None:
        self.parts = parts
        self.n = parts["n"]
        self.set_names = parts["set_names"]
        self.exact: dict[str, str] = dict(zip(parts["exact_texts"], (self.set_names[s] for s in parts["exact_sets"].tolist())))
        self.automaton = ahocorasick.Automaton()
        for text, number in zip(parts["quote_texts"], parts["quote_sets"].tolist()):
            self.automaton.add_word(text, (self.set_names[number], "quotes"))
        self._vocabulary_hashes = pl.Series(parts["vocabulary"], dtype=pl.UInt64)
        self.gram_hashes, self.gram_sets, self.quote_starts = parts["gram_hashes"], parts["gram_sets"], parts["quote_starts"]
        self.exact_hashes = parts["exact_hashes"]
        forms = pl.Series(parts["exact_texts"] + parts["quote_texts"], dtype=pl.String)
        # the fewest characters a text with a finding has: those of the words of an n-gram, quote or text it equals
        self.min_chars = min(self.n, (forms.str.len_chars() - forms.str.count_matches(" ")).min() or self.n)
        self.has_quotes = len(self.automaton) > 0
        if self.has_quotes:
            self.automaton.make_automaton()

    def save(self, path: Path) -> None:
        """The index's parts as one Arrow file (a row of lists), written under a temporary name and moved into place:
        a task that finds the file finds it whole, and loading it is cheaper than building it. The values go through
        polars: `pa.array` of Python or numpy values imports pandas, a slow import in the driver, which runs the pivot
        stage that saves the index."""
        values = {name: pl.Series(self.parts[name]).to_arrow().cast(type_) for name, type_ in _SAVED.items()}
        lists = {name: pa.ListArray.from_arrays(pl.Series([0, len(array)], dtype=pl.Int32).to_arrow(), array) for name, array in values.items()}
        table = pa.table(lists).replace_schema_metadata({"n": str(self.n)})
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with pa.ipc.new_file(temporary, table.schema) as writer:
            writer.write_table(table)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> EvalIndex:
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        parts = {"n": int(table.schema.metadata[b"n"])}
        for name, type_ in _SAVED.items():
            values = table.column(name).chunk(0).values
            parts[name] = values.to_pylist() if type_ == pa.string() else values.to_numpy()
        index = cls.__new__(cls)
        index._assemble(parts)
        return index

    @staticmethod
    def _ids(words: pl.Series) -> pl.Series:
        """Each word's id: its 64-bit hash (polars', fixed seed). A hash needs no table: a table from words to numbers
        would be built again on every call, and cost more than the matching on batches of a few hundred texts."""
        return words.hash(seed=0)

    def overlaps(self, texts: list[str] | pl.Series, chunk: int = 20_000, lowered: bool = False) -> list[tuple[str, str] | None]:
        """For each text: (evaluation set, how) of its first overlap, or None. In chunks: the hashing arrays
        hold several numbers per word. `lowered`: see `word_lists`."""
        texts = texts if isinstance(texts, pl.Series) else pl.Series(texts, dtype=pl.String)
        texts = texts if lowered else texts.str.to_lowercase()
        found: list[tuple[str, str] | None] = [None] * len(texts)
        # only the texts that have as many characters as the words of a finding (many short strings have fewer)
        long_enough = (texts.str.len_chars() >= self.min_chars).fill_null(False).arg_true()
        texts = texts.gather(long_enough)
        for start in range(0, len(texts), chunk):
            hits = self._overlaps(texts[start : start + chunk])
            for position in (i for i, hit in enumerate(hits) if hit):
                found[long_enough[start + position]] = hits[position]
        return found

    def _overlaps(self, texts: pl.Series) -> list[tuple[str, str] | None]:
        """`overlaps` of lower-cased texts."""
        if not len(texts):
            return []
        words = word_lists(texts, lowered=True)["words"]
        counts = words.list.len().fill_null(0).to_numpy().astype(np.int64)
        ends = np.cumsum(counts)
        flat = _flat(words)
        ids = self._ids(flat)  # once: whether a word is known, and the n-gram hashes of the runs, both use it
        # a word is known when an evaluation text has it (by its hash: a 64-bit collision only lengthens a run);
        # polars' is_in on the hashes: quicker than a binary search of the sorted hashes on big batches, and than is_in
        # on the words themselves on small ones (tests/benchmarks/bench_pair_steps.py)
        known = ids.is_in(self._vocabulary_hashes.implode()).to_numpy()
        starts, stops = _known_runs(known, ends)
        run_text = np.searchsorted(ends, starts, side="right")
        found: list[tuple[str, str] | None] = [None] * len(texts)
        shares_gram = np.zeros(len(texts), dtype=bool)
        long = stops - starts >= self.n
        if len(self.gram_hashes) and long.any():
            positions = _spans(starts[long], (stops - starts)[long])
            hashes, run_of = _window_hashes(ids.gather(positions).to_numpy(), (stops - starts)[long], self.n)
            where = np.minimum(np.searchsorted(self.gram_hashes, hashes), len(self.gram_hashes) - 1)
            hit = self.gram_hashes[where] == hashes
            texts_hit, first_hit = np.unique(run_text[long][run_of[hit]], return_index=True)  # windows are in text order: the first run wins
            shares_gram[texts_hit] = True
            for text, gram in zip(texts_hit.tolist(), where[hit][first_hit].tolist()):
                found[text] = (self.set_names[self.gram_sets[gram]], f"shares a {self.n}-gram with")
        quoting = (stops - starts >= MIN_QUOTE_WORDS) & ~shares_gram[run_text]
        if self.has_quotes and quoting.any():
            quoting[quoting] = self._may_quote(ids, starts[quoting], stops[quoting])
        if self.has_quotes and quoting.any():
            self._quotes(flat, starts[quoting], stops[quoting], run_text[quoting], found)
        whole = (stops - starts == counts[run_text]) & (counts[run_text] > 0)  # texts all of whose words are known
        if whole.any():  # and whose words hash as those of a text compared whole
            lengths = (stops - starts)[whole]
            hashes = _run_hashes(ids.gather(_spans(starts[whole], lengths)).to_numpy(), lengths)
            where = np.minimum(np.searchsorted(self.exact_hashes, hashes), max(len(self.exact_hashes) - 1, 0))
            whole[whole] = self.exact_hashes[where] == hashes if len(self.exact_hashes) else False
        if whole.any():
            candidates = run_text[whole]
            canonical = _canonical(pl.DataFrame({"words": words.gather(candidates)}))
            for text, form in zip(candidates.tolist(), canonical):
                if form in self.exact:
                    found[text] = (self.exact[form], "equals")
        return found

    def _may_quote(self, ids: pl.Series, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
        """For each run: whether some MIN_QUOTE_WORDS of its words in a row are how a quote in the automaton starts
        (by their hash, as the n-grams are found). A run without that quotes nothing, and it is most runs: building
        the text of every run for the automaton would cost more than the rest of the check but the word finding."""
        lengths = stops - starts
        hashes, run_of = _window_hashes(ids.gather(_spans(starts, lengths)).to_numpy(), lengths, MIN_QUOTE_WORDS)
        where = np.minimum(np.searchsorted(self.quote_starts, hashes), len(self.quote_starts) - 1)
        may = np.zeros(len(starts), dtype=bool)
        may[run_of[self.quote_starts[where] == hashes]] = True
        return may

    def _quotes(self, flat: pl.Series, starts: np.ndarray, stops: np.ndarray, run_text: np.ndarray, found: list) -> None:
        """The first quote in each run's text, for texts without a finding yet: one Aho-Corasick scan over the runs
        written as ' w1 w2 ... wn ' and joined with newlines (a key starts and ends with a space, so none spans two
        runs; a key's words are all known, so its every match in a text lies inside one run)."""
        lengths = stops - starts
        words = flat.gather(_spans(starts, lengths))
        last = np.zeros(len(words), dtype=bool)
        last[np.cumsum(lengths) - 1] = True
        pieces = pl.DataFrame({"word": words, "last": last}).select(
            piece=pl.col("word") + pl.when("last").then(pl.lit(" \n ")).otherwise(pl.lit(" "))
        )["piece"]
        joined = " " + pieces.str.join("").item()
        # the space after word k is at this place in `joined`: a match ends at the space after its last word
        after = 1 + np.cumsum(pieces.str.len_chars().to_numpy().astype(np.int64)) - np.where(last, 3, 1)
        word_text = np.repeat(run_text, lengths)
        for end, value in self.automaton.iter(joined):
            text = int(word_text[np.searchsorted(after, end)])
            if found[text] is None:  # the first quote found in a text is the one reported
                found[text] = value


_WHOLE = {"text": pl.String, "words": pl.Int64, "set": pl.Int32, "hash": pl.UInt64}  # an evaluation text compared whole
# The parts of an EvalIndex as saved: each a list of this type.
_SAVED = {"set_names": pa.string(), "exact_texts": pa.string(), "exact_sets": pa.int32(), "exact_hashes": pa.uint64(),
          "quote_texts": pa.string(), "quote_sets": pa.int32(), "vocabulary": pa.uint64(), "gram_hashes": pa.uint64(),
          "gram_sets": pa.int32(), "quote_starts": pa.uint64()}  # fmt: skip


def _flat(words: pl.Series) -> pl.Series:
    """All texts' words back to back (a text without words adds none)."""
    return words.explode(empty_as_null=False, keep_nulls=False)


def named_eval_set(entry: str | tuple[str, str]) -> tuple[str, str]:
    """(name, path) of an evaluation set: a path is named by its file name; the build names what it fetched."""
    return (Path(entry).name, entry) if isinstance(entry, str) else tuple(entry)


@functools.cache
def eval_index(eval_sets: tuple, n: int, corpus_path=UDHR_PATH, folder: Path | None = None) -> EvalIndex:
    """The index of the held-out UDHR articles and the `eval_sets`. With `folder` (a build's work folder), the first
    task to need it builds it and saves it there, and every later task, in any process and stage, loads it, so a build
    builds it once, not once per task."""
    saved = None
    if folder is not None:  # the file is named by what determines the index (polars' version: the word hashes)
        key = stable_id(json.dumps([INDEX_FORMAT, pl.__version__, n, str(corpus_path), eval_sets]))
        saved = Path(folder) / f"eval-index-{key}.arrow"
        if saved.is_file():
            return EvalIndex.load(saved)
    heldout = load_udhr(corpus_path).filter(pl.col("split") != "train")["text"].to_list()
    index = EvalIndex({"udhr-heldout": heldout, **{name: read_eval_texts(path) for name, path in map(named_eval_set, eval_sets)}}, n)
    if saved is not None:
        index.save(saved)
    return index
