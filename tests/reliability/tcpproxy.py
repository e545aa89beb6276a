"""A TCP proxy the test controls: put it in front of PostgreSQL, then ``cut()`` it
(every connection reset, new ones refused), ``hang()`` it (connections stay open but
nothing passes either way, new ones are accepted and never answered: a stalled
network or server), ``lose_commit_answer()`` (the next COMMIT reaches the server, its
answer never reaches the client; with ``reset=True`` the connection is reset instead
of the answer), and ``restore()`` it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

UNTYPED_REQUESTS = {80877103, 80877104}
"""SSLRequest and GSSENCRequest: startup packets after which another untyped one comes."""


class Frontend:
    """Splits what a PostgreSQL client sends into its messages, to see a COMMIT go by.

    The first packets have no type byte (an SSL or GSS request, then the startup
    message); every later one is a type byte, a 4-byte length and its body. Plain-text
    connections only: a server that accepts the SSL request hides the messages (test
    servers run without TLS)."""

    def __init__(self) -> None:
        self.buf = b""
        self.started = False

    def feed(self, data: bytes) -> bool:
        """Take the next bytes the client sent; whether they end a message that commits."""
        self.buf += data
        at, commit = 0, False
        while True:
            head = 5 if self.started else 4
            if len(self.buf) - at < head:
                break
            end = at + head - 4 + int.from_bytes(self.buf[at + head - 4:at + head], "big")
            if len(self.buf) < end:
                break
            kind, body = self.buf[at:at + 1], self.buf[at + head:end]
            at = end
            if not self.started:
                self.started = int.from_bytes(body[:4], "big") not in UNTYPED_REQUESTS
            elif kind == b"Q":  # a simple query: its text
                commit = commit or _commits(body)
            elif kind == b"P":  # an extended query's Parse: its name, then its text
                commit = commit or _commits(body.split(b"\0", 1)[-1])
        self.buf = self.buf[at:]
        return commit


def _commits(sql: bytes) -> bool:
    return sql.lstrip().upper().startswith(b"COMMIT")


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.up = True
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._lose_next_commit = False
        self._reset_on_answer = False
        self.answers_lost = 0
        """How many COMMITs passed on whose answers were lost (``lose_commit_answer``)."""

    async def start(self) -> TcpProxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        self._writers.add(writer)
        await self._flowing.wait()  # hung: accepted, never answered
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        frontend = Frontend()
        deaf = False  # this connection's COMMIT went through: nothing comes back from now
        reset = False  # ... and its answer resets the connection instead

        def to_server(data: bytes) -> bytes:
            nonlocal deaf, reset
            if frontend.feed(data) and self._lose_next_commit:
                self._lose_next_commit, deaf, reset = False, True, self._reset_on_answer
                self.answers_lost += 1
            return data

        def to_client(data: bytes) -> bytes:
            if deaf and reset:  # the server answered (committed): the client sees a reset
                writer.transport.abort()
                up_writer.transport.abort()
            return b"" if deaf else data

        await asyncio.gather(self._pipe(reader, up_writer, to_server),
                             self._pipe(up_reader, writer, to_client))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    passed: Callable[[bytes], bytes]) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()  # hung: bytes wait here, as in a stalled network
                if data := passed(data):
                    writer.write(data)
                    await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones."""
        self.up = False
        self._flowing.set()  # let hung pipes see the cut and end
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def hang(self) -> None:
        """Keep every connection open but pass nothing; accept new ones, never answer."""
        self.up = True
        self._flowing.clear()

    def lose_commit_answer(self, reset: bool = False) -> None:
        """Pass the next COMMIT a client sends on to the server, then lose every byte the
        server sends back on that connection: the transaction commits and its client
        never hears so, as when a network fails right after the COMMIT went out. Other
        connections pass as before. Once; ``answers_lost`` counts it when it happens.
        ``reset``: when the server's answer comes, the connection is reset (both sides)
        instead of left silent, so the client learns at once that it was cut, not when
        its bound runs out."""
        self._lose_next_commit, self._reset_on_answer = True, reset

    def restore(self) -> None:
        self.up = True
        self._flowing.set()
        self._lose_next_commit = self._reset_on_answer = False

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
