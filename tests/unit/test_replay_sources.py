"""Replay inputs: formats, line numbers, CSV cells, gzip, bad rows, merging by event time."""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from replay.sources import (
    SourceError,
    csv_row_to_event,
    detect_format,
    doc_epoch,
    event_epoch,
    merged,
    open_file_source,
    parse_instant,
)


def app_event(i: int, ts: str = "2026-01-05T09:30:00+08:00", cid: str = "c1") -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "type": "app",
        "customer_id": cid,
        "ts": ts,
        "session_id": "s1",
        "name": "login",
    }


def write_lines(path: Path, lines: list[bytes]) -> Path:
    data = b"\n".join(lines) + b"\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jsonl", ("jsonl", False)),
        ("a.ndjson", ("jsonl", False)),
        ("a.json", ("jsonl", False)),
        ("a.jsonl.gz", ("jsonl", True)),
        ("A.CSV", ("csv", False)),
        ("b.csv.gz", ("csv", True)),
    ],
)
def test_the_format_comes_from_the_name(name: str, expected: tuple[str, bool]) -> None:
    assert detect_format(Path(name)) == expected


@pytest.mark.parametrize("name", ["events.parquet", "events", "events.gz", "events.txt.gz"])
def test_an_unknown_format_is_refused_with_the_known_ones(name: str) -> None:
    with pytest.raises(SourceError) as err:
        detect_format(Path(name))
    assert ".jsonl" in str(err.value) and ".csv" in str(err.value)


def test_a_missing_file_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        open_file_source(tmp_path / "nope.jsonl")
    with pytest.raises(SourceError, match="not a file"):
        open_file_source(tmp_path)


def test_a_gz_name_on_a_plain_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(orjson.dumps(app_event(1)) + b"\n")
    with pytest.raises(SourceError, match="not gzip"):
        open_file_source(path)


def test_jsonl_items_carry_line_numbers_and_event_times(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "e.jsonl",
        [
            orjson.dumps(app_event(1, "2026-01-05T09:30:00+08:00")),
            b"",
            b"garbage",
            orjson.dumps(app_event(2, "2026-01-05T10:30:00+08:00")),
        ],
    )
    items = list(open_file_source(path).items())
    assert [i.offset for i in items] == [1, 3, 4]  # the blank line is skipped, not renumbered
    assert items[0].ts == event_epoch(orjson.dumps(app_event(1)))
    assert items[1].ts is None and items[1].order_ts == items[0].ts  # stays in place
    assert items[2].ts == items[0].ts + 3600  # type: ignore[operator]
    assert items[1].value == b"garbage" and all(i.source == str(path) for i in items)


def test_gzip_and_plain_files_give_the_same_items(tmp_path: Path) -> None:
    lines = [orjson.dumps(app_event(i)) for i in range(5)]
    plain = list(open_file_source(write_lines(tmp_path / "a.jsonl", lines)).items())
    packed = list(open_file_source(write_lines(tmp_path / "a.jsonl.gz", lines)).items())
    assert [(i.value, i.offset, i.ts) for i in plain] == [(i.value, i.offset, i.ts) for i in packed]
    # gzip is recognised by its bytes too, whatever the name says
    (tmp_path / "b.jsonl").write_bytes((tmp_path / "a.jsonl.gz").read_bytes())
    sniffed = list(open_file_source(tmp_path / "b.jsonl").items())
    assert [i.value for i in sniffed] == lines


def test_a_truncated_gzip_keeps_what_was_read_and_says_so(tmp_path: Path) -> None:
    lines = [orjson.dumps(app_event(i)) for i in range(2000)]
    full = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(full[: len(full) // 2])
    source = open_file_source(path)
    items = list(source.items())
    assert 0 < len(items) < 2000
    assert source.error and "stopped reading" in source.error


def test_csv_cells_become_event_fields() -> None:
    doc = csv_row_to_event(
        {
            "type": "profile",
            "aum": "1200.5",
            "consent": '{"sms": true, "push": false}',
            "properties.screen.name": "home",
            "rm_id": "",
            "note": "{not json",
        }
    )
    assert doc == {
        "type": "profile",
        "aum": "1200.5",
        "consent": {"sms": True, "push": False},
        "properties": {"screen": {"name": "home"}},
        "note": "{not json",
    }


def test_csv_rows_of_the_wrong_width_or_not_utf8_are_rejected_with_their_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(
        b"event_id,type,customer_id,ts,session_id,name\n"
        b"e1,app,c1,2026-01-05T09:30:00+08:00,s1,login\n"
        b"e2,app,c1,2026-01-05T09:31:00+08:00,s1\n"
        b'e3,app,c1,2026-01-05T09:32:00+08:00,s1,"multi\nline"\n'
        b"e4,app,c\xff1,2026-01-05T09:33:00+08:00,s1,login\n"
        b"\n"
        b"e5,app,c1,2026-01-05T09:34:00+08:00,s1,logout\n"
    )
    items = list(open_file_source(path).items())
    assert [(i.offset, i.rejected[0] if i.rejected else None) for i in items] == [
        (2, None),
        (3, "csv_row_width"),
        (5, None),  # a quoted cell spanning lines 4-5: numbered by its last line
        (6, "not_utf8"),
        (8, None),
    ]
    first = orjson.loads(items[0].value)
    assert first == {
        "event_id": "e1",
        "type": "app",
        "customer_id": "c1",
        "ts": "2026-01-05T09:30:00+08:00",
        "session_id": "s1",
        "name": "login",
    }
    assert orjson.loads(items[2].value)["name"] == "multi\nline"
    assert "header has 6" in items[1].rejected[1]  # type: ignore[index]


def test_several_sources_merge_by_event_time_keeping_each_order(tmp_path: Path) -> None:
    a = write_lines(
        tmp_path / "a.jsonl",
        [
            orjson.dumps(app_event(1, "2026-01-05T09:00:00+08:00")),
            orjson.dumps(app_event(2, "2026-01-05T11:00:00+08:00")),
        ],
    )
    b = write_lines(
        tmp_path / "b.jsonl",
        [
            orjson.dumps(app_event(3, "2026-01-05T10:00:00+08:00")),
            b"bad line",
            orjson.dumps(app_event(4, "2026-01-05T11:00:00+08:00")),
        ],
    )
    order = [
        (Path(i.source).name, i.offset) for i in merged([open_file_source(a), open_file_source(b)])
    ]
    assert order == [("a.jsonl", 1), ("b.jsonl", 1), ("b.jsonl", 2), ("a.jsonl", 2), ("b.jsonl", 3)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"ts":"1970-01-01T00:01:00+00:00","type":"app"}', 60.0),
        (b'{"type": "app", "ts": "1970-01-01T08:01:00+08:00"}', 60.0),  # spaces: full decode
        (b'{"properties":{"ts":"2999-01-01T00:00:00Z"},"ts":"1970-01-01T00:01:00Z"}', 60.0),
        (b'{"memo":"say \\"ts\\":\\"2999-01-01T00:00:00Z\\"","ts":"1970-01-01T00:01:00Z"}', 60.0),
        (b'{"ts":"1970-01-01T00:01:00"}', None),  # no offset
        (b'{"ts":"soon"}', None),
        (b'{"ts":12}', None),
        (b'{"ts":"\xff"}', None),
        (b"[1]", None),
    ],
)
def test_event_times_are_read_like_the_full_decoder(raw: bytes, expected: float | None) -> None:
    assert event_epoch(raw) == expected
    doc: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        doc = orjson.loads(raw)
    assert doc_epoch(doc) == expected


def test_instants_need_an_offset() -> None:
    assert parse_instant("2026-01-01T00:00:00+08:00", "--since").utcoffset() is not None
    with pytest.raises(SourceError, match="UTC offset"):
        parse_instant("2026-01-01T00:00:00", "--since")
    with pytest.raises(SourceError, match="not an ISO 8601"):
        parse_instant("yesterday", "--until")
