"""Word vectors for caption text from a local file (word2vec / GloVe), and MCN's tokeniser.

Nothing is downloaded: the user gives the path of a file they already have.

* ``text`` format (GloVe, word2vec's text output): one word per line, ``word v1 ... vN`` separated
  by single spaces; word2vec's optional first line ``<count> <dim>`` is recognised and skipped.
* ``binary`` format (word2vec's ``GoogleNews-vectors-negative300.bin``, MCN's table): a header
  line ``<count> <dim>``, then per word its UTF-8 bytes, one space, ``dim`` little-endian float32
  (and an optional newline before the next word).

``fmt="auto"`` picks ``binary`` for ``*.bin`` / ``*.bin.gz`` and ``text`` otherwise; ``*.gz`` files
are read through gzip. A malformed line (wrong number of values, a value that is not a finite
number, a bad header, a truncated binary file) raises ``ValueError`` naming the file and the line
(binary: the word's number). A word listed twice keeps its first vector.

Tokeniser (MCN / HowTo100M data loaders): ``re.findall(r"[\\w']+", text)``, lower-cased by default;
words missing from the table are skipped, the rest truncated to ``max_words`` and zero-padded.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import re

import numpy as np

FORMATS = ("auto", "text", "binary")
_TOKEN = re.compile(r"[\w']+")
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True, eq=False)
class WordVectors:
    """``index``: word -> row of ``table`` ``[V, D]`` float32; ``path``: where they came from."""

    index: dict
    table: np.ndarray
    path: str

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def __len__(self) -> int:
        return len(self.index)


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _format_of(path: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"word vectors format {fmt!r}: expected one of {FORMATS}")
    if fmt != "auto":
        return fmt
    return "binary" if path.removesuffix(".gz").endswith(".bin") else "text"


def _header(fields: list[str]) -> tuple[int, int] | None:
    """``(count, dim)`` if ``fields`` is word2vec's ``<count> <dim>`` header line."""
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[0]), int(fields[1])
    return None


def _read_text(path: str, limit: int):
    words, rows, lines = [], [], []
    dim = None
    with _open(path) as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip()
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}, line {number}: not UTF-8 text ({error})") from None
            if not line:
                continue
            fields = line.split(" ")
            if number == 1 and (header := _header(fields)) is not None:
                dim = header[1]
                continue
            if dim is None:
                dim = len(fields) - 1
                if dim < 1:
                    raise ValueError(
                        f"{path}, line {number}: expected 'word v1 ... vN', got {line[:80]!r}"
                    )
            if len(fields) != dim + 1:
                raise ValueError(
                    f"{path}, line {number}: {len(fields) - 1} values after the word "
                    f"{fields[0]!r}, expected {dim} ('word v1 ... v{dim}', single spaces)"
                )
            try:
                vector = np.asarray(fields[1:], dtype=np.float32)
            except ValueError:
                raise ValueError(
                    f"{path}, line {number}: a value of word {fields[0]!r} is not a number"
                ) from None
            words.append(fields[0])
            rows.append(vector)
            lines.append(number)
            if limit and len(words) >= limit:
                break
    if not words:
        raise ValueError(f"{path}: no word vectors ('word v1 ... vN' per line)")
    return words, np.stack(rows), [f"line {n}" for n in lines]


def _read_binary(path: str, limit: int):
    with _open(path) as f:
        header = f.readline()
        try:
            count, dim = _header(header.decode("ascii").split()) or (None, None)
        except UnicodeDecodeError:
            count = dim = None
        if count is None or dim < 1:
            raise ValueError(
                f"{path}, line 1: expected word2vec's binary header '<count> <dim>', got "
                f"{header[:80]!r} (a text file? set the format to 'text')"
            )
        n = min(count, limit) if limit else count
        table = np.empty((n, dim), np.float32)
        words = []
        buffer, pos = b"", 0
        size = 4 * dim
        for i in range(n):
            while True:  # the word runs up to the next space
                end = buffer.find(b" ", pos)
                if end >= 0 and len(buffer) - end - 1 >= size:
                    break
                more = f.read(_CHUNK)
                if not more:
                    raise ValueError(
                        f"{path}: truncated at word {i + 1} of {count} (the header promises "
                        f"{count} words of {dim} float32)"
                    )
                buffer, pos = buffer[pos:] + more, 0
            word = buffer[pos:end].lstrip(b"\n")
            if not word or len(word) > 1000:
                raise ValueError(
                    f"{path}, word {i + 1}: malformed entry (expected '<word> ' then {dim} "
                    f"float32), got {bytes(word[:40])!r}"
                )
            table[i] = np.frombuffer(buffer, "<f4", dim, end + 1)
            words.append(word.decode("utf-8", errors="replace"))
            pos = end + 1 + size
    return words, table, [f"word {i + 1}" for i in range(n)]


def load_word_vectors(path: str, *, fmt: str = "auto", limit: int = 0) -> WordVectors:
    """The table in ``path`` (its first ``limit`` words if > 0); see the module docstring."""
    path = os.fspath(path)
    if not path:
        raise ValueError(
            "no word-vector file given: set config.data.word_vectors_path to a local word2vec / "
            "GloVe file (e.g. GoogleNews-vectors-negative300.bin); nothing is downloaded"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"word-vector file {path!r} does not exist")
    reader = _read_binary if _format_of(path, fmt) == "binary" else _read_text
    words, table, places = reader(path, int(limit))
    finite = np.isfinite(table).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise ValueError(f"{path}, {places[bad]}: word {words[bad]!r} has non-finite values")
    index: dict[str, int] = {}
    for row, word in enumerate(words):
        index.setdefault(word, row)
    return WordVectors(index=index, table=table, path=path)


@functools.cache
def cached_word_vectors(path: str, fmt: str = "auto", limit: int = 0) -> WordVectors:
    """:func:`load_word_vectors`, once per process (grain workers each load their own copy)."""
    return load_word_vectors(path, fmt=fmt, limit=limit)


def tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """MCN's caption tokens: runs of word characters and apostrophes (``"[\\w']+"``)."""
    return _TOKEN.findall(text.lower() if lowercase else text)


def caption_vectors(
    text: str, vectors: WordVectors, max_words: int, *, lowercase: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``text`` -> ``(words [max_words, D] float32, mask [max_words] float32)``: the vectors of
    its first ``max_words`` known words (unknown ones skipped), zero rows after them."""
    rows = [vectors.index[w] for w in tokenize(text, lowercase=lowercase) if w in vectors.index]
    rows = rows[:max_words]
    words = np.zeros((max_words, vectors.dim), np.float32)
    mask = np.zeros(max_words, np.float32)
    words[: len(rows)] = vectors.table[rows]
    mask[: len(rows)] = 1.0
    return words, mask
