"""The petbox trace format: requests with their intended send times.

A trace file is a stream of msgpack objects. The first is the header, a map::

    {"format": "petbox-trace", "version": 1, "created": <unix s>,
     "start_ms": <unix ms the offsets count from>, "source": "generate" | "record",
     "shape": {...shape parameters...}, "defaults": {"game": ...}, "meta": {...}}

Every later object is one record, an array ``[t_ms, player, operationId, body,
params]`` or ``[t_ms, player, operationId, body, params, expect(, gave)]``: the intended
send time as a millisecond offset from ``start_ms``, the player (the shopper's
user id, without credentials), the operationId of API.md, the JSON body
(``None`` for a GET), the path parameters (``{"series": ...}``; ``None`` when the
defaults do) and, in recordings, the outcome the shopper got then (``"200"``,
``"409 cooldown"``): a replay counts a refusal the recording also had as
expected, and ``gave``, what the reply handed back that later requests name
(``startAssist``, ``createGroupBuy``, ``createTeam``): a map of its share ``code``
and the ids it named in path parameters (``{"code": ..., "team": ...}``; older
recordings hold the code alone, a string). A replay swaps each for the value it got,
in the bodies and paths of the players who used it. Records are written in ``t_ms``
order.

Readers refuse another ``format`` or a newer ``version``; a version bump is
needed only for incompatible changes (new header keys are not one).

:class:`TraceWriter` is what a recording middleware calls: it samples players,
strips credentials from bodies and rotates size-bounded files, keeping at most
``max_files`` of them, so recording can never fill a disk.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgpack

FORMAT = "petbox-trace"
VERSION = 1
SUFFIX = ".pbt"

SENSITIVE_KEYS = frozenset({
    "sign", "signature", "token", "access_token", "refresh_token", "password", "secret",
    "signing_secret", "api_key", "apikey", "authorization", "cookie", "session",
})
"""Body keys (case-insensitive, at any depth) that never reach a trace file."""


class TraceFormatError(ValueError):
    """The file is not a petbox trace this code can read."""


@dataclass(frozen=True, slots=True)
class Record:
    """One request of a trace."""

    t_ms: int
    player: str
    op: str
    body: Any = None
    params: Mapping[str, Any] | None = None
    """Path parameters: strings, or (generated chains) references, :mod:`loadtests.chains`."""
    expect: str | None = None
    """The outcome recorded with the request (recordings only)."""
    gave: Mapping[str, str] | None = None
    """What the reply handed back, by reply field: the share ``code`` and the ids later
    paths name (recordings only)."""

    def pack(self) -> list[Any]:
        out = [self.t_ms, self.player, self.op, self.body,
               dict(self.params) if self.params else None]
        if self.gave is not None:
            return [*out, self.expect, dict(self.gave)]
        return out if self.expect is None else [*out, self.expect]

    @classmethod
    def unpack(cls, item: Any) -> Record:
        if not isinstance(item, list | tuple) or len(item) < 4:
            raise TraceFormatError(f"bad record: {item!r:.80}")
        params = item[4] if len(item) > 4 else None
        expect = item[5] if len(item) > 5 and isinstance(item[5], str) else None
        gave = _gave(item[6]) if len(item) > 6 else None
        return cls(int(item[0]), str(item[1]), str(item[2]), item[3], params or None, expect,
                   gave)


def _gave(value: Any) -> dict[str, str] | None:
    """``gave`` of a record: a map of string values (a bare string is an older
    recording's share code)."""
    if isinstance(value, str):
        return {"code": value}
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items() if isinstance(v, str)} or None
    return None


@dataclass
class Header:
    """What a trace says about itself."""

    created: int
    start_ms: int
    source: str = "generate"
    shape: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = VERSION

    def pack(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": self.version, "created": self.created,
                "start_ms": self.start_ms, "source": self.source, "shape": self.shape,
                "defaults": self.defaults, "meta": self.meta}

    @classmethod
    def unpack(cls, item: Any) -> Header:
        if not isinstance(item, dict) or item.get("format") != FORMAT:
            raise TraceFormatError("not a petbox trace (no petbox-trace header)")
        version = item.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise TraceFormatError(f"trace version {version!r}; this reader knows {VERSION}")
        return cls(created=int(item.get("created", 0)), start_ms=int(item.get("start_ms", 0)),
                   source=str(item.get("source", "")), shape=dict(item.get("shape") or {}),
                   defaults=dict(item.get("defaults") or {}), meta=dict(item.get("meta") or {}),
                   version=version)

    @classmethod
    def new(cls, **kwargs: Any) -> Header:
        now = time.time()
        return cls(created=int(now), start_ms=kwargs.pop("start_ms", int(now * 1000)), **kwargs)


# -- writing ---------------------------------------------------------------------------


class StreamWriter:
    """Writes one trace to an open binary stream: the header, then records."""

    def __init__(self, stream: IO[bytes], header: Header) -> None:
        self.stream = stream
        self.packer = msgpack.Packer(use_bin_type=True)
        self.bytes_written = 0
        self.records = 0
        self._put(header.pack())

    def _put(self, obj: Any) -> int:
        data = self.packer.pack(obj)
        self.stream.write(data)
        self.bytes_written += len(data)
        return len(data)

    def write(self, record: Record) -> int:
        """Append ``record``; returns its size in bytes."""
        self.records += 1
        return self._put(record.pack())

    def encoded_size(self, record: Record) -> int:
        return len(self.packer.pack(record.pack()))


def write_trace(path: Path | str, header: Header, records: Iterable[Record]) -> int:
    """Write a whole trace file (streaming); returns the number of records."""
    with open(path, "wb") as fh:
        writer = StreamWriter(fh, header)
        for record in records:
            writer.write(record)
        return writer.records


# -- reading ---------------------------------------------------------------------------


def _unpacker(stream: IO[bytes]) -> msgpack.Unpacker:
    return msgpack.Unpacker(stream, raw=False, read_size=1 << 16, strict_map_key=False)


def read_header(path: Path | str) -> Header:
    with open(path, "rb") as fh:
        try:
            return Header.unpack(next(iter(_unpacker(fh))))
        except (StopIteration, ValueError, TypeError, msgpack.UnpackException) as exc:
            if isinstance(exc, TraceFormatError):  # say which of several files
                raise TraceFormatError(f"{path}: {exc}") from exc
            raise TraceFormatError(f"{path}: not a petbox trace ({exc or 'empty'})") from exc


def iter_records(path: Path | str,
                 on_incomplete: Callable[[str], None] | None = None) -> Iterator[Record]:
    """Stream the records of one trace file (the header is checked, then skipped).

    Bytes that are not records raise :class:`TraceFormatError` naming the file and
    how many records came before them. A file that ends inside a record (a recording
    still being written, or its server killed) yields its complete records and tells
    ``on_incomplete`` what was left out: that is not silent, and not a refusal either.
    """
    with open(path, "rb") as fh:
        unpacker = _unpacker(fh)
        try:
            Header.unpack(next(unpacker))
        except StopIteration as exc:
            raise TraceFormatError(f"{path}: empty file") from exc
        n, end = 0, unpacker.tell()
        while True:
            try:
                item = next(unpacker)
                end = unpacker.tell()  # after a partial object tell() has moved on too
            except StopIteration:
                break
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                why = str(exc) or type(exc).__name__
                raise TraceFormatError(f"{path}: corrupt after record {n:,} ({why})") from exc
            try:
                record = Record.unpack(item)
            except (ValueError, TypeError) as exc:
                raise TraceFormatError(f"{path}: record {n + 1:,} is not a trace record "
                                       f"({exc})") from exc
            n += 1
            yield record
        left = os.fstat(fh.fileno()).st_size - end
        if left > 0 and on_incomplete is not None:
            on_incomplete(f"{path}: ends inside a record ({left:,} bytes after record {n:,}, "
                          "cut short): only the complete records are read")


def read_trace(paths: Iterable[Path | str],
               on_incomplete: Callable[[str], None] | None = None,
               ) -> tuple[Header, Iterator[Record]]:
    """One time line from several files (e.g. rotated recordings), in time order.

    Offsets are rebased onto the earliest file's ``start_ms``; the returned header
    is that file's. Each file is streamed, so memory does not grow with the trace.
    ``on_incomplete`` hears of a file that ends inside a record (:func:`iter_records`).
    """
    import heapq

    files = sorted(Path(p) for p in paths)
    if not files:
        raise TraceFormatError("no trace files")
    headers = [read_header(p) for p in files]
    base = min(h.start_ms for h in headers)
    first = min(headers, key=lambda h: h.start_ms)

    def shifted(path: Path, shift: int) -> Iterator[Record]:
        for r in iter_records(path, on_incomplete):
            yield r if not shift else Record(r.t_ms + shift, r.player, r.op, r.body, r.params,
                                             r.expect, r.gave)

    streams = [shifted(p, h.start_ms - base) for p, h in zip(files, headers, strict=True)]
    if len(streams) == 1:
        return first, streams[0]
    return first, heapq.merge(*streams, key=lambda r: r.t_ms)


# -- recording -------------------------------------------------------------------------


def strip_credentials(body: Any) -> Any:
    """``body`` without any value under a credential-like key (at any depth)."""
    if isinstance(body, dict):
        return {k: strip_credentials(v) for k, v in body.items()
                if not (isinstance(k, str) and k.lower() in SENSITIVE_KEYS)}
    if isinstance(body, list):
        return [strip_credentials(v) for v in body]
    return body


def sampled(player: str, rate: float, salt: str = "") -> bool:
    """Whether ``player`` is in the sample: whole players, so sessions stay whole."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(f"{salt}:{player}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


class TraceWriter:
    """Rotating, size-bounded trace files in ``directory`` (what a recorder calls).

    Each file holds at most ``max_bytes`` and starts with its own header (its own
    ``start_ms``), so every file is a valid trace and :func:`read_trace` rejoins
    them. At most ``max_files`` files are kept: the oldest is deleted on rotation,
    bounding the disk used at ``max_bytes * max_files``. Bodies are stripped of
    credentials; players are optionally pseudonymised with ``player_salt``.
    """

    def __init__(self, directory: Path | str, *, prefix: str = "trace",
                 max_bytes: int = 64 << 20, max_files: int = 8, sample: float = 1.0,
                 player_salt: str | None = None, meta: Mapping[str, Any] | None = None,
                 clock: Any = time.time, flush_every_s: float | None = None) -> None:
        if max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1 KiB")
        if max_files < 1:
            raise ValueError("max_files must be at least 1")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix, self.max_bytes, self.max_files = prefix, max_bytes, max_files
        self.sample, self.player_salt = sample, player_salt
        self.meta = dict(meta or {})
        self.clock = clock
        self.dropped = 0
        self.written = 0
        self._seq = self._last_seq()
        self._fh: IO[bytes] | None = None
        self._writer: StreamWriter | None = None
        self._start_ms = 0
        self.flush_every_s = flush_every_s
        """Flush to the OS at least this often (None: when the file buffer fills)."""
        self._flushed = 0.0

    def _last_seq(self) -> int:
        seqs = [int(p.stem.rsplit("-", 1)[1]) for p in self.files() if p.stem[-6:].isdigit()]
        return max(seqs, default=0)

    def files(self) -> list[Path]:
        """The kept files, oldest first."""
        return sorted(self.directory.glob(f"{self.prefix}-[0-9][0-9][0-9][0-9][0-9][0-9]"
                                          f"{SUFFIX}"))

    def _open(self, now_ms: int) -> StreamWriter:
        self._seq += 1
        path = self.directory / f"{self.prefix}-{self._seq:06d}{SUFFIX}"
        self._fh = open(path, "wb")  # noqa: SIM115 - kept open across calls, closed in _close
        self._start_ms = now_ms
        header = Header(created=now_ms // 1000, start_ms=now_ms, source="record",
                        meta={**self.meta, "part": self._seq})
        self._writer = StreamWriter(self._fh, header)
        self._prune()
        return self._writer

    def _prune(self) -> None:
        files = self.files()
        for old in files[: max(0, len(files) - self.max_files)]:
            old.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh, self._writer = None, None

    def record(self, player: str, op: str, body: Any = None,
               params: Mapping[str, str] | None = None, at: float | None = None,
               expect: str | None = None, gave: Mapping[str, str] | None = None) -> bool:
        """Add one request (if its player is sampled); returns whether it was written."""
        if not sampled(player, self.sample):
            return False
        now_ms = int((self.clock() if at is None else at) * 1000)
        if self.player_salt is not None:
            player = hashlib.blake2b(f"{self.player_salt}:{player}".encode(),
                                     digest_size=10).hexdigest()
        writer = self._writer or self._open(now_ms)
        rec = Record(max(0, now_ms - self._start_ms), player, op, strip_credentials(body),
                     {k: v for k, v in (params or {}).items()} or None, expect, gave)
        size = writer.encoded_size(rec)
        if writer.bytes_written + size > self.max_bytes and writer.records > 0:
            self._close()
            writer = self._open(now_ms)
            rec = Record(0, rec.player, rec.op, rec.body, rec.params, expect, gave)
            size = writer.encoded_size(rec)
        if writer.bytes_written + size > self.max_bytes:
            self.dropped += 1  # larger than a whole file may be: never written
            return False
        writer.write(rec)
        self.written += 1
        if self.flush_every_s is not None and now_ms / 1000 - self._flushed >= self.flush_every_s:
            self.flush()
            self._flushed = now_ms / 1000
        return True

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        self._close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_size(path: Path | str) -> int:
    return os.stat(path).st_size
