"""Text read and handed on in chunks, so that no file is ever whole in memory.

:func:`read_chunks` decodes a file piece by piece (a character cut in two by a chunk
boundary is completed from the next chunk) and fails as :func:`zoo.read_text` does, naming
the file, the byte offset and the line. :func:`whitespace_cuts` regroups pieces of text so
that every chunk ends at a *cut point*: just before whitespace that follows a non-space
character. No tokenizer zoo ships (characters, words, GPT-2's byte-level BPE) merges across
such a point, so encoding the chunks one by one gives exactly the ids of encoding the whole text.

The separators U+001C-U+001F are never cut before: Python's ``str.isspace`` (and ``str.split``)
counts them as whitespace, Unicode's White_Space (``\\s`` of GPT-2's pattern in the ``tokenizers``
library) does not, so byte-level BPE keeps them in one piece with the punctuation before them
(``".\\x1c"``). Every other character is whitespace to both or to neither.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import DataError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 22  # read this much of a file at a time
CUT_CHARS = 1 << 18  # whitespace_cuts hands on chunks of at least this many characters (but the last)
MAX_UNCUT = 1 << 26  # text without a cut point is handed on whole once it is this long (a warning says so)


@dataclass
class TextStream:
    """The documents of a split, each an iterable of text chunks, and about how many bytes they hold."""

    documents: Iterable[Iterable[str]]
    total_bytes: int | None = None


def _open(path: Path):
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except FileNotFoundError as exc:
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise DataError(f"{path}: no such file{where}") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, not a file; name the files in it") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from exc


def read_chunks(path: str | Path, encoding: str = "utf-8", *, progress: Callable[[int], None] | None = None,
                chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """The exact text of ``path`` (``*.gz`` decompressed), decoded ``chunk_bytes`` at a time.

    ``progress`` is called with the bytes read (of the file as stored, before decompression counts as read).
    An empty file, unreadable or undecodable bytes are a :class:`DataError` naming the file.
    """
    path = Path(path)
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, empty = 0, True
    with _open(path) as fh:
        while True:
            try:
                data = fh.read(chunk_bytes)
            except (OSError, EOFError) as exc:
                raise DataError(f"{path}: cannot read it ({exc}); the file is damaged") from exc
            final = not data
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                raise _decode_error(path, encoding, exc, data, offset) from exc
            if progress is not None and data:
                progress(len(data))
            if text:
                empty = False
                yield text
            if final:
                break
            offset += len(data)
    if empty:
        raise DataError(f"{path}: the file is empty; remove it from the list or give it some text")


def _decode_error(path: Path, encoding: str, exc: UnicodeDecodeError, data: bytes, offset: int) -> DataError:
    held = len(exc.object) - len(data)  # bytes of the previous chunk the decoder held back
    at = offset - held + exc.start
    line = _newlines_before(path, at) + 1
    bad = exc.object[exc.start]
    return DataError(f"{path}: not valid {encoding}: byte {bad:#04x} at byte offset {at} (line {line}) "
                     f"({exc.reason}); convert the file to {encoding} (e.g. 'iconv -f latin1 -t {encoding}'), "
                     "or set dataset.encoding to the encoding it is written in")


def _newlines_before(path: Path, end: int) -> int:
    """Newlines in the first ``end`` bytes of ``path`` (counted only when an error needs a line number)."""
    n = 0
    with _open(path) as fh:
        while end > 0:
            data = fh.read(min(CHUNK_BYTES, end))
            if not data:
                break
            n += data.count(b"\n")
            end -= len(data)
    return n


def count_chars(path: str | Path, encoding: str = "utf-8") -> int:
    """The characters of ``path``'s text, decoded in chunks (checks every byte on the way)."""
    return sum(len(chunk) for chunk in read_chunks(path, encoding))


# A cut point: whitespace (but U+001C-U+001F, see the module's docstring) after a non-space character
_CUT = re.compile(r"(?<=\S)[^\S\x1c-\x1f]")


def _last_cut(text: str) -> int:
    """The last cut point of ``text`` (0 when it has none): before the last newline or space that
    follows a non-space character, else (rarely) the last cut point before any other whitespace."""
    for sep in ("\n", " "):
        j = text.rfind(sep)
        while j > 0:
            if not text[j - 1].isspace():
                return j
            j = text.rfind(sep, 0, j)
    last = 0
    for found in _CUT.finditer(text):
        last = found.start()
    return last


def whitespace_cuts(pieces: Iterable[str], min_chars: int = CUT_CHARS) -> Iterator[str]:
    """The text of ``pieces`` again, in chunks of at least ``min_chars`` that end at a cut point (just before
    whitespace following a non-space character; see the module's docstring); the last ends where the text ends."""
    buf: list[str] = []
    size = 0
    for piece in pieces:
        if not piece:
            continue
        buf.append(piece)
        size += len(piece)
        if size < min_chars:
            continue
        text = "".join(buf)
        cut = _last_cut(text)
        if cut == 0 and len(text) >= MAX_UNCUT:
            log.warning("%d characters without whitespace: encoded in one go at a cut that a tokenizer "
                        "may treat differently from the whole text", len(text))
            cut = len(text)
        if cut == 0:
            buf, size = [text], len(text)
            continue
        yield text[:cut]
        rest = text[cut:]
        buf, size = ([rest], len(rest)) if rest else ([], 0)
    if buf:
        yield "".join(buf)


def split_text(text: str, size: int) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, each cut at the first cut point past ``size``
    (see :func:`whitespace_cuts`): encoded one by one they give the ids of the whole text."""
    start, n = 0, len(text)
    while start < n:
        found = _CUT.search(text, start + size) if start + size < n else None
        end = found.start() if found else n
        yield text[start:end]
        start = end


@contextlib.contextmanager
def byte_progress(total: int | None, desc: str, show: bool) -> Iterator[Callable[[int], None]]:
    """A callback that advances a tqdm bar in bytes on stderr (nothing when ``show`` is false)."""
    if not show:
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
              dynamic_ncols=True) as bar:
        yield bar.update
