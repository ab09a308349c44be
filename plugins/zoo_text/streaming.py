"""Which of a user's files are read in chunks, and the check every chunked file gets before its text is used."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from zoo import read_chunks

from .documents import HTML_SUFFIXES, UnreadableFile


def streamable(path: Path, normalize_text: bool) -> bool:
    """Plain text read exactly as it is: everything but HTML, PDF and Word files (and tidied text)."""
    return not normalize_text and path.suffix.lower() not in (*HTML_SUFFIXES, ".pdf", ".docx")


def scan(path: Path, encoding: str) -> int:
    """The characters of ``path``, decoded in chunks: undecodable bytes, an empty file or one of only
    whitespace fail here, before any of its text is handed on."""
    n, text = 0, False
    for chunk in read_chunks(path, encoding):
        n += len(chunk)
        text = text or not chunk.isspace()
    if not text:
        raise UnreadableFile(path, "no text in it (only whitespace or markup)")
    return n


def head(chunks: Iterable[str], n: int) -> Iterator[str]:
    """The first ``n`` characters of ``chunks``."""
    for chunk in chunks:
        if n <= 0:
            return
        yield chunk[:n]
        n -= len(chunk)


def tail(chunks: Iterable[str], n: int) -> Iterator[str]:
    """The characters of ``chunks`` after the first ``n``."""
    for chunk in chunks:
        if n >= len(chunk):
            n -= len(chunk)
            continue
        yield chunk[n:]
        n = 0
