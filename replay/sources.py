"""Where replayed events come from: JSONL or CSV files (plain or gzip) and a Kafka topic range.

Every source yields ``SourceItem`` values in its own order: the raw bytes of one event (the exact
bytes the live worker would consume), where they came from (file and line, or topic, partition
and offset) and the event time read from them, used to order several sources against each other
and to set the replay's event-time clock. A row that cannot even be turned into a record (a CSV
row of the wrong width, a line that is not UTF-8 in a CSV file) is a ``SourceItem`` with
``rejected`` set: it never reaches the pipeline and is counted as invalid.

Files are checked before anything runs (``open_file_source``): a missing file, an unknown format
or a ``.gz`` file that is not gzip raises ``SourceError`` with a message for a person.

Formats, by the name (a trailing ``.gz`` means gzip; gzip is also recognised by its magic bytes):

- ``.jsonl``, ``.ndjson``, ``.json``: one JSON event per line, blank lines skipped;
- ``.csv``: a header row naming the event fields, one event per row. An empty cell means the
  field is absent. A cell that starts with ``{`` or ``[`` and parses as JSON is that JSON value
  (``consent`` as ``{"sms": true}``, ``properties`` as ``{"x": 1}``); a dotted column name makes
  a nested field (``consent.sms`` with ``true``). Other cells are strings, which the event
  contract converts where a number or a boolean is expected (``amount`` ``"12.5"``).

>>> event_epoch(b'{"ts": "2026-01-01T00:00:00+08:00", "type": "app"}')
1767196800.0
>>> event_epoch(b'not json') is None, event_epoch(b'{"ts": "2026-01-01T00:00:00"}') is None
(True, True)
>>> csv_row_to_event({"type": "profile", "aum": "12.5", "consent.sms": "true", "rm_id": ""})
{'type': 'profile', 'aum': '12.5', 'consent': {'sms': 'true'}}
"""

from __future__ import annotations

import csv
import gzip
import heapq
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, Protocol, cast

import orjson

from engine.errors import VigilError

Format = Literal["jsonl", "csv"]
FORMATS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}
GZIP_MAGIC = b"\x1f\x8b"


class SourceError(VigilError):
    """An input cannot be replayed at all: missing, unreadable, unknown format, bad range."""


class SourceItem(NamedTuple):
    """One input record: the bytes, where they came from, and their event time if readable.

    ``order_ts`` orders sources against each other: the event time, or for a record whose time
    cannot be read, the last event time seen before it in the same source (so it stays in place).
    (A named tuple: one is made per input record, three times cheaper than a frozen dataclass.)
    """

    value: bytes
    source: str
    partition: int
    offset: int  # the line number of a file (1-based), the offset in a Kafka partition
    ts: float | None
    order_ts: float
    kafka_timestamp: float | None = None
    rejected: tuple[str, str] | None = None  # (reason, message) for a record never decided


class Source(Protocol):
    """An iterable of ``SourceItem`` with a name and a rough size for the progress bar."""

    name: str
    partition: int

    def items(self) -> Iterator[SourceItem]: ...

    def size(self) -> int:
        """Total bytes to read (0 when unknown)."""
        ...

    def position(self) -> int:
        """Bytes read so far."""
        ...


_TS_KEY = b'"ts":"'


def event_epoch(raw: bytes) -> float | None:
    """The event time (``ts``, with an offset) of a raw record, or None when unreadable.

    Fast path: a top-level ``"ts":"`` met before any nested object is the event's own (inside a
    JSON string the quotes would be escaped); anything else is decoded in full.

    >>> event_epoch(b'{"properties": {"ts": "2030-01-01T00:00:00Z"}, "ts": "1970-01-01T00:01:00Z"}')
    60.0
    """
    i = raw.find(_TS_KEY)
    if i >= 0 and raw.find(b"{", 1, i) < 0:
        end = raw.find(b'"', i + 6)
        if end > 0:
            try:
                return _aware_epoch(raw[i + 6 : end].decode())
            except UnicodeDecodeError:
                return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc_epoch(doc)


def _aware_epoch(text: str) -> float | None:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        return None
    return at.timestamp()


def doc_epoch(doc: Any) -> float | None:
    """The event time of a decoded record (see ``event_epoch``)."""
    if not isinstance(doc, dict):
        return None
    ts = doc.get("ts")
    if not isinstance(ts, str):
        return None
    return _aware_epoch(ts)


def detect_format(path: Path) -> tuple[Format, bool]:
    """The format by the file name, and whether the name says gzip.

    >>> detect_format(Path("a/events.jsonl.gz")), detect_format(Path("x.CSV"))
    (('jsonl', True), ('csv', False))
    """
    name = path.name.lower()
    gz = name.endswith((".gz", ".gzip"))
    if gz:
        name = name.rsplit(".", 1)[0]
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    fmt = FORMATS.get(suffix)
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise SourceError(
            f"{path}: unknown input format {suffix or '(no suffix)'!r}; "
            f"known: {known} (each optionally .gz)"
        )
    return fmt, gz


class FileSource:
    """A JSONL or CSV file, plain or gzip."""

    def __init__(self, path: Path, fmt: Format, gzipped: bool) -> None:
        self.path = path
        self.format: Format = fmt
        self.gzipped = gzipped
        self.name = str(path)
        self.partition = 0
        self._raw: IO[bytes] | None = None
        self._size = path.stat().st_size
        self.error: str | None = None

    def size(self) -> int:
        return self._size

    def position(self) -> int:
        raw = self._raw
        if raw is None or raw.closed:
            return self._size if self._raw is not None else 0
        try:
            return raw.tell()
        except (OSError, ValueError):
            return 0

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line without its end of line) for every physical line."""
        raw = self.path.open("rb")
        self._raw = raw
        stream: IO[bytes] = raw
        if self.gzipped:
            stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        try:
            for number, line in enumerate(stream, start=1):
                yield number, line.rstrip(b"\r\n")
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            # A truncated or corrupt gzip stream: keep what was read, say what happened.
            self.error = f"stopped reading: {exc}"
        finally:
            if stream is not raw:
                stream.close()
            raw.close()

    def items(self) -> Iterator[SourceItem]:
        if self.format == "csv":
            yield from self._csv_items()
            return
        last = float("-inf")
        for number, line in self._lines():
            if not line.strip():
                continue
            ts = event_epoch(line)
            if ts is not None:
                last = ts
            yield SourceItem(line, self.name, 0, number, ts, ts if ts is not None else last)

    def _csv_items(self) -> Iterator[SourceItem]:
        bad_lines: set[int] = set()
        numbered = self._lines()
        current = [0]

        def text_lines() -> Iterator[str]:
            for number, line in numbered:
                current[0] = number
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    bad_lines.add(number)
                    text = line.decode("utf-8", errors="replace")
                yield text + "\n"

        reader = csv.reader(text_lines())
        header: list[str] | None = None
        last = float("-inf")
        previous_end = 0
        for row in reader:
            end = current[0]
            start, previous_end = previous_end + 1, end
            if header is None:
                if not row or not any(cell.strip() for cell in row):
                    continue
                header = [cell.strip().lstrip("\ufeff") for cell in row]
                continue
            if not any(cell.strip() for cell in row):
                continue
            raw_text = ",".join(row).encode("utf-8", errors="replace")
            if any(n in bad_lines for n in range(start, end + 1)):
                yield self._rejected(raw_text, end, last, "not_utf8", "the row is not UTF-8 text")
                continue
            if len(row) != len(header):
                yield self._rejected(
                    raw_text,
                    end,
                    last,
                    "csv_row_width",
                    f"the row has {len(row)} cells; the header has {len(header)}",
                )
                continue
            doc = csv_row_to_event(dict(zip(header, row, strict=True)))
            ts = doc_epoch(doc)
            if ts is not None:
                last = ts
            value = orjson.dumps(doc)
            yield SourceItem(value, self.name, 0, end, ts, ts if ts is not None else last)

    def _rejected(
        self, raw: bytes, line: int, last: float, reason: str, message: str
    ) -> SourceItem:
        return SourceItem(raw, self.name, 0, line, None, last, rejected=(reason, message))


def csv_row_to_event(row: Mapping[str, str]) -> dict[str, Any]:
    """One CSV row (header -> cell) as an event document (see the module docstring)."""
    doc: dict[str, Any] = {}
    for column, cell in row.items():
        if not column or cell == "":
            continue
        value: Any = cell
        stripped = cell.strip()
        if stripped[:1] in ("{", "["):
            try:
                value = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                value = cell
        if "." in column:
            head, _, rest = column.partition(".")
            target = doc.setdefault(head, {})
            if isinstance(target, dict):
                for part in rest.split(".")[:-1]:
                    nested = target.setdefault(part, {})
                    if not isinstance(nested, dict):
                        break
                    target = nested
                else:
                    target[rest.split(".")[-1]] = value
                    continue
            doc[column] = value
        else:
            doc[column] = value
    return doc


def open_file_source(path: Path) -> FileSource:
    """Check one input file and return its source; raises ``SourceError`` before any work."""
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if not path.is_file():
        raise SourceError(f"{path}: not a file")
    fmt, named_gz = detect_format(path)
    try:
        with path.open("rb") as fh:
            magic = fh.read(2)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
    is_gz = magic == GZIP_MAGIC
    if named_gz and not is_gz and magic:
        raise SourceError(f"{path}: the name says gzip but the file is not gzip-compressed")
    return FileSource(path, fmt, is_gz)


# --- Kafka topic ranges ---------------------------------------------------------------------

_SPOOL_HEADER = struct.Struct(">qqI")  # offset, timestamp (ms), value length


class SpoolSource:
    """One partition of a topic range, spooled to a local file by ``fetch_topic_range``."""

    def __init__(self, path: Path, topic: str, partition: int) -> None:
        self.path = path
        self.name = topic
        self.partition = partition
        self._size = path.stat().st_size
        self._pos = 0

    def size(self) -> int:
        return self._size

    def position(self) -> int:
        return self._pos

    def items(self) -> Iterator[SourceItem]:
        last = float("-inf")
        with self.path.open("rb") as fh:
            while True:
                header = fh.read(_SPOOL_HEADER.size)
                if len(header) < _SPOOL_HEADER.size:
                    break
                offset, ts_ms, length = _SPOOL_HEADER.unpack(header)
                value = fh.read(length)
                self._pos = fh.tell()
                ts = event_epoch(value)
                if ts is not None:
                    last = ts
                yield SourceItem(
                    value,
                    self.name,
                    self.partition,
                    offset,
                    ts,
                    ts if ts is not None else last,
                    kafka_timestamp=ts_ms / 1000.0,
                )


@dataclass(frozen=True, slots=True)
class TopicRange:
    topic: str
    since_ms: int
    until_ms: int


def parse_instant(text: str, option: str) -> datetime:
    """An ISO 8601 instant with a UTC offset (``Z`` allowed); ``SourceError`` otherwise.

    >>> parse_instant("2026-01-01T00:00:00Z", "--since").isoformat()
    '2026-01-01T00:00:00+00:00'
    """
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise SourceError(f"{option}: not an ISO 8601 time: {text!r}") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise SourceError(f"{option}: needs a UTC offset (e.g. +08:00 or Z): {text!r}")
    return at


class _Spool:
    """Per-partition spool files of a topic range (synchronous file work, kept out of async)."""

    def __init__(self, directory: Path, topic: str) -> None:
        self.directory = directory
        self.topic = topic
        directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[int, IO[bytes]] = {}

    def path(self, partition: int) -> Path:
        return self.directory / f"{self.topic}-{partition}.spool"

    def open(self, partition: int) -> None:
        self._files[partition] = self.path(partition).open("wb")

    def write(self, partition: int, offset: int, timestamp_ms: int, value: bytes) -> None:
        fh = self._files[partition]
        fh.write(_SPOOL_HEADER.pack(offset, timestamp_ms, len(value)))
        fh.write(value)

    def close(self) -> list[SpoolSource]:
        for fh in self._files.values():
            fh.close()
        return [SpoolSource(self.path(p), self.topic, p) for p in sorted(self._files)]


async def fetch_topic_range(
    bootstrap: str,
    spec: TopicRange,
    spool_dir: Path,
    idle_timeout: float = 30.0,
    on_progress: Callable[[int], None] | None = None,
) -> list[SpoolSource]:
    """Read every record of ``spec.topic`` with a Kafka timestamp in [since, until) into spool
    files, one per partition. Bounded: it stops at offsets fixed when it starts.

    A partition starts at ``offsets_for_times(since)`` and ends before
    ``offsets_for_times(until)`` or, when no record is that recent, at its end offset at start-up.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        raise SourceError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    spool = _Spool(spool_dir, spec.topic)
    try:
        # topics() fetches the cluster's metadata but does not keep it: ask the client for it.
        cluster = await consumer._client.fetch_all_metadata()
        if spec.topic not in cluster.topics():
            raise SourceError(f"topic {spec.topic!r} does not exist on {bootstrap}")
        tps = [
            TopicPartition(spec.topic, p)
            for p in sorted(cluster.partitions_for_topic(spec.topic) or ())
        ]
        consumer.assign(tps)
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, spec.since_ms))
        ends = await consumer.offsets_for_times(dict.fromkeys(tps, spec.until_ms))
        high = await consumer.end_offsets(tps)
        todo: dict[Any, int] = {}
        for tp in tps:
            start_at, end_at = starts.get(tp), ends.get(tp)
            start = start_at.offset if start_at is not None else high[tp]
            stop = end_at.offset if end_at is not None else high[tp]
            spool.open(tp.partition)
            if start < stop:
                consumer.seek(tp, start)
                todo[tp] = stop
            else:
                consumer.pause(tp)
        read, idle = 0, 0.0
        while todo:
            batch = await consumer.getmany(*todo.keys(), timeout_ms=500)
            if not batch:
                idle += 0.5
                if idle >= idle_timeout:
                    left = {tp.partition: stop for tp, stop in todo.items()}
                    raise SourceError(
                        f"topic {spec.topic}: nothing received for {idle_timeout:.0f}s before "
                        f"the end of the range (partition: end offset {left})"
                    )
                continue
            idle = 0.0
            for tp, records in batch.items():
                stop = todo.get(tp)
                if stop is None:
                    continue
                for rec in records:
                    if rec.offset >= stop:
                        break
                    if spec.since_ms <= rec.timestamp < spec.until_ms:
                        spool.write(tp.partition, rec.offset, rec.timestamp, rec.value or b"")
                        read += 1
                if await consumer.position(tp) >= stop:
                    del todo[tp]
                    consumer.pause(tp)
            if on_progress is not None:
                on_progress(read)
        return spool.close()
    except KafkaError as exc:
        spool.close()
        raise SourceError(f"reading {spec.topic} from {bootstrap} failed: {exc}") from None
    except BaseException:
        spool.close()
        raise
    finally:
        await consumer.stop()


# --- several sources as one stream ----------------------------------------------------------


def merged(sources: Iterable[Source]) -> Iterator[SourceItem]:
    """One stream: a single source as it is; several merged by event time (stable: at equal
    times the earlier source first), each source assumed to be in time order itself."""
    sources = list(sources)
    if len(sources) == 1:
        return sources[0].items()
    return heapq.merge(*(s.items() for s in sources), key=lambda item: item.order_ts)


def total_size(sources: Iterable[Source]) -> int:
    return sum(s.size() for s in sources)
