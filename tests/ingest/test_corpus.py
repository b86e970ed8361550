"""Reading and cleaning: sources stay untouched, furniture goes, headings become sections."""

from __future__ import annotations

import json
import re

from conftest import CORPUS, INSAMER, PEOPLES_MAP, SHARED

from kzqa.ingest.corpus import clean_blocks, is_hard_wrapped, markdown_to_blocks, read_corpus, text_to_blocks


def test_sources_are_copied_byte_for_byte():
    for name in (f"{INSAMER}.txt", f"{PEOPLES_MAP}.txt"):
        assert (CORPUS / name).read_bytes() == (SHARED / "corpus" / name).read_bytes()
    meta = json.loads((CORPUS / "sources.json").read_text())
    assert {m["file"] for m in meta} == {f"{INSAMER}.txt", f"{PEOPLES_MAP}.txt"}


def test_metadata_is_attached_and_unknowns_stay_null(documents):
    pm = documents[PEOPLES_MAP]
    assert (pm.title, pm.author, pm.date, pm.url) == ("Kazakhstan — The People's Map of Global China", "Oyuna Baldakova", "2021-05-24", None)
    assert documents[INSAMER].url.startswith("https://en.insamer.com/")
    assert documents[INSAMER].author is None


def test_headings_become_sections(documents):
    assert [s.title for s in documents[INSAMER].sections] == [
        "Introduction", "Politics of Investment and Culture",
        "China’s Oppression in East Turkestan", "Anti-Chinese Sentiments in Kazakhstan"]
    assert [s.title for s in documents[PEOPLES_MAP].sections] == [
        "Introduction", "Historical Background", "BRI Status", "Current Economic Relations",
        "Key Controversies in Bilateral Relations", "Key Sources", "About the Author"]
    for doc in documents.values():
        for s in doc.sections:
            body = doc.text[s.start:s.end]
            assert s.title not in body.split("\n\n")[0], "a heading leaked into its section body"


def test_pdf_text_is_reflowed_into_paragraphs(documents):
    doc = documents[INSAMER]
    paragraphs = doc.text.split("\n\n")
    assert all("\n" not in p for p in paragraphs)
    # sentences cut by page breaks in the source are whole again
    assert "increase is more of economic terms than of interest and love for China" in doc.text
    assert "BalkhashLake should be within the borders of China" in doc.text
    assert "Bayterek symbolizes the tree of life" in doc.text
    assert "sale/rent of some agricultural land" in doc.text
    # every paragraph ends a sentence: no paragraph was cut mid-sentence
    body = [p for p in paragraphs if p not in {s.title for s in doc.sections}]
    assert all(p.rstrip()[-1] in ".”’\"" for p in body), [p[-40:] for p in body if p.rstrip()[-1] not in ".”’\""]


def test_web_page_furniture_is_gone_and_the_article_stays(documents):
    doc = documents[PEOPLES_MAP]
    text = doc.text
    for furniture in ("Skip to main content", "Subscribe", "newsletter", "Cover Photo"):
        assert furniture not in text
    assert text.count("Updated on 24 May 2021.") == 1
    assert not re.search(r"\bLink\.?$", text, re.MULTILINE), "a 'Link' placeholder survived"
    assert "\n\nKazakhstan\n\n" not in f"\n\n{text}\n\n", "a repeated title line survived"
    key_sources = next(s for s in doc.sections if s.title == "Key Sources")
    assert "Kembayev, Zhenis. 2020." in text[key_sources.start:key_sources.end]
    author = next(s for s in doc.sections if s.title == "About the Author")
    assert text[author.start:author.end].startswith("Oyuna Baldakova is a PhD Candidate")
    # characters are kept: curly quotes, dashes, Chinese
    assert "‘Western Regions’ (西域)" in text and "Sino–Soviet" in text


def test_whitespace_is_normalised(documents):
    for doc in documents.values():
        assert "  " not in doc.text and "\t" not in doc.text and "\u00a0" not in doc.text
        assert "\n\n\n" not in doc.text


def test_hard_wrap_detection():
    assert is_hard_wrapped((CORPUS / f"{INSAMER}.txt").read_text())
    assert not is_hard_wrapped((CORPUS / f"{PEOPLES_MAP}.txt").read_text())


def test_wrapped_heading_over_two_lines():
    text = ("Intro line one that goes on\nand ends here.\n\n"
            "Rivers and Water\nManagement\nThe rivers are shared by the two\ncountries today.\n") * 3
    blocks = text_to_blocks(text)
    assert [b.text for b in blocks if b.kind == "heading"] == ["Rivers and Water Management"] * 3
    assert blocks[1].text == "Rivers and Water Management"
    assert blocks[2].text.startswith("The rivers are shared by the two countries today.")


def test_markdown_reader():
    blocks = markdown_to_blocks("# Title\n\nSome **bold** [link](http://x) text\nwrapped.\n\n## Part\n\n- item one\n- item two\n")
    assert [(b.kind, b.text) for b in blocks] == [
        ("heading", "Title"), ("paragraph", "Some bold link text wrapped."), ("heading", "Part"),
        ("paragraph", "- item one"), ("paragraph", "- item two")]


def test_clean_blocks_drops_repeats_and_placeholders():
    from kzqa.ingest.corpus import Block

    blocks = [Block("paragraph", t) for t in (
        "Skip to main content", "My Page", "Updated on 1 May.", "Body sentence. Link",
        "Updated on 1 May.", "Subscribe!", "Subscribe to our newsletter for updates.")]
    assert [b.text for b in clean_blocks(blocks, "My Page")] == ["Updated on 1 May.", "Body sentence."]


def test_a_title_naming_its_series_still_drops_the_pages_own_title():
    from kzqa.ingest.corpus import Block

    blocks = [Block("heading", "Kazakhstan"), Block("paragraph", "Kazakhstan borders China."),
              Block("paragraph", "Kazakhstan")]
    kept = clean_blocks(blocks, "Kazakhstan — The People's Map of Global China")
    assert [b.text for b in kept] == ["Kazakhstan borders China."]
    assert [b.text for b in clean_blocks(blocks, "Borders")] == [b.text for b in blocks[:2]]  # no series: kept


def test_every_reader_and_broken_files(tmp_path, make_pdf):
    (tmp_path / "a.md").write_text("# Steppe Notes\n\nThe steppe is wide. It is very wide.\n")
    (tmp_path / "b.html").write_text(
        "<html><head><title>Page B</title><script>alert(1)</script></head><body>"
        "<nav>Home | About</nav><main><h1>Page B</h1><h2>Water</h2><p>The Ili river flows west.</p>"
        "<ul><li>First point.</li></ul></main><footer>© 2024</footer></body></html>")
    make_pdf(tmp_path / "c.pdf", ["Almaty is the largest", "city of Kazakhstan."])
    (tmp_path / "d.txt").write_bytes(b"caf\xe9 latin-1 text")
    (tmp_path / "e.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (tmp_path / "f.docx").write_bytes(b"PK\x03\x04")
    corpus = read_corpus(tmp_path)
    docs = {d.doc_id: d for d in corpus.documents}
    assert set(docs) == {"a", "b", "c"}
    assert docs["a"].title == "Steppe Notes" and "The steppe is wide." in docs["a"].text
    assert docs["b"].title == "Page B" and [s.title for s in docs["b"].sections] == ["Water"]
    assert "alert" not in docs["b"].text and "Home" not in docs["b"].text and "©" not in docs["b"].text
    assert "Almaty is the largest city of Kazakhstan." in docs["c"].text
    problems = {p.path: p.reason for p in corpus.problems}
    assert set(problems) == {"d.txt", "e.pdf", "f.docx"}
    assert "UTF-8" in problems["d.txt"] and "PDF" in problems["e.pdf"] and ".docx" in problems["f.docx"]


# ---------------------------------------------------------------- ids, links, control characters


def test_colliding_file_names_get_distinct_stable_ids(tmp_path):
    from kzqa.ingest.corpus import doc_ids

    for name, text in [("a b.txt", "Alpha text one."), ("a-b.txt", "Beta text two."),
                       ("dup.md", "# Dup\n\nMarkdown words."), ("dup.txt", "Plain words."), ("solo.txt", "Solo.")]:
        (tmp_path / name).write_text(text)
    corpus = read_corpus(tmp_path)
    ids = {d.path: d.doc_id for d in corpus.documents}
    assert len(set(ids.values())) == len(ids) == 5
    assert ids["solo.txt"] == "solo" and ids["dup.txt"] == "dup-txt" and ids["dup.md"] == "dup-md"
    assert ids["a b.txt"].startswith("a-b-") and ids["a-b.txt"].startswith("a-b-")
    assert ids == {d.path: d.doc_id for d in read_corpus(tmp_path).documents}  # stable across reads
    assert doc_ids(["dup.txt", "dup.md"]) == doc_ids(["dup.md", "dup.txt"])  # whatever the order


def test_a_build_with_colliding_names_keeps_every_hit_on_its_own_document(tmp_path):
    import kzqa

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = {"a b.txt": "The Khorgos dry port handles rail containers from China.",
             "a-b.txt": "Astana hosted the summit on the Silk Road economic belt.",
             "dup.md": "# Pipelines\n\nThe Kazakhstan-China oil pipeline runs from Atasu to Alashankou.",
             "dup.txt": "Wheat exports to China grew after new rail links opened."}
    for name, text in texts.items():
        (corpus / name).write_text(text)
    kzqa.build(corpus, tmp_path / "embeddings", multilingual_model=None)
    engine = kzqa.load(tmp_path / "embeddings")
    assert len(engine.documents) == len(texts) == engine.manifest["counts"]["documents"]
    for passage in engine.passages:
        assert engine.documents[passage.doc_id].text[passage.start:passage.end] == passage.text
    for question in ("Khorgos dry port", "Silk Road summit Astana", "oil pipeline Atasu", "wheat exports rail"):
        for hit in engine.search(question, k=4):
            assert engine.documents[hit.doc_id].text[hit.start:hit.end] == hit.text


def test_symlinks_out_of_the_corpus_broken_or_looping_are_reported_not_followed(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "real.txt").write_text("A document inside the corpus.")
    outside = tmp_path / "secret.txt"
    outside.write_text("A private file outside the corpus.")
    (corpus / "inside-link.txt").symlink_to(corpus / "real.txt")
    (corpus / "outside.txt").symlink_to(outside)
    (corpus / "hostname.txt").symlink_to("/etc/hostname")
    (corpus / "broken.txt").symlink_to(tmp_path / "nowhere.txt")
    (corpus / "loop-a.txt").symlink_to(corpus / "loop-b.txt")
    (corpus / "loop-b.txt").symlink_to(corpus / "loop-a.txt")
    (corpus / "folder-link").symlink_to(tmp_path, target_is_directory=True)
    read = read_corpus(corpus)
    assert sorted(d.path for d in read.documents) == ["inside-link.txt", "real.txt"]
    problems = {p.path: p.reason for p in read.problems}
    assert "outside the corpus folder" in problems["outside.txt"]
    assert "outside the corpus folder" in problems["hostname.txt"]
    assert "broken symlink" in problems["broken.txt"]
    assert "loop" in problems["loop-a.txt"] and "loop" in problems["loop-b.txt"]
    assert "folder-link" in problems
    assert not any("private file" in d.text for d in read.documents)


def test_control_characters_are_dropped_and_offsets_stay_exact(tmp_path):
    (tmp_path / "ctl.txt").write_text("Nul\x00 byte here. \x1b[31mRed\x1b[0m text, a bell\x07.\n\n"
                                      "Tab\there and form\x0cfeed. C1\x85 too.")
    doc = read_corpus(tmp_path).documents[0]
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", doc.text)
    assert "Red text" in doc.text and "[31m" not in doc.text and "Nul byte" in doc.text
    from kzqa.ingest.passages import ChunkParams, split_documents

    passages, _ = split_documents([doc], lambda texts: [len(t.split()) + 2 for t in texts], ChunkParams())
    assert passages and all(doc.text[p.start:p.end] == p.text for p in passages)
