"""A user's documents as text: which files a list of paths, globs and folders names, and their text.

Plain text (``.txt``, ``.md``, any other name) is read exactly as it is (see :func:`zoo.read_text`).
HTML (``.html``, ``.htm``) goes through the standard library's parser; PDF (``.pdf``) through
pypdf and Word (``.docx``) through python-docx, both in the ``docs`` extra
(``pip install 'zoo[docs]'``), imported only when such a file is met.

A file whose text cannot be had (an encrypted PDF, a scanned PDF without a text layer, a
damaged archive, bytes that are not text) raises :class:`UnreadableFile`, which names the
file and the reason; the dataset decides whether to refuse or skip it.
"""

from __future__ import annotations

import glob
import importlib
import os
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path

from zoo import DataError, first_line, read_text

EXTRA = "pip install 'zoo[docs]'"
TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown", ".rst")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
DOCUMENT_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + (".pdf", ".docx")  # what a folder contributes


class UnreadableFile(DataError):
    """A file whose text cannot be had; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class MissingExtra(DataError):
    """An extractor's package is not installed: never skipped, whatever dataset.on_error says."""


# --- which files ----------------------------------------------------------------------------------

def folder_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(documents, other files) under ``folder``, recursively, sorted; hidden files and folders are left out."""
    docs, other = [], []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            (docs if path.suffix.lower() in DOCUMENT_SUFFIXES else other).append(path)
    return docs, other


def expand(patterns: Iterable[str], key: str) -> tuple[list[Path], list[Path]]:
    """(the files named by ``patterns``, in order and each once; files in named folders that are no documents).

    A pattern is a path, a glob (its matches sorted; ``**`` recurses) or a folder, whose
    documents (:data:`DOCUMENT_SUFFIXES`) are taken recursively. A glob that matches nothing,
    a path that does not exist and a folder without a document are errors naming ``dataset.KEY``.
    """
    out: dict[Path, None] = {}  # an ordered set
    ignored: dict[Path, None] = {}
    for pattern in patterns:
        before = len(out)
        expanded = os.path.expanduser(pattern)
        if glob.has_magic(expanded):
            matches = sorted(glob.glob(expanded, recursive=True))
            if not matches:
                raise DataError(f"dataset.{key}: the glob '{pattern}' matches no file (relative to {Path.cwd()})")
        else:
            path = Path(expanded)
            if not path.exists():
                raise DataError(f"dataset.{key}: {path}: no such file (relative to {Path.cwd()})")
            matches = [expanded]
        for match in map(Path, matches):
            if not match.is_dir():
                out[match] = None
                continue
            docs, other = folder_files(match)
            if not docs and not glob.has_magic(expanded):
                raise DataError(f"dataset.{key}: {match} is a folder with no document in it "
                                f"({', '.join(DOCUMENT_SUFFIXES)}); name the files to read, or a glob")
            out.update(dict.fromkeys(docs))
            ignored.update(dict.fromkeys(other))
        if len(out) == before and glob.has_magic(expanded):  # it matched folders without documents
            raise DataError(f"dataset.{key}: the glob '{pattern}' matches no document, only folders without one")
    return list(out), [p for p in ignored if p not in out]


# --- their text -----------------------------------------------------------------------------------

def normalize(text: str) -> str:
    """Whitespace tidied: one space for runs of spaces and tabs, no space at line ends, at most one blank
    line in a row, no invisible characters (soft hyphen, zero-width space, BOM), no space at either end."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = re.sub(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]", "", text)
    text = re.sub(r"[^\S\n]+", " ", text)  # every other whitespace (tab, no-break space, ...) is one space
    text = re.sub(r" ?\n ?", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


class _HTMLText(HTMLParser):
    """The visible text of a page: blocks on lines of their own, scripts, styles and the head left out."""

    SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg"})
    BLOCK = frozenset({"p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article",
                       "header", "footer", "nav", "aside", "main", "blockquote", "pre", "hr", "h1", "h2", "h3", "h4",
                       "h5", "h6", "figure", "figcaption", "form", "address", "details", "summary"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = self.pre = 0
        self.gap = ""  # the widest break asked for since the last text: "", "\n" or "\n\n"

    def _block(self, tag: str) -> None:
        want = "\n\n" if tag in ("p", "pre", "blockquote") or tag[0] == "h" else "\n"
        self.gap = max(self.gap, want, key=len)

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "body":  # a page whose <head> is never closed
            self.skip = 0
        elif tag in self.SKIP:
            self.skip += 1
        self.pre += tag == "pre"
        if tag in self.BLOCK:
            self._block(tag)
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in self.BLOCK:
            self._block(tag)

    def handle_data(self, data: str) -> None:
        if self.skip or (not self.pre and not data.strip()):
            return
        if self.gap and self.parts:
            self.parts.append(self.gap)
        self.gap = ""
        # outside <pre>, line breaks in the source are spaces, as a browser shows them
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_text(path: Path, encoding: str) -> str:
    parser = _HTMLText()
    parser.feed(read_text(path, encoding, allow_empty=False))
    parser.close()
    return "".join(parser.parts)


def _need(module: str, package: str, path: Path):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{path}: reading {path.suffix.lower()} files needs {package}, part of the docs extra: "
                           f"{EXTRA}") from None


def pdf_text(path: Path) -> tuple[str, str]:
    """(text, what was read): the pages' text, a blank line between pages."""
    pypdf = _need("pypdf", "pypdf", path)
    try:
        reader = pypdf.PdfReader(path)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # many PDFs are encrypted with an empty user password
            except Exception as exc:  # e.g. AES without the cryptography package
                raise UnreadableFile(path, f"an encrypted PDF that cannot be opened ({first_line(exc)})") from None
            if not opened:
                raise UnreadableFile(path, "an encrypted (password-protected) PDF; save a copy without the password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableFile:
        raise
    except Exception as exc:  # pypdf raises many kinds for damaged files
        raise UnreadableFile(path, f"not a readable PDF ({first_line(exc)}); the file is damaged or not a PDF") from None
    if not any(p.strip() for p in pages):
        raise UnreadableFile(path, f"no text layer in its {len(pages)} page(s) (a scanned PDF?); run OCR on it "
                                   "first (e.g. ocrmypdf), or leave it out")
    return "\n\n".join(pages), f"pdf, {len(pages)} pages"


def docx_text(path: Path) -> tuple[str, str]:
    """(text, what was read): the body's paragraphs and tables, in document order."""
    docx = _need("docx", "python-docx", path)
    try:
        document = docx.Document(str(path))
        blocks = []
        for item in document.iter_inner_content():  # paragraphs and tables, in order
            if hasattr(item, "rows"):  # a table: a line per row
                blocks.append("\n".join("\t".join(cell.text for cell in row.cells) for row in item.rows))
            else:
                blocks.append(item.text)
    except Exception as exc:  # BadZipFile, KeyError for a missing part, XML errors ...
        raise UnreadableFile(path, f"not a readable .docx file ({first_line(exc)}); the file is damaged or not "
                                   "a Word document (.doc files: save them as .docx)") from None
    return "\n\n".join(blocks), f"docx, {len(blocks)} paragraphs"


def extract(path: Path, encoding: str, tidy_text: bool) -> tuple[str, str]:
    """(text, kind) of one file; documents always normalised, plain text only when ``tidy_text``."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        text, kind = pdf_text(path)
    elif suffix == ".docx":
        text, kind = docx_text(path)
    elif suffix in HTML_SUFFIXES:
        text, kind = html_text(path, encoding), "html"
    else:
        text = read_text(path, encoding, allow_empty=False)
        text, kind = (normalize(text) if tidy_text else text), "text"
        return _nonempty(path, text), kind
    return _nonempty(path, normalize(text)), kind


def _nonempty(path: Path, text: str) -> str:
    if not text.strip():
        raise UnreadableFile(path, "no text in it (only whitespace or markup)")
    return text
