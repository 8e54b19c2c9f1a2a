"""Readers for the file formats of the real datasets (one reader per format).

Every reader returns an ``Interactions`` with 0-based int64 ids. Parsing is vectorised over the
bytes of the file (numpy), yet every check still knows its line: a malformed line raises a
``DataFormatError`` that names ``path:line`` and quotes the line, so a user can fix the file.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

_NEWLINE = ord("\n")
_ZERO, _NINE, _DOT, _MINUS = ord("0"), ord("9"), ord("."), ord("-")
_PROBLEMS = {1: "non-integer token", 2: "non-numeric token", 3: "zero id (ids are 1-based)", 4: "negative value"}


class DataFormatError(ValueError):
    """A line of a data file that does not match its format; the message names ``path:line``."""


@dataclass(frozen=True, eq=False)
class Interactions:
    """Parallel arrays, one entry per interaction; ``ratings``/``timestamps`` where the file has them."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def select(self, index: np.ndarray) -> Interactions:
        """The interactions at ``index`` (a mask or integer indices)."""
        return Interactions(
            self.users[index],
            self.items[index],
            None if self.ratings is None else self.ratings[index],
            None if self.timestamps is None else self.timestamps[index],
        )

    def at_least(self, min_rating: float) -> Interactions:
        """Positives: interactions rated ``min_rating`` or more."""
        if self.ratings is None:
            raise ValueError("these interactions have no ratings to threshold")
        return self.select(self.ratings >= min_rating)

    def unique_pairs(self) -> Interactions:
        """First occurrence of every (user, item) pair, in file order (logs can repeat a pair)."""
        if len(self) == 0:
            return self
        key = self.users * (int(self.items.max()) + 1) + self.items
        _, first = np.unique(key, return_index=True)
        return self.select(np.sort(first))

    @staticmethod
    def concat(parts: list[Interactions]) -> Interactions:
        """All parts one after the other (ratings and timestamps kept only if every part has them)."""
        def join(field: str) -> np.ndarray | None:
            arrays = [getattr(p, field) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return Interactions(join("users"), join("items"), join("ratings"), join("timestamps"))


class _Tokens:
    """A text file cut into tokens: value, line and column of each token, for vectorised checks.

    Separators collapse (several in a row count as one); blank lines have no tokens. ``line`` is
    0-based within ``data``; ``first_line`` is the file line number of ``data``'s first line (2
    when a header was cut off).
    """

    def __init__(self, where: str, data: bytes, separators: bytes, header: str | None = None) -> None:
        self.where, self.data, self.first_line = where, data, 1
        if header is not None:
            head, _, rest = data.partition(b"\n")
            if head.rstrip(b"\r").decode("utf-8", "replace") != header:
                self._fail(0, f"expected the header {header!r}")
            self.data, self.first_line = rest, 2
        buf = np.frombuffer(self.data, dtype=np.uint8)
        newline = buf == _NEWLINE
        sep = newline | np.isin(buf, np.frombuffer(separators, dtype=np.uint8))
        start = ~sep & np.concatenate(([True], sep[:-1]))
        n_lines = int(newline.sum()) + int(len(buf) > 0 and buf[-1] != _NEWLINE)
        self.line = (np.cumsum(newline, dtype=np.int32) - newline)[start]
        self.counts = np.bincount(self.line, minlength=n_lines)
        self.line_start = np.cumsum(self.counts) - self.counts  # index of each line's first token
        self.column = np.arange(len(self.line)) - self.line_start[self.line]
        self.start = np.flatnonzero(start)
        n_tokens = len(self.start)
        token = (np.cumsum(start, dtype=np.int32) - 1)[~sep]
        body = buf[~sep]
        self.length = np.bincount(token, minlength=n_tokens)
        self.digits = np.bincount(token[(body >= _ZERO) & (body <= _NINE)], minlength=n_tokens)
        self.zeros = np.bincount(token[body == _ZERO], minlength=n_tokens)
        self.dots = np.bincount(token[body == _DOT], minlength=n_tokens)
        self.minus = buf[self.start] == _MINUS if n_tokens else np.zeros(0, dtype=bool)
        table = bytes.maketrans(separators, b" " * len(separators))
        self.values = np.array(self.data.translate(table).split(), dtype=bytes)

    def _fail(self, line: int, reason: str) -> None:
        text = self.data.split(b"\n")[line].rstrip(b"\r").decode("utf-8", "replace")
        raise DataFormatError(f"{self.where}:{line + self.first_line}: {reason}: {text!r}")

    def _token_problems(self, columns: str) -> np.ndarray:
        """Problem code of every token (0 = fine) against the kinds that ``columns`` expects."""
        kind = np.frombuffer(columns.encode(), dtype=np.uint8)[np.minimum(self.column, len(columns) - 1)]
        integer = self.digits == self.length
        decimal = (self.dots == 1) & (self.digits == self.length - 1) & (self.length > 1)
        rest = self.length - self.minus
        negative = self.minus & (rest > 0) & ((self.digits == rest) | ((self.dots == 1) & (self.digits == rest - 1)))
        wants_number = kind == ord("n")
        problem = np.zeros(len(kind), dtype=np.int8)
        problem[wants_number & ~(integer | decimal)] = 2
        problem[~wants_number & ~integer] = 1
        problem[(kind == ord("p")) & integer & (self.zeros == self.length)] = 3
        problem[negative] = 4
        return problem

    def check(self, line_ok: np.ndarray, reason: str, columns: str = "i") -> None:
        """Raise at the first line that fails ``line_ok`` or holds a token of the wrong kind.

        ``columns`` names the kind of each column: ``i`` a non-negative integer id, ``p`` a
        1-based (positive) integer id, ``n`` a non-negative number; the last letter holds for
        every further column.
        """
        problem = self._token_problems(columns)
        bad_tokens = np.flatnonzero(problem)
        bad_lines = np.flatnonzero(~line_ok)
        first_line = int(bad_lines[0]) if len(bad_lines) else len(self.counts)
        if len(bad_tokens) and self.line[bad_tokens[0]] < first_line:
            first = bad_tokens[0]
            text = self.data[self.start[first]:self.start[first] + self.length[first]].decode("utf-8", "replace")
            self._fail(int(self.line[first]), f"{_PROBLEMS[problem[first]]} {text!r}")
        if len(bad_lines):
            self._fail(first_line, reason)

    def column_values(self, column: int, line_mask: np.ndarray, dtype: type = np.int64) -> np.ndarray:
        """Values of ``column`` on the lines of ``line_mask``, in file order."""
        return self.values[self.line_start[np.flatnonzero(line_mask)] + column].astype(dtype)


def _read_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


def _fixed(where: str, data: bytes, separators: bytes, columns: str, header: str | None = None) -> _Tokens:
    """Tokens of a file with exactly ``len(columns)`` fields per line (blank lines allowed)."""
    tokens = _Tokens(where, data, separators, header)
    width = len(columns)
    tokens.check((tokens.counts == width) | (tokens.counts == 0), f"expected {width} fields", columns)
    return tokens


def read_selfrec(path: Path) -> Interactions:
    """SELFRec ``user item weight`` lines (the weight is always 1 and is not kept).

    The Yelp2018 ``train.txt`` quirk (see its SOURCE.md): a line holding one lone token directly
    followed by a two-token line is one record broken over two lines; the lone token is skipped
    and the next line read as the pair. Any other line without three fields is an error.
    """
    tokens = _Tokens(str(path), _read_bytes(path), b" \t\r")
    counts = tokens.counts
    pair = counts == 2
    stray = (counts == 1) & np.concatenate((pair[1:], [False]))
    broken_tail = pair & np.concatenate(([False], stray[:-1]))
    records = (counts == 3) | broken_tail
    tokens.check(records | stray | (counts == 0), "expected 3 fields `user item weight`")
    return Interactions(tokens.column_values(0, records), tokens.column_values(1, records))


def read_pairs(path: Path) -> Interactions:
    """``user item`` lines."""
    tokens = _fixed(str(path), _read_bytes(path), b" \t\r", "ii")
    lines = tokens.counts > 0
    return Interactions(tokens.column_values(0, lines), tokens.column_values(1, lines))


def read_adjacency(path: Path) -> Interactions:
    """Adjacency lists ``user item1 item2 ...``, one user per line."""
    tokens = _Tokens(str(path), _read_bytes(path), b" \t\r")
    tokens.check(tokens.counts >= 0, "")
    is_item = tokens.column > 0
    users = tokens.values[tokens.line_start[tokens.line[is_item]]].astype(np.int64)
    return Interactions(users, tokens.values[is_item].astype(np.int64))


def read_rating_csv(path: Path) -> Interactions:
    """CSV ``user,item,rating`` without header, 0-based ids (AutoDebias' Yahoo! R3 and Coat)."""
    tokens = _fixed(str(path), _read_bytes(path), b",\r", "iin")
    lines = tokens.counts > 0
    return Interactions(
        tokens.column_values(0, lines), tokens.column_values(1, lines), tokens.column_values(2, lines, np.float64)
    )


def read_dense_matrix(path: Path) -> Interactions:
    """Coat's dense ``.ascii`` rating matrix: one row per user, one column per item, 0 = unrated."""
    tokens = _Tokens(str(path), _read_bytes(path), b" \t\r")
    rows = tokens.counts > 0
    width = int(tokens.counts[rows][0]) if rows.any() else 0
    tokens.check((tokens.counts == width) | ~rows, f"expected {width} columns like the first row", "n")
    matrix = tokens.values.astype(np.float64).reshape(int(rows.sum()), width)
    users, items = np.nonzero(matrix)
    return Interactions(users.astype(np.int64), items.astype(np.int64), matrix[users, items])


def read_zip_tsv(path: Path, member: str) -> Interactions:
    """One TSV of an IR-Benchmark ``proc.zip`` (header ``user_procid<TAB>item_procid``)."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(member)
    tokens = _fixed(f"{path}/{member}", data, b"\t\r", "ii", header="user_procid\titem_procid")
    lines = tokens.counts > 0
    return Interactions(tokens.column_values(0, lines), tokens.column_values(1, lines))


def read_movielens_udata(path: Path) -> Interactions:
    """MovieLens-100K ``u.data``: ``user<TAB>item<TAB>rating<TAB>timestamp``, 1-based ids made 0-based."""
    tokens = _fixed(str(path), _read_bytes(path), b"\t\r", "ppni")
    lines = tokens.counts > 0
    return Interactions(
        tokens.column_values(0, lines) - 1,
        tokens.column_values(1, lines) - 1,
        tokens.column_values(2, lines, np.float64),
        tokens.column_values(3, lines),
    )


def read_movielens_csv(path: Path) -> Interactions:
    """MovieLens ``ratings.csv`` (header ``userId,movieId,rating,timestamp``); sparse ids re-indexed in id order."""
    tokens = _fixed(str(path), _read_bytes(path), b",\r", "iini", header="userId,movieId,rating,timestamp")
    lines = tokens.counts > 0
    _, users = np.unique(tokens.column_values(0, lines), return_inverse=True)
    _, items = np.unique(tokens.column_values(1, lines), return_inverse=True)
    return Interactions(
        users.astype(np.int64), items.astype(np.int64),
        tokens.column_values(2, lines, np.float64), tokens.column_values(3, lines),
    )


READERS: dict[str, Callable[..., Interactions]] = {
    "selfrec": read_selfrec,
    "pairs": read_pairs,
    "adjacency": read_adjacency,
    "rating_csv": read_rating_csv,
    "dense_matrix": read_dense_matrix,
    "zip_tsv": read_zip_tsv,
    "movielens_udata": read_movielens_udata,
    "movielens_csv": read_movielens_csv,
}
