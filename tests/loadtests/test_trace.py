"""The trace format: round trips, multi-file time lines, rotation bounds, credentials."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from loadtests.trace import (
    FORMAT,
    VERSION,
    Header,
    Record,
    TraceFormatError,
    TraceWriter,
    iter_records,
    read_header,
    read_trace,
    sampled,
    strip_credentials,
    write_trace,
)


def test_round_trip_keeps_header_and_records(tmp_path: Path) -> None:
    path = tmp_path / "t.pbt"
    header = Header.new(shape={"name": "steady", "baseline": 5.0}, defaults={"game": "g"},
                        meta={"seed": 7})
    records = [Record(0, "p1", "createSession", {}),
               Record(5, "p1", "getPlayer"),
               Record(9, "p1", "drawBox", {"count": 10, "client_seed": "ab"}, {"series": "s"}),
               Record(9, "p2", "feedPet", {"food": "snack", "nested": [1, {"x": None}]})]
    assert write_trace(path, header, records) == 4
    back = read_header(path)
    assert back == header
    assert list(iter_records(path)) == records
    with open(path, "rb") as fh:
        first = next(iter(msgpack.Unpacker(fh, raw=False)))
    assert first["format"] == FORMAT and first["version"] == VERSION


def test_other_formats_and_newer_versions_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pbt"
    junk.write_bytes(msgpack.packb({"format": "something-else"}))
    with pytest.raises(TraceFormatError):
        read_header(junk)
    newer = tmp_path / "newer.pbt"
    newer.write_bytes(msgpack.packb({**Header.new().pack(), "version": VERSION + 1}))
    with pytest.raises(TraceFormatError, match="version"):
        list(iter_records(newer))
    empty = tmp_path / "empty.pbt"
    empty.write_bytes(b"")
    with pytest.raises(TraceFormatError):
        read_header(empty)


def test_corrupt_and_cut_short_files_are_named_not_silent(tmp_path: Path) -> None:
    """Bytes that are not records in the middle of a trace are a TraceFormatError naming
    the file and the records before them (they were a msgpack traceback); a file that ends
    inside a record yields its complete records and reports what was left out (it was
    dropped without a word); a bad header names its file among several."""
    path = tmp_path / "t.pbt"
    records = [Record(i * 10, f"p{i}", "getPlayer") for i in range(20)]
    write_trace(path, Header.new(defaults={"game": "g"}), records)
    data = path.read_bytes()
    sizes = [len(msgpack.packb(r.pack())) for r in records]
    after_5 = len(data) - sum(sizes[5:])  # where record 6 starts

    corrupt = tmp_path / "corrupt.pbt"
    corrupt.write_bytes(data[:after_5] + b"\xc1" * 8 + data[after_5 + 8:])
    with pytest.raises(TraceFormatError, match=r"corrupt\.pbt: corrupt after record 5 "):
        list(iter_records(corrupt))
    unhashable = tmp_path / "unhashable.pbt"  # a map whose key is a list
    unhashable.write_bytes(data[:after_5] + b"\x81\x91\x01\x01" + data[after_5:])
    with pytest.raises(TraceFormatError, match=r"unhashable\.pbt: corrupt after record 5 "):
        list(iter_records(unhashable))
    not_a_record = tmp_path / "not_a_record.pbt"
    not_a_record.write_bytes(data[:after_5] + msgpack.packb(7) + data[after_5:])
    with pytest.raises(TraceFormatError,
                       match=r"not_a_record\.pbt: record 6 is not a trace record"):
        list(iter_records(not_a_record))

    cut = tmp_path / "cut.pbt"
    cut.write_bytes(data[:-3])
    notes: list[str] = []
    assert list(iter_records(cut, notes.append)) == records[:19]
    assert notes == [f"{cut}: ends inside a record ({sizes[-1] - 3} bytes after record 19, "
                     "cut short): only the complete records are read"]
    notes.clear()
    assert list(read_trace([path, cut], notes.append)[1])[-1] == records[-1]
    assert len(notes) == 1 and notes[0].startswith(f"{cut}: ends inside a record")
    assert list(iter_records(path, notes.append)) == records and len(notes) == 1

    junk = tmp_path / "junk.pbt"
    junk.write_bytes(b"garbage\n")
    with pytest.raises(TraceFormatError, match=r"junk\.pbt: not a petbox trace"):
        read_trace([path, junk])


def test_files_join_into_one_time_line(tmp_path: Path) -> None:
    write_trace(tmp_path / "b.pbt", Header.new(start_ms=10_000), [Record(0, "x", "getPlayer"),
                                                                  Record(30, "x", "getPlayer")])
    write_trace(tmp_path / "a.pbt", Header.new(start_ms=9_990), [Record(0, "y", "getPlayer"),
                                                                 Record(25, "y", "getPlayer")])
    header, records = read_trace([tmp_path / "b.pbt", tmp_path / "a.pbt"])
    assert header.start_ms == 9_990
    assert [(r.t_ms, r.player) for r in records] == [(0, "y"), (10, "x"), (25, "y"), (40, "x")]


def test_credentials_are_stripped_at_any_depth() -> None:
    body = {"merchant": "m", "user": "u", "ts": 1, "sign": "ff" * 32,
            "inner": [{"Token": "t", "keep": 1}], "api_key": "k", "food": "snack"}
    assert strip_credentials(body) == {"merchant": "m", "user": "u", "ts": 1,
                                       "inner": [{"keep": 1}], "food": "snack"}


def test_sampling_keeps_whole_players_and_about_the_rate() -> None:
    players = [f"u{i}" for i in range(20_000)]
    chosen = [p for p in players if sampled(p, 0.1)]
    assert 1_700 < len(chosen) < 2_300
    assert chosen == [p for p in players if sampled(p, 0.1)]  # same players every time
    assert all(sampled(p, 1.0) for p in players[:10])
    assert not any(sampled(p, 0.0) for p in players[:10])


def test_rotation_bounds_file_size_and_count(tmp_path: Path) -> None:
    clock = iter(1_700_000_000 + i * 0.01 for i in range(100_000))
    writer = TraceWriter(tmp_path / "rec", max_bytes=4096, max_files=3, clock=lambda: next(clock),
                         meta={"server": "test"})
    written = [writer.record(f"user{i % 7}", "feedPet", {"food": "snack", "sign": "x" * 20},
                             {"game": "g"}) for i in range(2_000)]
    assert all(written)
    assert not writer.record("big", "feedPet", {"blob": "x" * 10_000})  # never fits: dropped
    assert writer.dropped == 1
    writer.close()
    files = writer.files()
    assert len(files) == 3
    assert all(f.stat().st_size <= 4096 for f in files)
    names = [f.name for f in files]
    assert names == sorted(names) and names[-1].endswith(f"{writer._seq:06d}.pbt")
    header, records = read_trace(files)
    got = list(records)
    assert header.source == "record" and header.meta["server"] == "test"
    assert all("sign" not in r.body for r in got)
    assert [r.t_ms for r in got] == sorted(r.t_ms for r in got)
    # the kept files are the newest: they end with the last record written (10 ms apart)
    span = got[-1].t_ms - got[0].t_ms
    assert abs(span - (len(got) - 1) * 10) <= len(files)


def test_a_new_writer_continues_numbering(tmp_path: Path) -> None:
    with TraceWriter(tmp_path, max_bytes=2048, max_files=10) as w:
        for i in range(200):
            w.record("u", "getPlayer", None, None, at=1000.0 + i)
        seq = w._seq
    with TraceWriter(tmp_path, max_bytes=2048, max_files=10) as w2:
        w2.record("u", "getPlayer", at=5000.0)
        assert w2._seq == seq + 1


def test_pseudonymised_players(tmp_path: Path) -> None:
    with TraceWriter(tmp_path, player_salt="pepper") as w:
        w.record("openid-123", "getPlayer", at=1.0)
        w.record("openid-123", "getPlayer", at=2.0)
    _, records = read_trace(w.files())
    players = {r.player for r in records}
    assert len(players) == 1 and "openid" not in players.pop()


def test_inspect_says_what_is_wrong_with_a_trace(tmp_path: Path) -> None:
    """``inspect`` of a corrupt trace is a one-line error (exit 1), not a traceback; of a
    trace cut short, a warning and the complete records."""
    from click.testing import CliRunner

    from loadtests.cli import loadtest

    path = tmp_path / "t.pbt"
    write_trace(path, Header.new(), [Record(i, "p", "getPlayer") for i in range(10)])
    data = path.read_bytes()
    (tmp_path / "bad.pbt").write_bytes(data[:-30] + b"\xc1" + data[-29:])
    bad = CliRunner().invoke(loadtest, ["inspect", str(tmp_path / "bad.pbt")])
    assert bad.exit_code == 1 and bad.exception is not None
    assert isinstance(bad.exception, SystemExit), bad.exception
    assert f"Error: {tmp_path / 'bad.pbt'}: corrupt after record " in bad.output
    (tmp_path / "cut.pbt").write_bytes(data[:-2])
    cut = CliRunner().invoke(loadtest, ["inspect", str(tmp_path / "cut.pbt")])
    assert cut.exit_code == 0, cut.output
    assert f"warning: {tmp_path / 'cut.pbt'}: ends inside a record" in cut.output
    assert '"records": 9' in cut.output
