"""API keys for the REST API: made at random, shown once, stored only as SHA-256 hashes in a key
file (``<hash> <created> <name>`` a line, mode 600), managed by ``kzqa keys create/list/revoke``.
Light on purpose: the command line imports it without the web framework."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

KEY_PREFIX = "kzqa_"


def new_key() -> str:
    """A new API key: 'kzqa_' and 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """How a key is stored: 'sha256:<hex>' (the keys are random, so a plain hash suffices)."""
    return "sha256:" + hashlib.sha256(key.strip().encode()).hexdigest()


@dataclass(frozen=True)
class KeyEntry:
    """One line of a key file: ``<hash> <created> <name>``."""

    hash: str
    created: str
    name: str

    def line(self) -> str:
        return f"{self.hash} {self.created} {self.name}"


def read_key_file(path: Path) -> list[KeyEntry]:
    """The keys in ``path`` (one ``<hash> <created> <name>`` per line; '#' comments and blank
    lines skipped). ValueError naming the line when one is not a key."""
    entries = []
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(None, 2)
        if not parts[0].startswith("sha256:") or len(parts[0]) != 71:
            raise ValueError(f"{path}, line {n}: not a hashed key (expected 'sha256:<64 hex digits> …')")
        entries.append(KeyEntry(parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""))
    return entries


def write_key_file(path: Path, entries: list[KeyEntry]) -> None:
    """Write the key file readable by its owner only (mode 600), replacing it atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# kzqa API keys: <sha256 hash> <created> <name> (kzqa keys create/list/revoke)\n")
        out.writelines(e.line() + "\n" for e in entries)
    os.replace(temp, path)


def add_key(path: Path, name: str) -> str:
    """A new key named ``name`` added to the file at ``path``; returns the key (shown once)."""
    entries = read_key_file(path) if Path(path).exists() else []
    key = new_key()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_key_file(path, entries + [KeyEntry(hash_key(key), stamp, " ".join(name.split()) or "unnamed")])
    return key


def revoke_key(path: Path, which: str) -> list[KeyEntry]:
    """Remove the keys whose name is ``which`` or whose hash starts with it (8+ characters);
    returns those removed."""
    entries = read_key_file(path)
    gone = [e for e in entries if e.name == which or (len(which) >= 8 and e.hash.removeprefix("sha256:")
                                                        .startswith(which.removeprefix("sha256:")))]
    write_key_file(path, [e for e in entries if e not in gone])
    return gone


class KeyRing:
    """The accepted keys: those of ``$KZQA_API_KEYS`` (keys, comma-separated) and of a key file,
    read again whenever the file changes (a revoked key is refused at once, without a restart).
    ``enabled`` is False when neither gives any key: the API is then open."""

    def __init__(self, env_keys: str | None = None, key_file: Path | None = None):
        self.env = frozenset(hash_key(k) for k in (env_keys or "").split(",") if k.strip())
        self.file = Path(key_file) if key_file is not None else None
        self._stamp: tuple | None = None
        self._from_file: frozenset[str] = frozenset()
        self._reload()

    def _reload(self) -> None:
        if self.file is None:
            return
        stat = self.file.stat()  # OSError when the file is missing: the server refuses to start
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp != self._stamp:
            self._from_file = frozenset(e.hash for e in read_key_file(self.file))
            self._stamp = stamp

    @property
    def enabled(self) -> bool:
        return bool(self.env) or self.file is not None

    def accepts(self, key: str) -> str | None:
        """The hash of ``key`` when it is accepted, else None (compared in constant time)."""
        try:
            self._reload()
        except (OSError, ValueError):
            pass  # a file being rewritten: the keys read last stay in force
        hashed = hash_key(key)
        ok = False
        for h in self.env | self._from_file:
            ok |= hmac.compare_digest(hashed, h)
        return hashed if ok else None


__all__ = ["KEY_PREFIX", "KeyEntry", "add_key", "hash_key", "KeyRing", "new_key", "read_key_file", "revoke_key",
           "write_key_file"]
