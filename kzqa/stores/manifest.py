"""What an index is and whether it still holds: the manifest's format and checks, shared by the
file index and PostgreSQL.

``manifest.json`` records what was built from what (models and their fingerprints, chunking,
the corpus files and their hashes), the sha256 of every other file of a folder index and the
counts loading relies on. :func:`read_manifest` refuses a malformed one,
:func:`damaged_index_files` lists files that differ from their checksums, and
:func:`check_fresh` refuses an index whose corpus, models or pipeline changed — each with the
command that rebuilds it (:func:`rebuild_command`).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from pathlib import Path

from ..channels.checksums import known_sha256
from ..channels.encoders import DEFAULT_MODEL, Encoder
from ..channels.lexical import CorpusStats
from ..ingest.corpus import file_hashes
from .base import IndexProblem

FORMAT = 3  # 3: every file's sha256 in the manifest, verified on load


# 2: BlingFire sentences; 3: glued words split in cleaning; 4: the corpus vocabulary in the multilingual
# model (stats). Bump when cleaning or splitting changes what a build produces
PIPELINE_VERSION = 4


DENSE, MULTILINGUAL, LEXICAL = "dense", "multilingual", "lexical"


log = logging.getLogger("kzqa")


_REPORTED_MISSING_CORPUS: set[tuple[str, str]] = set()  # (index, corpus) pairs already warned about


def default_index_path() -> Path:
    """$KZQA_INDEX if set, else ``embeddings/`` of the project (the folder above the package)."""
    env = os.environ.get("KZQA_INDEX")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "embeddings"


def default_cache_path(index: Path | None = None) -> Path:
    """The embedding cache of an index folder: ``.<index>.cache`` beside it."""
    index = index if index is not None else default_index_path()
    return index.parent / f".{index.name}.cache"


def dense_channels(manifest: dict) -> list[str]:
    """The manifest's dense channels (those embedded by a model, with its fingerprint)."""
    return [c for c, e in manifest.get("channels", {}).items() if isinstance(e, dict) and "fingerprint" in e]


def rebuild_command(manifest: dict, index: Path) -> str:
    """The command that rebuilds ``index`` as it was built (defaults where the manifest is unclear)."""
    def field(obj, key):
        return obj.get(key) if isinstance(obj, dict) else None

    corpus = field(field(manifest, "corpus"), "path")
    corpus = corpus if isinstance(corpus, str) and corpus and corpus_path_problem(corpus) is None else "corpus"
    args = ["kzqa", "build", "--corpus", corpus, "--index", str(index)]
    model = field(field(field(manifest, "channels"), DENSE), "model")
    if isinstance(model, str) and model and model != DEFAULT_MODEL:
        args += ["--model", model]
    return shlex.join(args)  # a folder with spaces or quotes pastes back as one argument


# Folders no corpus is read from: a manifest naming one (or the root) is corrupt or hostile.
_SYSTEM_FOLDERS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root/.ssh", "/run",
                   "/sbin", "/sys", "/usr", "/var/lib", "/var/log")


def corpus_path_problem(corpus_path: str) -> str | None:
    """Why a manifest's corpus path is refused (None: it may be read): the root of a file
    system, a system folder or anything inside one."""
    try:
        resolved = Path(os.path.abspath(corpus_path))
    except OSError:  # the working folder is gone: nothing to resolve a relative path against
        return None
    if resolved == Path(resolved.anchor):
        return f"its corpus path {corpus_path!r:.80} is the root of the file system"
    if any(resolved == Path(f) or resolved.is_relative_to(f) for f in _SYSTEM_FOLDERS):
        return f"its corpus path {corpus_path!r:.80} is a system folder"
    return None


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_stats(path: Path, stats: CorpusStats) -> None:
    path.write_text(json.dumps(stats.to_dict(), ensure_ascii=False), encoding="utf-8")


def read_stats(path: Path) -> CorpusStats:
    return CorpusStats.from_dict(json.loads(path.read_text(encoding="utf-8")))


def read_manifest(path: Path) -> dict:
    """The manifest of the index folder, checked for shape (IndexProblem if absent, not JSON,
    or missing what loading relies on)."""
    manifest_file = path / "manifest.json"
    if not manifest_file.exists():
        raise IndexProblem(f"no index at {path} (manifest.json missing). "
                           f"Build one with: {shlex.join(['kzqa', 'build', '--index', str(path)])}")
    rebuild = shlex.join(["kzqa", "build", "--index", str(path)])
    try:
        if manifest_file.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"{manifest_file.stat().st_size:,} bytes, more than a manifest ever needs "
                             f"({MAX_MANIFEST_BYTES:,})")
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        if _depth(manifest) > MAX_MANIFEST_DEPTH:
            raise ValueError(f"nested more than {MAX_MANIFEST_DEPTH} levels deep")
    except RecursionError:
        raise IndexProblem(f"index at {path} is corrupt (manifest.json: nested too deeply to read). "
                           f"Rebuild with: {rebuild}") from None
    except (ValueError, UnicodeDecodeError, OSError) as exc:  # json.JSONDecodeError is a ValueError
        raise IndexProblem(f"index at {path} is corrupt (manifest.json: {str(exc)[:200]}). "
                           f"Rebuild with: {rebuild}") from exc
    problem = manifest_problem(manifest)
    if problem:
        rebuild = rebuild_command(manifest if isinstance(manifest, dict) else {}, path)
        raise IndexProblem(f"index at {path} is corrupt (manifest.json: {problem}). Rebuild with: {rebuild}")
    return manifest


MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # a manifest lists one digest per corpus file: 64 MB is millions
MAX_MANIFEST_DEPTH = 8  # the deepest real entry is channels → dense → query_model → files → name


def _depth(value, limit: int = MAX_MANIFEST_DEPTH + 1) -> int:
    """How deeply ``value`` nests lists and objects (counting stops past ``limit``)."""
    if not isinstance(value, (dict, list)) or limit <= 0:
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(c, limit - 1) for c in children), default=0)


def _safe_relative(name: object) -> bool:
    return isinstance(name, str) and bool(name) and not Path(name).is_absolute() and ".." not in Path(name).parts


def manifest_problem(manifest: object) -> str | None:
    """What is wrong with the shape of a manifest (None: what loading needs is there). An
    index of another format is reported by the freshness check instead, with its rebuild."""
    if not isinstance(manifest, dict):
        return f"a JSON object was expected, found {type(manifest).__name__}"
    if manifest.get("format") != FORMAT:
        return None
    corpus, channels = manifest.get("corpus"), manifest.get("channels")
    if not isinstance(corpus, dict) or not isinstance(corpus.get("path"), str) or not isinstance(corpus.get("files"), dict):
        return "no 'corpus' with its path and files"
    path_problem = corpus_path_problem(corpus["path"])
    if path_problem:
        return path_problem
    if not all(_safe_relative(f) and isinstance(d, str) for f, d in corpus["files"].items()):
        return "its corpus files are not all paths inside the corpus folder"
    if not isinstance(channels, dict) or not channels:
        return "no 'channels'"
    for channel, entry in channels.items():
        if not isinstance(entry, dict):
            return f"channel {channel!r} is not an object"
        if "fingerprint" in entry:
            if not all(isinstance(entry.get(k), str) for k in ("model", "fingerprint", "file", "sha256", "sentences_sha256")):
                return f"channel {channel!r} lacks its model, fingerprint, file or checksums"
            if not _safe_relative(entry["file"]):
                return f"channel {channel!r} names the file {entry['file']!r}, outside the index"
            query_model = entry.get("query_model")
            if query_model is not None and not (isinstance(query_model, dict) and _safe_relative(query_model.get("folder"))
                                                and isinstance(query_model.get("files"), dict)
                                                and all(map(_safe_relative, query_model["files"]))):
                return f"channel {channel!r} has a malformed query_model"
    if DENSE not in channels or "fingerprint" not in channels[DENSE]:
        return f"no '{DENSE}' channel"
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(_safe_relative(f) and isinstance(d, str) for f, d in files.items()):
        return "no valid 'files' checksums"
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(counts.get(k), int) for k in ("documents", "passages", "sentences")):
        return "no 'counts' of documents, passages and sentences"
    return None


def damaged_index_files(path: Path, manifest: dict) -> list[str]:
    """Files of the index folder that are missing, changed since the build (sha256 against the
    manifest), or not the ones their channel was built with; empty when all is intact. Digests
    of unchanged files come from a cache (see :mod:`kzqa.channels.checksums`)."""
    files: dict[str, str] = manifest["files"]
    required = {"documents.jsonl", "passages.jsonl", "stats.json"}
    for c in dense_channels(manifest):
        required |= {manifest["channels"][c]["file"], f"{c}.sentences.npy"}
    if LEXICAL in manifest["channels"] and not any(f.startswith(f"{LEXICAL}/") for f in files):
        required.add(f"{LEXICAL}/")
    damaged = [f"{f} (not in the manifest)" for f in sorted(required - set(files))]
    for name, digest in files.items():
        target = path / name
        try:
            if not target.is_file():
                damaged.append(f"{name} (missing)")
            elif known_sha256(target) != digest:
                damaged.append(f"{name} (changed)")
        except OSError as exc:
            damaged.append(f"{name} ({exc.strerror or exc})")
    for c in dense_channels(manifest):
        entry = manifest["channels"][c]
        if files.get(entry["file"]) != entry["sha256"] or files.get(f"{c}.sentences.npy") != entry["sentences_sha256"]:
            damaged.append(f"{c}: its vector files are not the ones it was built with")
    return damaged


MAX_NAMED = 5  # files a message names before '… and N more'


def corpus_changes(manifest: dict, corpus_dir: Path) -> list[str]:
    """What changed in the corpus folder since the build: 'added: x', 'removed: y', …"""
    before: dict = manifest["corpus"]["files"]
    now = file_hashes(corpus_dir)
    changes = []
    for label, names in (
        ("added", sorted(set(now) - set(before))),
        ("removed", sorted(set(before) - set(now))),
        ("modified", sorted(n for n in set(now) & set(before) if now[n] != before[n])),
    ):
        if names:
            more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
            changes.append(f"{label}: {', '.join(names[:MAX_NAMED])}{more}")
    return changes


def check_fresh(manifest: dict, encoders: dict[str, Encoder], where: str, rebuild: str,
                corpus_base: Path | None = None) -> None:
    """Raise IndexProblem ("<where> is stale: <what changed>. Rebuild with: <rebuild>") if the
    corpus (a relative corpus path is taken from ``corpus_base``), models or pipeline differ."""
    changes: list[str] = []
    if manifest.get("format") != FORMAT or manifest.get("pipeline_version") != PIPELINE_VERSION:
        changes.append(f"index format {manifest.get('format')}/{manifest.get('pipeline_version')} "
                       f"!= this kzqa's {FORMAT}/{PIPELINE_VERSION}")
    corpus_dir = Path(manifest["corpus"]["path"])
    if not corpus_dir.is_absolute() and corpus_base is not None:
        corpus_dir = corpus_base / corpus_dir
    refused = corpus_path_problem(str(corpus_dir))
    if refused:
        raise IndexProblem(f"{where} is corrupt ({refused}). Rebuild with: {rebuild}")
    if corpus_dir.is_dir():
        changes += [f"corpus {c}" for c in corpus_changes(manifest, corpus_dir)]
    elif manifest.get("corpus", {}).get("path") and (where, str(corpus_dir)) not in _REPORTED_MISSING_CORPUS:
        _REPORTED_MISSING_CORPUS.add((where, str(corpus_dir)))
        log.warning("%s: its corpus folder %s is not here, so it cannot be checked for changed documents; "
                    "answering from the index as built", where, corpus_dir)
    for channel, encoder in encoders.items():
        entry = manifest["channels"][channel]
        if entry["fingerprint"] != encoder.fingerprint():
            changes.append(f"model '{entry['model']}' of channel {channel} has other weights "
                           f"than when the index was built")
    if changes:
        raise IndexProblem(f"{where} is stale: {'; '.join(changes)}. Rebuild with: {rebuild}")
