"""sha256 of files, and a cache of the ones already verified.

``file_sha256(p)`` reads the whole file. ``known_sha256(p)`` gives the same digest but reads the
file only when it is new to this machine's cache (``$KZQA_CACHE/verified.json``), keyed by its
device, inode, size and modification and change times (ns): loading an index checks every file
against its manifest without hashing hundreds of MB at each start, and a build's own digests
serve the first load (renaming the index folder changes none of these). Writing to a file or
replacing it changes its ctime or inode, which no user can set back, so an edited file is always
hashed again. ``already_verified(check)`` / ``mark_verified(check)`` keep, in the same cache, the
checks that passed (named by the digests they depend on), so that they run once per content.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

_lock = threading.Lock()
MAX_ENTRIES = 10_000


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_file() -> Path:
    from .embedcache import cache_dir

    return cache_dir() / "verified.json"


def _key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


_parsed: tuple[tuple[int, ...], dict[str, str]] | None = None  # the cache file's stamp and content


def _read_cache() -> dict[str, str]:
    """The cache's entries (one shared dict: callers that change it copy it first). Parsed once
    per version of the file: every write replaces it (a new inode), so its device, inode, size
    and mtime name a version, and opening an index, which asks for a dozen files' digests,
    reads the file once instead of once per file."""
    global _parsed
    target = _cache_file()
    try:
        st = target.stat()
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if _parsed is None or _parsed[0] != stamp:
            data = json.loads(target.read_text(encoding="utf-8"))
            _parsed = (stamp, data if isinstance(data, dict) else {})
        return _parsed[1]
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict[str, str]) -> None:
    if len(cache) > MAX_ENTRIES:
        cache = dict(list(cache.items())[-MAX_ENTRIES // 2:])
    try:
        target = _cache_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only home: check again next time


def already_verified(check: str) -> bool:
    """Was ``check`` (a name holding the digests it depends on) passed on this machine before?"""
    with _lock:
        return _read_cache().get(f"check|{check}") == "passed"


def mark_verified(check: str) -> None:
    """Remember that ``check`` passed (see :func:`already_verified`)."""
    with _lock:
        cache = dict(_read_cache())
        cache[f"check|{check}"] = "passed"
        _write_cache(cache)


def known_sha256(path: Path) -> str:
    """sha256 of ``path``, from the cache when the file has not changed since it was hashed.
    Raises OSError when the file cannot be read."""
    key = _key(path)
    with _lock:
        cached = _read_cache().get(key)
    if cached:
        return cached
    digest = file_sha256(path)
    with _lock:
        cache = dict(_read_cache())
        cache[key] = digest
        _write_cache(cache)
    return digest
