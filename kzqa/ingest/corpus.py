"""Read and clean the documents of a corpus folder.

Every reader turns a file into a list of :class:`Block` (headings and paragraphs);
:func:`clean_blocks` drops page furniture; :func:`assemble` joins what is left into one
cleaned text with :class:`Section` spans, so that for every section
``document.text[section.start:section.end]`` is that section's body.

Sources are never edited: cleaning happens here, at build time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .glued import repair_glued_words

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
METADATA_FILE = "sources.json"
METADATA_FIELDS = ("title", "author", "publisher", "date", "url", "language")
LEAD_SECTION = "Introduction"
AUTHOR_SECTION = "About the Author"

_TERMINAL = ".!?:;…\"”’)]"
_SMALL_WORDS = {
    "a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "vs", "with",
    "from", "into", "its", "his", "her", "their", "over", "per", "via",
}
_FURNITURE = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^skip to (the )?(main )?content$",
        r"^subscribe( now| here)?!?$",
        r"^(share|print|menu|search|close|back to top|advertisement)$",
        r"^cover (photo|image)\b",
        r"^(photo|image) credit\b",
    )
]
# Terminal escape sequences (ESC [ … letter) and every other control character except tab and
# newline: dropped in cleaning, so passages (and the chat) never carry them.
_CONTROLS = re.compile("\x1b\\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_LINK_PLACEHOLDER = re.compile(r"(?<=[.!?’”)\d])\s+Link\.?$")


class ReadError(Exception):
    """A file that cannot be turned into a document; the message says why."""


@dataclass(frozen=True)
class Block:
    """One heading or paragraph as a reader found it."""

    kind: str  # "heading" | "paragraph"
    text: str


@dataclass(frozen=True)
class Section:
    """A titled span of a document's cleaned text: ``text[start:end]`` is its body."""

    title: str
    start: int
    end: int


@dataclass
class Document:
    """A cleaned document. ``text`` holds headings and paragraphs separated by blank lines."""

    doc_id: str
    path: str
    text: str
    sections: list[Section]
    title: str
    author: str | None = None
    publisher: str | None = None
    date: str | None = None
    url: str | None = None
    language: str | None = None
    repaired_words: int = 0  # words run together in the source and split in cleaning (see .glued)

    def section_at(self, offset: int) -> Section:
        """The section whose body contains ``offset``."""
        for section in self.sections:
            if section.start <= offset < section.end:
                return section
        raise ValueError(f"offset {offset} is outside every section of {self.doc_id}")

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["sections"] = [s.__dict__ for s in self.sections]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Document":
        data = dict(data)
        data["sections"] = [Section(**s) for s in data["sections"]]
        return cls(**data)


@dataclass(frozen=True)
class Problem:
    """A file skipped by the build, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Corpus:
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # sha256 of each file's bytes as read, by relative path


# ---------------------------------------------------------------- whitespace and shapes


def normalize_space(text: str) -> str:
    """Collapse every run of whitespace (NBSP and tabs included) into one space; strip."""
    return re.sub(r"\s+", " ", text).strip()


def is_heading_like(line: str, max_words: int = 12) -> bool:
    """Short, title-cased, without final punctuation: 'Politics of Investment and Culture'."""
    line = line.strip()
    if not line or line[-1] in _TERMINAL + ",-–—" or line.startswith(("•", "-", "*", "(")):
        return False
    words = re.findall(r"[^\W\d_][\w’'\-]*", line)
    if not words or len(words) > max_words:
        return False
    significant = [w for w in words if w.lower() not in _SMALL_WORDS]
    return bool(significant) and all(w[0].isupper() for w in significant)


def _ends_sentence(line: str) -> bool:
    return line.rstrip()[-1:] in ".!?…\"”’)"


def is_hard_wrapped(text: str) -> bool:
    """True for text whose lines break mid-sentence (PDF extraction), not one paragraph a line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 8:
        return False
    open_lines = sum(not _ends_sentence(ln) for ln in lines)
    return open_lines / len(lines) > 0.5 and statistics.median(len(ln) for ln in lines) < 100


# ---------------------------------------------------------------- plain text


def _join_lines(lines: list[str]) -> str:
    """Join wrapped lines with spaces; a line ending in '/' joins without one."""
    out = ""
    for line in lines:
        line = line.strip()
        if not out:
            out = line
        elif out.endswith("/"):
            out += line
        else:
            out += " " + line
    return normalize_space(out)


def _wrapped_text_to_blocks(text: str) -> list[Block]:
    """Reflow hard-wrapped text: blank lines and indented sentence starts open paragraphs,
    title-cased lines opening a paragraph are headings, a paragraph cut by a page break
    (no final punctuation, next one starts in lower case) is joined to its continuation."""
    raw: list[list[str]] = [[]]
    for line in text.splitlines():
        if not line.strip():
            raw.append([])
        elif line[:1].isspace() and raw[-1] and _ends_sentence(raw[-1][-1]):
            raw.append([line])
        else:
            raw[-1].append(line)
    blocks: list[Block] = []
    for lines in filter(None, raw):
        heading: list[str] = []
        while len(lines) > 1 and len(heading) < 2 and is_heading_like(lines[0], max_words=8):
            heading.append(lines.pop(0))
        if heading and is_heading_like(_join_lines(heading)):
            blocks.append(Block("heading", _join_lines(heading)))
        else:
            lines = heading + lines
        body = _join_lines(lines)
        prev = blocks[-1] if blocks else None
        if prev and prev.kind == "paragraph" and not _ends_sentence(prev.text) and body[:1].islower():
            blocks[-1] = Block("paragraph", _join_lines([prev.text, body]))
        else:
            blocks.append(Block("paragraph", body))
    return blocks


def _line_text_to_blocks(text: str) -> list[Block]:
    """One paragraph a line; standalone title-cased lines are headings."""
    blocks = []
    for line in text.splitlines():
        line = normalize_space(line)
        if line:
            blocks.append(Block("heading" if is_heading_like(line) else "paragraph", line))
    return blocks


def text_to_blocks(text: str) -> list[Block]:
    """Blocks of a plain-text file, reflowing it first when its lines are hard-wrapped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _wrapped_text_to_blocks(text) if is_hard_wrapped(text) else _line_text_to_blocks(text)


def markdown_to_blocks(text: str) -> list[Block]:
    """ATX headings ('# Title') become headings; other blank-line separated runs, paragraphs."""
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            body = _join_lines(para)
            body = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", body)  # links and images → their text
            body = re.sub(r"(\*\*|__|`)", "", body)
            blocks.append(Block("paragraph", body))
            para.clear()

    for line in text.splitlines():
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            flush()
            blocks.append(Block("heading", normalize_space(m.group(1))))
        elif not line.strip() or re.match(r"^\s*([-*+]|\d+\.)\s+", line):
            flush()
            if line.strip():
                para.append(line)
        else:
            para.append(line)
    flush()
    return [b for b in blocks if b.text]


def _title_from_blocks(blocks: list[Block]) -> str | None:
    return next((b.text for b in blocks if b.kind == "heading"), None)


# ---------------------------------------------------------------- readers


def read_txt(data: bytes) -> tuple[list[Block], str | None]:
    return text_to_blocks(_decode(data)), None


def read_markdown(data: bytes) -> tuple[list[Block], str | None]:
    blocks = markdown_to_blocks(_decode(data))
    return blocks, _title_from_blocks(blocks)


def read_html(data: bytes) -> tuple[list[Block], str | None]:
    """Main text of a web page: <main>/<article> if present, without scripts and navigation."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data), "html.parser")
    title = normalize_space(soup.title.get_text()) if soup.title else None
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "aside", "form",
                     "iframe", "svg", "button", "template"]):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    names = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "dd", "dt",
             "figcaption", "td", "th"]
    blocks = []
    for el in root.find_all(names):
        if any(parent.name in names for parent in el.parents):
            continue
        text = normalize_space(el.get_text(" "))
        if text:
            kind = "heading" if el.name.startswith("h") and el.name[1:].isdigit() else "paragraph"
            blocks.append(Block(kind, text))
    return blocks, title or _title_from_blocks(blocks)


def read_pdf(data: bytes) -> tuple[list[Block], str | None]:
    """The PDF's text layer, reflowed like any hard-wrapped text."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ReadError("the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or None
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise ReadError(f"not a readable PDF ({exc})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise ReadError("the PDF has no text layer (scanned? run OCR first)")
    return _wrapped_text_to_blocks(text.replace("\r\n", "\n")), title


# Each reader turns a file's bytes (read once, so that what is indexed is what was hashed) into
# blocks and, where the file names one, a title.
READERS = {
    ".txt": read_txt,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
}


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadError(f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc


# ---------------------------------------------------------------- cleaning


def drop_controls(text: str) -> str:
    """``text`` without terminal escape sequences, control characters other than tab and
    newline (NUL, ESC, form feed, C1 codes …) and lone surrogates."""
    return _CONTROLS.sub("", text)


def clean_blocks(blocks: list[Block], title: str | None, author: str | None = None) -> list[Block]:
    """Drop page furniture: 'Skip to main content', lines repeating the title (or its first part,
    which a page shows when ``title`` also names its series: 'Kazakhstan — The People's Map of
    Global China'), 'Subscribe!' and newsletter blurbs, photo credits, repeated short lines
    ('Updated on …' twice), and trailing 'Link' placeholders. A paragraph opening with the author's name after the body
    ('Jane Doe is a …') is given its own 'About the Author' section."""
    out: list[Block] = []
    seen_short: set[str] = set()
    title_keys = {part.casefold() for part in ((title or ""), (title or "").split(" — ")[0]) if part}
    for block in blocks:
        text = _LINK_PLACEHOLDER.sub("", drop_controls(block.text)).strip()
        key = text.casefold()
        if not text or key in title_keys or any(p.search(text) for p in _FURNITURE):
            continue
        if "newsletter" in key and "subscribe" in key and len(text) < 400:  # a blurb, not an article
            continue
        if len(text) < 120:
            if key in seen_short:
                continue
            seen_short.add(key)
        if (author and block.kind == "paragraph" and text.startswith(f"{author} is ")
                and out and out[-1].kind != "heading"):
            out.append(Block("heading", AUTHOR_SECTION))
        out.append(Block(block.kind, text))
    while out and out[-1].kind == "heading":  # a heading with nothing under it
        out.pop()
    return out


def assemble(blocks: list[Block]) -> tuple[str, list[Section]]:
    """Join blocks into one text (blank line between blocks) with the section spans.

    Text before the first heading belongs to the section 'Introduction'. Consecutive headings
    keep the last one as the section title. ``text[s.start:s.end]`` is the body of section s.
    """
    parts: list[str] = []
    sections: list[Section] = []
    pos = 0
    current: str | None = None
    body_start: int | None = None

    def close() -> None:
        if body_start is not None:
            sections.append(Section(current or LEAD_SECTION, body_start, pos_end))

    pos_end = 0
    for block in blocks:
        if parts:
            parts.append("\n\n")
            pos += 2
        if block.kind == "heading":
            close()
            current, body_start = block.text, None
        elif body_start is None:
            body_start = pos
        parts.append(block.text)
        pos += len(block.text)
        if block.kind == "paragraph":
            pos_end = pos
    close()
    return "".join(parts), sections


# ---------------------------------------------------------------- corpus folder


def load_metadata(corpus_dir: Path, data: bytes | None = None) -> dict[str, dict]:
    """Entries of ``sources.json`` keyed by file name (missing file → no entries); ``data``: the
    file's bytes when already read."""
    path = corpus_dir / METADATA_FILE
    if data is None:
        if not path.exists():
            return {}
        data = path.read_bytes()
    try:
        entries = json.loads(data.decode("utf-8"))
        return {e["file"]: e for e in entries}
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError) as exc:
        raise ReadError(f"{path}: not a list of {{\"file\": …}} entries ({exc})") from exc


def _candidates(corpus_dir: Path):
    """Every file or link under the folder that could be a document (not hidden, not the
    metadata file or a README), sorted."""
    return sorted(
        p for p in corpus_dir.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name != METADATA_FILE and not any(
            part.startswith(".") for part in p.relative_to(corpus_dir).parts)
        and p.name.lower() not in {"readme.md", "readme.txt"}
    )


def link_problem(path: Path, corpus_dir: Path) -> str | None:
    """Why the symlink ``path`` is not followed (None: it is not a link, or it points to a file
    inside the corpus folder). Links out of the folder are never followed, so a build cannot
    index files it was not given (e.g. a link to /etc/hostname)."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return f"broken symlink (to {os.readlink(path)}), not followed"
    except (RuntimeError, OSError) as exc:  # a loop: RuntimeError before 3.13, OSError after
        return f"symlink loop, not followed ({exc})"
    if not target.is_relative_to(corpus_dir.resolve()):
        return f"symlink to {target}, outside the corpus folder, not followed"
    if target.is_dir():
        return "symlink to a folder, not followed"
    return None


def scan(corpus_dir: Path) -> tuple[list[Path], list[Problem]]:
    """The files of the corpus folder that are documents or would-be documents, sorted (symlinks
    only when they point to a file inside the folder), and the symlinks not followed, each with
    the reason (see :func:`link_problem`)."""
    files: list[Path] = []
    skipped: list[Problem] = []
    for path in _candidates(corpus_dir):
        reason = link_problem(path, corpus_dir)
        if reason is not None:
            skipped.append(Problem(path.relative_to(corpus_dir).as_posix(), reason))
        elif path.is_file():
            files.append(path)
    return files, skipped


def document_files(corpus_dir: Path) -> list[Path]:
    """The files of :func:`scan`."""
    return scan(corpus_dir)[0]


def doc_ids(paths: list[str]) -> dict[str, str]:
    """A document id for each relative path: the path without its suffix, each run of
    characters other than letters, digits, '.', '_' and '-' made one '-' (``sub/Silk Road.md``
    → ``sub-Silk-Road``). Paths that would share an id get a visible suffix made from their
    own path, so ids stay unique and do not depend on the order files are read:
    ``dup.md``/``dup.txt`` → ``dup-md``/``dup-txt``; ``a b.txt``/``a-b.txt`` →
    ``a-b-<6 hex of the path's sha1>``. An id changes only when a colliding file comes or goes."""
    base = {p: re.sub(r"[^\w.-]+", "-", p.rsplit(".", 1)[0] if "." in p.rsplit("/", 1)[-1] else p) for p in paths}
    shared = {i for i, n in Counter(base.values()).items() if n > 1}
    ids = {p: (f"{i}-{p.rsplit('.', 1)[1].lower()}" if i in shared and "." in p.rsplit("/", 1)[-1] else i)
           for p, i in base.items()}
    clash = {i for i, n in Counter(ids.values()).items() if n > 1}
    return {p: (f"{base[p]}-{hashlib.sha1(p.encode()).hexdigest()[:6]}" if i in clash else i)
            for p, i in ids.items()}


def file_hashes(corpus_dir: Path) -> dict[str, str]:
    """sha256 of every file that goes into a build (documents and metadata), by relative path."""
    files = document_files(corpus_dir)
    if (corpus_dir / METADATA_FILE).exists():
        files.append(corpus_dir / METADATA_FILE)
    return {p.relative_to(corpus_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(files)}


def read_document(path: Path, corpus_dir: Path, meta: dict | None = None, doc_id: str | None = None,
                  data: bytes | None = None) -> Document:
    """Read, clean and assemble one file (``doc_id``: default from its path alone, see
    :func:`doc_ids`; ``data``: its bytes, when already read). Raises ReadError with the reason
    it cannot."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ReadError(f"unsupported file type '{path.suffix}' (supported: "
                        f"{', '.join(SUPPORTED_SUFFIXES)})")
    meta = meta or {}
    try:
        blocks, found_title = reader(path.read_bytes() if data is None else data)
    except ReadError:
        raise
    except Exception as exc:  # a reader library failing on a broken file (pypdf, lxml …)
        raise ReadError(f"cannot read it ({type(exc).__name__}: {exc})") from exc
    title = drop_controls(meta.get("title") or found_title or path.stem.replace("-", " ").replace("_", " "))
    cleaned = clean_blocks(blocks, title, meta.get("author"))
    repaired = [repair_glued_words(b.text) for b in cleaned]
    text, sections = assemble([Block(b.kind, fixed) for b, (fixed, _) in zip(cleaned, repaired)])
    if not sections:
        raise ReadError("no text found")
    rel = path.relative_to(corpus_dir).as_posix()
    return Document(
        doc_id=doc_id or doc_ids([rel])[rel],
        path=rel, text=text, sections=sections, title=title, repaired_words=sum(len(r) for _, r in repaired),
        **{k: meta.get(k) for k in METADATA_FIELDS if k != "title"},
    )


def read_corpus(corpus_dir: str | Path) -> Corpus:
    """Every readable document of the folder; unreadable files go to ``problems``. Each file is
    read once: ``hashes`` holds the sha256 of the bytes read (documents, unreadable files and
    ``sources.json``), so an index records what it indexed even if a file changes meanwhile."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise ReadError(f"corpus folder not found: {corpus_dir}")
    corpus = Corpus()
    metadata_path = corpus_dir / METADATA_FILE
    metadata: dict[str, dict] = {}
    if metadata_path.exists():
        raw = metadata_path.read_bytes()
        corpus.hashes[METADATA_FILE] = hashlib.sha256(raw).hexdigest()
        metadata = load_metadata(corpus_dir, raw)
    files, skipped = scan(corpus_dir)
    corpus.problems.extend(skipped)
    ids = doc_ids([p.relative_to(corpus_dir).as_posix() for p in files])
    for path in files:
        rel = path.relative_to(corpus_dir).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            corpus.problems.append(Problem(rel, f"cannot read it ({exc.strerror or exc})"))
            continue
        corpus.hashes[rel] = hashlib.sha256(data).hexdigest()
        try:
            corpus.documents.append(read_document(path, corpus_dir, metadata.get(rel), ids[rel], data))
        except ReadError as exc:
            corpus.problems.append(Problem(rel, str(exc)))
        except Exception as exc:  # a reader library failing on a broken file
            corpus.problems.append(Problem(rel, f"{type(exc).__name__}: {exc}"))
    corpus.hashes = dict(sorted(corpus.hashes.items()))
    return corpus
