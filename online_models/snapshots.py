"""Versioned model snapshots: a stamped pickle, the store port, its in-memory twin, the poller.

A snapshot is ``MAGIC``, one JSON header line, then the pickle. The header names the model, its
catalog version (name, kind, input names and construction), the River version, the examples
learned and the pickle's SHA-256. ``decode_snapshot`` checks all of it *before* unpickling: a
snapshot of another River version or model version, or a corrupt one, raises ``SnapshotError``
with the reason, and the caller keeps serving what it has.

The store keeps the latest snapshot per name with a counter that only grows: a worker polls the
counters (one small read) and fetches only what changed.

>>> from online_models.catalog import CHURN_RISK
>>> blob = encode_snapshot(CHURN_RISK, CHURN_RISK.build(7), examples=12, created=0.0)
>>> decode_snapshot(blob, CHURN_RISK).header.examples
12
>>> decode_snapshot(blob[:-3], CHURN_RISK)
Traceback (most recent call last):
...
engine.errors.SnapshotError: snapshot of churn_risk is corrupt: checksum mismatch
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Protocol

import orjson

from engine.errors import SnapshotError
from online_models import metrics
from online_models.lease import Lease, LeaseLostError

log = logging.getLogger(__name__)

MAGIC = b"VIGILSNAP1\n"
FORMAT = 1
RIVER_VERSION: str = version("river")


class Stamp(Protocol):
    """What a snapshot is checked against: a ``ModelSpec``, or ``StateStamp`` for other state."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def inputs(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class StateStamp:
    name: str
    version: str
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    name: str
    spec_version: str
    inputs: tuple[str, ...]
    river: str
    examples: int
    sha256: str
    created: float  # the learner's event-time watermark when it was taken


@dataclass(frozen=True, slots=True)
class Snapshot:
    header: SnapshotHeader
    state: Any


def encode_snapshot(spec: Stamp, state: Any, examples: int, created: float) -> bytes:
    payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    header = {
        "format": FORMAT,
        "name": spec.name,
        "spec_version": spec.version,
        "inputs": list(spec.inputs),
        "river": RIVER_VERSION,
        "examples": examples,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "created": created,
    }
    return MAGIC + orjson.dumps(header) + b"\n" + payload


def read_header(blob: bytes, name: str) -> tuple[SnapshotHeader, bytes]:
    """The header and the pickle bytes, checked for shape and checksum (not for versions)."""
    if not blob.startswith(MAGIC):
        raise SnapshotError(f"snapshot of {name} is corrupt: not a Vigil snapshot")
    end = blob.find(b"\n", len(MAGIC))
    if end < 0:
        raise SnapshotError(f"snapshot of {name} is corrupt: no header")
    try:
        doc = orjson.loads(blob[len(MAGIC) : end])
        if doc["format"] != FORMAT:
            raise SnapshotError(
                f"snapshot of {name} has format {doc['format']}; this process reads {FORMAT}"
            )
        header = SnapshotHeader(
            name=str(doc["name"]),
            spec_version=str(doc["spec_version"]),
            inputs=tuple(str(i) for i in doc["inputs"]),
            river=str(doc["river"]),
            examples=int(doc["examples"]),
            sha256=str(doc["sha256"]),
            created=float(doc["created"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"snapshot of {name} is corrupt: bad header ({exc})") from None
    payload = blob[end + 1 :]
    if hashlib.sha256(payload).hexdigest() != header.sha256:
        raise SnapshotError(f"snapshot of {name} is corrupt: checksum mismatch")
    return header, payload


def decode_snapshot(blob: bytes, spec: Stamp) -> Snapshot:
    """The snapshot's model state, or ``SnapshotError`` saying why it cannot serve ``spec``."""
    header, payload = read_header(blob, spec.name)
    if header.name != spec.name:
        raise SnapshotError(f"snapshot is of {header.name}, not {spec.name}")
    if header.river != RIVER_VERSION:
        raise SnapshotError(
            f"snapshot of {spec.name} was made by River {header.river}; this process runs "
            f"River {RIVER_VERSION} (River pickles are not portable across versions)"
        )
    if header.spec_version != spec.version:
        missing = sorted(set(spec.inputs) - set(header.inputs))
        extra = sorted(set(header.inputs) - set(spec.inputs))
        diff = f" (inputs missing {missing}, unexpected {extra})" if missing or extra else ""
        raise SnapshotError(
            f"snapshot of {spec.name} is of model version {header.spec_version}; this process "
            f"serves {spec.version}{diff}"
        )
    try:
        # Snapshots come from Vigil's own learner through Vigil's own Redis (trusted), and the
        # checksum and versions were checked above.
        state = pickle.loads(payload)  # noqa: S301
    except Exception as exc:  # a pickle can fail in many ways; all mean "cannot serve"
        raise SnapshotError(
            f"snapshot of {spec.name} is corrupt: {type(exc).__name__}: {exc}"
        ) from None
    return Snapshot(header, state)


class SnapshotStore(Protocol):
    """Where the learner publishes snapshots and workers find them."""

    async def publish(self, name: str, blob: bytes) -> int:
        """Store ``blob`` as the latest snapshot of ``name``; returns its number (1, 2, ...)."""
        ...

    async def numbers(self) -> dict[str, int]:
        """The latest snapshot number of every name (one cheap read)."""
        ...

    async def fetch(self, name: str) -> tuple[int, bytes] | None:
        """The latest snapshot of ``name`` with its number, or None."""
        ...

    async def close(self) -> None: ...


class MemorySnapshotStore:
    """``SnapshotStore`` in a dict: for replay, tests and one-process runs. With a ``fence``
    (a lease and an owner), ``publish`` raises ``LeaseLostError`` unless the owner holds it."""

    def __init__(self, fence: tuple[Lease, str] | None = None) -> None:
        self._latest: dict[str, tuple[int, bytes]] = {}
        self._fence = fence

    async def publish(self, name: str, blob: bytes) -> int:
        if self._fence is not None:
            lease, owner = self._fence
            if await lease.holder() != owner:
                raise LeaseLostError(
                    f"snapshot of {name} not published: the lease is not {owner}'s"
                )
        number = self._latest.get(name, (0, b""))[0] + 1
        self._latest[name] = (number, bytes(blob))
        return number

    async def numbers(self) -> dict[str, int]:
        return {name: n for name, (n, _) in self._latest.items()}

    async def fetch(self, name: str) -> tuple[int, bytes] | None:
        return self._latest.get(name)

    async def close(self) -> None:
        return None


class Installer(Protocol):
    def snapshot_numbers(self) -> dict[str, int]: ...

    def install(self, name: str, number: int, blob: bytes) -> Snapshot: ...


class SnapshotPoller:
    """Keeps a scorer on the latest snapshots: ``poll()`` compares numbers, fetches what is newer
    and installs it. A refused snapshot is logged and counted once; the previous model serves on.
    """

    def __init__(
        self,
        store: SnapshotStore,
        target: Installer,
        names: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self._names = names or target.snapshot_numbers
        self.refused: dict[str, int] = {}  # name -> the refused number (not retried)
        self.last_error: str | None = None

    async def poll(self) -> list[str]:
        """Install every newer snapshot; the names installed."""
        served = self._names()
        latest = await self.store.numbers()
        installed: list[str] = []
        for name, number in sorted(latest.items()):
            # Any other number is news: numbers only grow, unless Redis lost them (then the
            # learner counts again from 1, and a worker must not wait for its old number).
            if name not in served or number == served[name] or self.refused.get(name) == number:
                continue
            found = await self.store.fetch(name)
            if found is None:
                continue
            number, blob = found
            try:
                snap = self.target.install(name, number, blob)
            except SnapshotError as exc:
                self.refused[name] = number
                self.last_error = str(exc)
                metrics.SNAPSHOT_REFUSED.labels(name).inc()
                log.error(
                    "refused snapshot %d of %s, snapshot %d keeps serving: %s",
                    number,
                    name,
                    served[name],
                    exc,
                )
                continue
            metrics.SNAPSHOT_SERVED.labels(name).set(number)
            log.info(
                "now serving snapshot %d of %s (%d examples)", number, name, snap.header.examples
            )
            installed.append(name)
        return installed
