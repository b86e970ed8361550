"""The cache of verified digests: right after edits, whether this process or another wrote it."""

import json

from kzqa.channels.checksums import already_verified, file_sha256, known_sha256, mark_verified


def test_known_sha256_is_the_files_digest_and_follows_an_edit(tmp_path, monkeypatch):
    monkeypatch.setenv("KZQA_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "data.bin"
    f.write_bytes(b"first")
    assert known_sha256(f) == file_sha256(f)
    f.write_bytes(b"second, longer")
    assert known_sha256(f) == file_sha256(f)


def test_a_cache_rewritten_by_another_process_is_read_again(tmp_path, monkeypatch):
    monkeypatch.setenv("KZQA_CACHE", str(tmp_path / "cache"))
    mark_verified("passages|abc")
    assert already_verified("passages|abc")
    cache = tmp_path / "cache" / "verified.json"
    # another process replaces the file (as _write_cache does): a new inode and other content
    replacement = cache.with_name("other")
    replacement.write_text(json.dumps({"check|passages|xyz": "passed"}), encoding="utf-8")
    replacement.replace(cache)
    assert not already_verified("passages|abc")
    assert already_verified("passages|xyz")


def test_a_cache_of_another_folder_is_not_mistaken_for_this_one(tmp_path, monkeypatch):
    monkeypatch.setenv("KZQA_CACHE", str(tmp_path / "one"))
    mark_verified("check-in-one")
    monkeypatch.setenv("KZQA_CACHE", str(tmp_path / "two"))
    assert not already_verified("check-in-one")
