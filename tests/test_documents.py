"""The `text` dataset on a user's documents: HTML, PDF and Word files, folders, unreadable files, overlap.

Every fixture is made here at test time: PDFs as a few hand-written PDF objects (pypdf
encrypts one), Word files with python-docx. pypdf and python-docx are the ``docs`` extra.
"""

from __future__ import annotations

import io
import logging
import sys
import zipfile

import pytest

import zoo
from zoo import config
from zoo_text.datasets import TextFiles
from zoo_text.documents import normalize
from zoo_text.overlap import overlap

pypdf = pytest.importorskip("pypdf")
docx = pytest.importorskip("docx")

LOG = "zoo_text.datasets"


def text_files(**values) -> TextFiles:
    return TextFiles(config.build(TextFiles.Config, values, "dataset"))


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A PDF with one page per list of lines, drawn in Helvetica; an empty list is a page without text (a scan)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        ops = " ".join(f"({line.replace('(', '[').replace(')', ']')}) Tj 0 -16 Td" for line in lines)
        stream = f"BT /F1 12 Tf 72 720 Td {ops} ET" if lines else ""
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R "
                       "/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def encrypted_pdf(lines: list[str], password: str = "secret") -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(pdf_bytes([lines])))
    writer.encrypt(user_password=password, algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def write_docx(path, paragraphs: list[str], table: list[list[str]] | None = None) -> None:
    document = docx.Document()
    document.add_heading(paragraphs[0], level=1)
    for p in paragraphs[1:]:
        document.add_paragraph(p)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
    document.save(str(path))


HTML = """<!doctype html><html><head><title>Page title</title><style>p { color: red }</style>
<script>var x = "<p>not text</p>";</script></head>
<body><h1>Field   notes</h1><p>First&nbsp;paragraph,
wrapped in the source &amp; with an entity.</p><ul><li>one</li><li>two</li></ul>
<pre>keep
  this</pre><noscript>enable scripts</noscript></body></html>"""


@pytest.fixture
def notes(tmp_path):
    """A folder of mixed documents, one of them in a subfolder, plus files a folder does not contribute."""
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Markdown note\n\nkept   exactly\n", encoding="utf-8")
    (root / "b.html").write_text(HTML, encoding="utf-8")
    (root / "sub" / "c.pdf").write_bytes(pdf_bytes([["Portable document, page one."], ["Page two of it."]]))
    write_docx(root / "sub" / "d.docx", ["Word heading", "A paragraph in Word."], [["cell 1", "cell 2"]])
    (root / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (root / ".hidden.txt").write_text("never read", encoding="utf-8")
    return root


def test_a_folder_is_read_recursively_and_every_file_reported(notes, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    held_out = notes.parent / "held_out.txt"
    held_out.write_text("text never trained on", encoding="utf-8")
    ds = text_files(files=[str(notes)], val_files=[str(held_out)])
    texts = [e["text"] for e in ds.load("train")]
    assert len(texts) == 4  # the four documents, in sorted order; not the .png, not the hidden file
    assert texts[0] == "# Markdown note\n\nkept   exactly\n"  # plain text exactly as it is
    assert texts[1].startswith("Field notes\n\nFirst paragraph, wrapped in the source & with an entity.")
    assert texts[2] == "Portable document, page one.\n\nPage two of it."
    assert texts[3] == "Word heading\n\nA paragraph in Word.\n\ncell 1 cell 2"
    logged = caplog.text
    for name, chars in (("a.md", 32), ("c.pdf", len("Portable document, page one.\n\nPage two of it."))):
        assert f"{name}: {chars} characters" in logged, logged
    assert "pdf, 2 pages" in logged
    assert "not read: " in logged and "photo.png" in logged
    assert "dataset.files: 4 file(s)" in logged and "1 other file(s) in its folders not read" in logged


def test_html_text_is_what_a_browser_shows(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(HTML, encoding="utf-8")
    got = text_files(files=[str(page)]).read(page)
    assert got == ("Field notes\n\nFirst paragraph, wrapped in the source & with an entity.\n\none\ntwo\n\n"
                   "keep\nthis"), got  # no title, style, script or noscript; <pre> keeps its lines
    assert "not text" not in got and "color" not in got


def test_docx_paragraphs_and_tables_in_document_order(tmp_path):
    path = tmp_path / "report.docx"
    write_docx(path, ["Title", "Before the table."], [["a", "b"], ["c", "d"]])
    doc = docx.Document(str(path))
    doc.add_paragraph("After the table.")
    doc.save(str(path))
    got = text_files(files=[str(path)], val_fraction=0.01).read(path)
    assert got == "Title\n\nBefore the table.\n\na b\nc d\n\nAfter the table."  # a line per table row


@pytest.mark.parametrize("kind, words", [
    ("encrypted", ["encrypted", "password"]),
    ("scanned", ["no text layer", "1 page", "OCR"]),
    ("damaged-pdf", ["not a readable PDF", "damaged"]),
    ("damaged-docx", ["not a readable .docx", "damaged"]),
    ("not-zip-docx", ["not a readable .docx"]),
    ("binary-txt", ["not valid utf-8"]),
])
def test_an_unreadable_file_is_refused_naming_it_and_how_to_skip_it(tmp_path, kind, words):
    bad = tmp_path / {"encrypted": "e.pdf", "scanned": "s.pdf", "damaged-pdf": "d.pdf", "damaged-docx": "d.docx",
                      "not-zip-docx": "z.docx", "binary-txt": "b.txt"}[kind]
    if kind == "encrypted":
        bad.write_bytes(encrypted_pdf(["top secret"]))
    elif kind == "scanned":
        bad.write_bytes(pdf_bytes([[]]))
    elif kind == "damaged-pdf":
        bad.write_bytes(pdf_bytes([["text"]])[:40])
    elif kind == "damaged-docx":
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("hello.txt", "a zip, but no Word document in it")
    elif kind == "not-zip-docx":
        bad.write_bytes(b"this is not a zip archive")
    else:
        bad.write_bytes(b"\x00\xff\xfe binary")
    good = tmp_path / "good.txt"
    good.write_text("readable text " * 20, encoding="utf-8")
    with pytest.raises(zoo.DataError) as info:
        text_files(files=[str(good), str(bad)]).load("train")
    message = str(info.value)
    assert str(bad) in message and "dataset.on_error=skip" in message and "\n" not in message
    for w in words:
        assert w in message, message


def test_an_encrypted_pdf_with_an_empty_password_is_read(tmp_path):
    path = tmp_path / "open.pdf"
    path.write_bytes(encrypted_pdf(["Readable after all."], password=""))
    assert text_files(files=[str(path)]).read(path) == "Readable after all."


def test_skipped_files_are_reported_by_path_and_the_rest_is_used(tmp_path, caplog):
    bad, good = tmp_path / "scan.pdf", tmp_path / "good.md"
    bad.write_bytes(pdf_bytes([[], []]))
    good.write_text("the good text " * 10, encoding="utf-8")
    ds = text_files(files=[str(tmp_path)], on_error="skip")
    with caplog.at_level(logging.INFO, logger=LOG):
        train = ds.load("train")
    assert len(train) == 1 and train[0]["text"].startswith("the good text")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(bad) in w and "no text layer" in w for w in warnings), warnings
    assert "1 skipped as unreadable" in caplog.text
    only_bad = text_files(files=[str(bad)], on_error="skip")
    with pytest.raises(zoo.DataError, match="every one of its 1 file"):
        only_bad.load("train")


def test_without_the_docs_extra_the_error_names_it(tmp_path, monkeypatch):
    path = tmp_path / "a.pdf"
    path.write_bytes(pdf_bytes([["text"]]))
    monkeypatch.setitem(sys.modules, "pypdf", None)  # import pypdf now raises ImportError
    for on_error in ("refuse", "skip"):  # a missing package is never a file to skip
        with pytest.raises(zoo.DataError, match=r"a\.pdf: reading \.pdf files needs pypdf.*pip install 'zoo\[docs\]'"):
            text_files(files=[str(path)], on_error=on_error).load("train")


def test_folders_without_documents_and_globs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(zoo.DataError, match="is a folder with no document in it"):
        text_files(files=[str(tmp_path / "empty")]).load("train")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "one.dat").write_text("a plain text file with another suffix", encoding="utf-8")
    (tmp_path / "x" / "two.md").write_text("markdown", encoding="utf-8")
    ds = text_files(files=[str(tmp_path / "x" / "*")], val_fraction=0.5)  # a glob takes every file it matches
    assert [e["text"] for e in ds.load("train")] == ["a plain text file ", "mark"]
    with pytest.raises(zoo.DataError, match="matches no document, only folders without one"):
        text_files(files=[str(tmp_path / "emp*")]).load("train")


def test_the_val_split_alone_reads_no_training_file(tmp_path):
    broken, held_out = tmp_path / "broken.pdf", tmp_path / "held_out.txt"
    broken.write_bytes(b"%PDF-1.4 not really")
    held_out.write_text("validation text", encoding="utf-8")
    ds = text_files(files=[str(broken)], val_files=[str(held_out)])
    assert ds.load("val") == [{"text": "validation text"}]  # e.g. zoo eval: the training files are not read
    with pytest.raises(zoo.DataError, match="broken.pdf: not a readable PDF"):
        ds.load("train")


def test_whitespace_is_normalised_in_documents_and_on_request_in_plain_text(tmp_path):
    assert normalize(" a\t\tb \r\nc\u00a0 d\n\n\n\n\ne\u00adf\u200b  \n") == "a b\nc d\n\nef"
    path = tmp_path / "t.txt"
    path.write_text("x  y\r\n\n\n\nz ", encoding="utf-8")
    assert text_files(files=[str(path)]).read(path) == "x  y\r\n\n\n\nz "
    assert text_files(files=[str(path)], normalize_text=True).read(path) == "x y\n\nz"


def test_config_refuses_an_unknown_on_error():
    with pytest.raises(zoo.ConfigError, match="on_error"):
        config.build(TextFiles.Config, {"files": ["a.txt"], "on_error": "ignore"}, "dataset")


# --- the overlap figure ---------------------------------------------------------------------------

SEEN = "the quick brown fox jumps over the lazy dog while the farmer sleeps under a tree " * 3
UNSEEN = "completely different words appear in this held out document about rivers and old bridges " * 3


def test_overlap_counts_validation_word_8grams_seen_in_training():
    assert overlap([SEEN], [SEEN]).fraction == 1.0
    assert overlap([SEEN], [UNSEEN]).fraction == 0.0
    # case and punctuation do not hide a copy: "The QUICK, brown fox..." is the same text
    assert overlap([SEEN], [SEEN.upper().replace(" ", ", ")]).fraction == 1.0
    half = overlap([SEEN], [SEEN, UNSEEN])  # occurrences counted: about half of the validation 8-grams
    assert (half.seen, half.val_ngrams) == (48 - 7, (48 - 7) + (42 - 7))  # 48 and 42 words: 41 and 35 8-grams
    # n-grams never span two training texts
    assert overlap(["a b c d", "e f g h"], ["a b c d e f g h"]).fraction == 0.0
    short = overlap([SEEN], ["too short"])
    assert short.fraction is None and "fewer than 8 words" in short.describe()


def test_the_run_start_reports_leakage_as_a_warning(tmp_path, caplog):
    train, val = tmp_path / "train.txt", tmp_path / "val.txt"
    train.write_text(SEEN + UNSEEN, encoding="utf-8")
    val.write_text(SEEN, encoding="utf-8")
    ds = text_files(files=[str(train)], val_files=[str(val)])
    with caplog.at_level(logging.INFO, logger=LOG):
        ds.load("train")
        assert "word 8-grams" not in caplog.text  # known once both splits are loaded
        ds.load("val")
    leak = [r for r in caplog.records if "word 8-grams" in r.getMessage()]
    assert len(leak) == 1 and leak[0].levelno == logging.WARNING
    assert "100.00% of the validation text's word 8-grams" in leak[0].getMessage()
    assert "dataset.val_files" in leak[0].getMessage()
    val.write_text(" ".join(f"fresh{i}" for i in range(40)), encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOG):
        fresh = text_files(files=[str(train)], val_files=[str(val)])
        fresh.load("train"), fresh.load("val")
    clean = [r for r in caplog.records if "word 8-grams" in r.getMessage()]
    assert clean[0].levelno == logging.INFO and clean[0].getMessage().startswith("0.00%")


def test_zoo_train_on_a_folder_of_mixed_documents(cli, notes, tmp_path):
    """The issue's command: zoo train text-gpt --set 'dataset.files=["notes/**/*"]'."""
    held_out = tmp_path / "held_out.md"
    held_out.write_text("A held-out note that shares nothing with the others, long enough for a block.\n" * 3,
                        encoding="utf-8")
    sets = [f'dataset.files=["{notes}/**/*"]', f'dataset.val_files=["{held_out}"]', "dataset.on_error=skip",
            "model.n_layer=1", "model.n_head=2", "model.n_embd=32", "task.block_size=16", "train.epochs=1",
            "train.steps_per_epoch=3", "train.batch_size=4", "train.threads=1", "train.progress=false"]
    result = cli("train", "text-gpt", *[a for s in sets for a in ("--set", s)], "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "trained 1 epochs" in result.output and (tmp_path / "run" / "model.safetensors").is_file()
    refused = cli("train", "text-gpt", "--set", f'dataset.files=["{notes}/**/*"]', "--out", str(tmp_path / "r2"))
    assert refused.exit_code == 1 and "photo.png" in refused.output and "dataset.on_error=skip" in refused.output
