"""Embedding spread over a Ray cluster: ``kzqa build --ray ADDRESS`` (``auto``: a local cluster).

:class:`RayEncoder` stands in for a build's encoder. The driver keeps everything but the model
runs: the build looks up its embedding cache there first and hands only the missing texts to
``encode_passages``, which cuts them, in the order the encoder itself would embed them
(``batch_order``), into chunks of whole batches and sends the chunks to an actor pool (one model
instance per actor, one CPU each, ``ray.util.ActorPool``). The model goes to the workers as
data, so they need kzqa installed but neither the corpus nor the driver's files: an ONNX export's
files through Ray's object store, or the name of a model they can load themselves. Each actor
embeds its chunk with the same batches as a one-process build, so the vectors are the same.

Ray is an optional extra (``pip install 'kzqa[ray]'``); nothing here imports it until a build asks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BATCHES_PER_TASK = 2  # whole batches per task: small, so that no worker idles long at the end of a channel
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached (the message says which)."""


def connect(address: str) -> dict:
    """Join the Ray cluster at ``address`` (``auto``: start a local one), unless this process
    already has; returns its resources (``{"CPU": …, "nodes": …}``)."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable("--ray needs Ray: pip install 'kzqa[ray]'") from exc
    if not ray.is_initialized():
        if address != "auto":
            _reachable(address)
        local = {"_node_ip_address": "127.0.0.1"} if address == "auto" or _host_port(address)[0] in LOOPBACK else {}
        try:  # a cluster on loopback: the driver joins it as 127.0.0.1 too, or no object reaches it
            ray.init(address=None if address == "auto" else address, logging_level="ERROR",
                     log_to_driver=False, include_dashboard=False, **local)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {exc}") from exc
    return {"CPU": int(ray.cluster_resources().get("CPU", 0)), "nodes": len([n for n in ray.nodes() if n["Alive"]])}


def _host_port(address: str) -> tuple[str, str]:
    """``host:port`` (``[v6]:port``) split into the host, without brackets, and the port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port


def _reachable(address: str, timeout: float = 10.0) -> None:
    """RayUnavailable unless something answers at ``address`` (host:port): ray.init would wait
    for an absent cluster without end."""
    import socket

    host, port = _host_port(address)
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: "
                             f"{getattr(exc, 'strerror', None) or exc} (is `ray start --head` running there?)") from exc


def _model_payload(encoder, folder: Path | None) -> dict:
    """What a worker needs to make the same encoder: the export's files (and their digest, which
    names them in the worker's cache), or the model's name."""
    if folder is None:
        return {"name": encoder.name}
    files = {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}
    digest = hashlib.sha256()
    for name, data in files.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return {"files": files, "digest": digest.hexdigest()}


def _make_encoder(payload: dict):
    """The encoder a worker embeds with, from :func:`_model_payload` (one thread per actor). An
    export's files are kept in the worker's kzqa cache under their digest: written once per
    model, however many builds and actors use it."""
    if "name" in payload:
        from .encoders import get_encoder

        return get_encoder(payload["name"])
    from .embedcache import cache_dir
    from .onnxmodels import open_exported

    folder = cache_dir() / "ray-models" / payload["digest"][:16]
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder.parent))
        for name, data in payload["files"].items():
            (tmp / name).write_bytes(data)
        try:
            os.rename(tmp, folder)  # atomic: another actor may have written the same files meanwhile
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return open_exported(folder, threads=1)


class _Embedder:
    """A Ray actor holding one model instance."""

    def __init__(self, payload):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.encoder = _make_encoder(payload)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, str]:
        import ray

        return self.encoder.encode_passages(texts), ray.get_runtime_context().get_node_id()


class RayEncoder:
    """``encoder`` (name, dim, fingerprint, token counts unchanged), its ``encode_passages``
    run on Ray actors; ``folder`` is its ONNX export (None: workers load the model by name).
    ``nodes`` counts the chunks each node embedded."""

    def __init__(self, encoder, folder: Path | None, address: str, workers: int | None = None):
        self.local = encoder
        self.name, self.dim, self.max_tokens = encoder.name, encoder.dim, encoder.max_tokens
        self._folder, self._address, self._workers = folder, address, workers
        self._pool: list | None = None
        self.nodes: Counter = Counter()

    def fingerprint(self) -> str:
        return self.local.fingerprint()

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        return self.local.count_tokens_many(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.local.encode_queries(texts)

    def chunks(self, texts: Sequence[str], workers: int = 1) -> list[np.ndarray]:
        """Indices of ``texts`` in the encoder's own order, cut into chunks of whole batches:
        at most BATCHES_PER_TASK batches, and small enough that every one of ``workers`` gets one."""
        order = np.asarray(self.local.batch_order(texts) if hasattr(self.local, "batch_order")
                           else range(len(texts)), dtype=np.int64)
        batch = int(getattr(self.local, "batch_size", 32))
        per_worker = -(-len(order) // max(1, workers))
        size = max(batch, min(batch * BATCHES_PER_TASK, -(-per_worker // batch) * batch))
        return [order[lo:lo + size] for lo in range(0, len(order), size)]

    def _actors(self) -> list:
        """The actor pool of this encoder, started on first use (one model load per actor for
        the whole build) and ended by :meth:`close`."""
        if self._pool is None:
            import ray

            cpus = connect(self._address)["CPU"]
            payload = ray.put(_model_payload(self.local, self._folder))
            actor = ray.remote(num_cpus=1)(_Embedder)
            self._pool = [actor.remote(payload) for _ in range(max(1, self._workers or cpus or 1))]
        return self._pool

    def encode_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        from ray.util import ActorPool

        actors = self._actors()
        chunks = self.chunks(texts, len(actors))
        results = ActorPool(actors).map(lambda a, idx: a.encode.remote([texts[i] for i in idx]), chunks)
        if progress:
            from tqdm.auto import tqdm

            results = tqdm(results, total=len(chunks), desc=f"{self.name} on Ray", unit="chunk")
        from ray.exceptions import RayError

        try:
            for idx, (vectors, node) in zip(chunks, results):
                out[idx] = vectors
                self.nodes[node] += 1
        except RayError as exc:  # a worker died or could not load the model: say so in one line
            raise RayUnavailable(f"a Ray worker failed while embedding with {self.name}: "
                                 f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from exc
        return out

    def close(self) -> None:
        """End the actors (their models' memory goes back to the workers)."""
        if self._pool:
            import ray

            for a in self._pool:
                ray.kill(a)
        self._pool = None
