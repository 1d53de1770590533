from __future__ import annotations

from pathlib import Path

import pytest

from ingest.loaders import Document, LoaderError, UnsupportedType, load_document


def make_pdf(lines: list[str]) -> bytes:
    """A minimal valid one-page PDF with the given text lines (Helvetica), with a correct xref table."""
    ops = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(ops)} >>\nstream\n{ops}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def load(path: Path, data: bytes | str) -> Document:
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return load_document(path, path.name, 10**7)


def test_markdown_front_matter_and_heading_title(tmp_path: Path) -> None:
    doc = load(tmp_path / "a.md", "# Heading Title\n\nBody text here.\n")
    assert doc.title == "Heading Title" and doc.loader == "markdown"
    doc = load(tmp_path / "b.md", "---\ntitle: Front\nauthor: Ann\n---\n\nBody.\n")
    assert doc.title == "Front" and doc.meta == {"author": "Ann"}
    assert doc.text[doc.body_start :].strip() == "Body."


def test_text_crlf_is_normalized(tmp_path: Path) -> None:
    doc = load(tmp_path / "notes.txt", b"Line one.\r\n\r\nLine two.\r\n")
    assert doc.text == "Line one.\n\nLine two.\n"
    assert doc.title == "Notes"


def test_html_drops_scripts_styles_and_keeps_blocks(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Page</title><style>p{color:red}</style><script>alert('x')</script></head>"
        "<body><h1>Head</h1><p>First <b>para</b>.</p><p onclick='evil()'>Second para.</p>"
        "<img src=x onerror='alert(1)'><noscript>hidden</noscript></body></html>"
    )
    doc = load(tmp_path / "page.html", html)
    assert doc.title == "Page"
    assert doc.text == "Head\n\nFirst para.\n\nSecond para.\n"


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    doc = load(tmp_path / "paper.pdf", make_pdf(["Imperial returned the funding.", "Second line."]))
    assert doc.loader == "pdf"
    assert "Imperial returned the funding." in doc.text


def test_unknown_extension_is_sniffed(tmp_path: Path) -> None:
    assert load(tmp_path / "README", "Plain words.\n").loader == "text"
    assert load(tmp_path / "page.data", "<!DOCTYPE html><p>Hi there.</p>").loader == "html"
    assert load(tmp_path / "doc.bin", make_pdf(["Sniffed PDF."])).loader == "pdf"


def test_thread_is_detected_in_text_files(tmp_path: Path) -> None:
    from .conftest import CORPUS

    doc = load(tmp_path / "t.txt", (CORPUS / "imperial-jari-thread.txt").read_text(encoding="utf-8"))
    assert doc.loader == "thread" and len(doc.thread.comments) == 4


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\n ", "empty file"),
        ("frontonly.md", b"---\ntitle: x\n---\n", "front matter only"),
        ("bin.txt", b"\x00\x01\x02binary", "binary file"),
        ("latin1.txt", "caf\xe9 au lait".encode("latin-1"), "not valid UTF-8"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "PDF"),
        ("fake.pdf", b"just text", "broken PDF"),
        ("image.pdf", make_pdf([]), "no extractable text"),
        ("blank.html", b"<html><script>x()</script></html>", "no text in HTML"),
        ("archive.zip", b"PK\x03\x04\x00\x00binary", "unsupported file type .zip"),
    ],
)
def test_bad_files_raise_a_one_line_reason(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    with pytest.raises(LoaderError) as info:
        load(tmp_path / name, data)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)
    if name.endswith(".zip"):
        assert isinstance(info.value, UnsupportedType)


def test_too_large_file_is_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(LoaderError, match="too large"):
        load_document(path, "big.txt", 100)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "loop.txt"
    path.symlink_to(path)
    with pytest.raises(LoaderError, match="cannot read"):
        load_document(path, "loop.txt", 100)


def test_a_page_outline_is_its_blocks(tmp_path: Path) -> None:
    doc = load(
        tmp_path / "p.md",
        "---\ntitle: Leave\n---\n# Leave\n\n## Annual\n\nYou get *20* days.\n\n- one\n- two\n",
    )
    outline = [(doc.text[b["start"] : b["end"]], b["kind"], b["level"]) for b in doc.outline()]
    assert outline == [
        ("Leave", "heading", 1),
        ("Annual", "heading", 2),
        ("You get 20 days.", "paragraph", 0),
        ("one", "item", 0),
        ("two", "item", 0),
    ]


def test_a_thread_outline_is_its_opening_text_and_comments() -> None:
    thread = Path(__file__).parent / "data" / "oncall-thread.txt"
    doc = load_document(thread, thread.name, 10**7)
    outline = doc.outline()
    assert outline[0]["kind"] == "paragraph"
    assert doc.text[outline[0]["start"] : outline[0]["end"]].startswith("New on-call rotation")
    reply = outline[3]
    assert doc.text[reply["start"] : reply["end"]].startswith("Yes: a public holiday")
    assert {k: reply[k] for k in ("kind", "level", "author", "op", "upvotes", "downvotes", "reply_to")} == {
        "kind": "comment", "level": 2, "author": "mira@forum.example.org", "op": True, "upvotes": 9,
        "downvotes": 0, "reply_to": "tomas@forum.example.org",
    }  # fmt: skip


def alias_bomb(levels: int) -> str:
    """The probe's header: each level a list of nine aliases of the one before (9**levels strings)."""
    lines = ["---", "title: Bomb", 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join([*lines, "---", "", "# Page", "", "Text."]) + "\n"


@pytest.mark.parametrize("levels", [7, 8])
def test_a_yaml_alias_bomb_is_refused_without_expanding(tmp_path: Path, levels: int) -> None:
    assert len(alias_bomb(levels)) < 500  # a few hundred bytes
    with pytest.raises(LoaderError, match=r"^front matter uses more than 16 YAML aliases$"):
        load(tmp_path / "bomb.md", alias_bomb(levels))


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("description: " + "x" * 2_001, "front matter field 'description' longer than 2,000 characters"),
        (
            "tags: [" + ", ".join(["word"] * 500) + "]",
            "front matter field 'tags' longer than 2,000 characters",
        ),
        ("url: javascript:alert(1)", "front matter url is not an http(s) address"),
        ("\n".join(f"f{n}: v" for n in range(65)), "front matter has more than 64 fields"),
        ("note: |\n" + "  line of text\n" * 1_300, "front matter longer than 16,384 characters"),
    ],
)
def test_an_oversized_or_unsafe_header_is_one_line(tmp_path: Path, header: str, reason: str) -> None:
    with pytest.raises(LoaderError) as caught:
        load(tmp_path / "page.md", f"---\n{header}\n---\n\nBody text.\n")
    assert str(caught.value) == reason


def test_only_flat_header_fields_are_kept(tmp_path: Path) -> None:
    header = (
        "title: Leave\nowner: &o {team: HR, lead: Ann}\nreviewer: *o\ntags: [hr, leave]\nupdated: 2024-05-01"
    )
    doc = load(tmp_path / "page.md", f"---\n{header}\nurl: https://wiki.example.com/Leave\n---\n\nBody.\n")
    assert doc.title == "Leave"
    assert doc.meta == {"tags": "hr, leave", "updated": "2024-05-01", "url": "https://wiki.example.com/Leave"}
