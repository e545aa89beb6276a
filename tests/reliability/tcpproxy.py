"""A TCP proxy the test controls: put it in front of PostgreSQL, then ``cut()`` it
(every connection reset, new ones refused), ``hang()`` it (connections stay open but
nothing passes either way, new ones are accepted and never answered: a stalled
network or server), and ``restore()`` it."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.up = True
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()

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
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()  # hung: bytes wait here, as in a stalled network
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

    def restore(self) -> None:
        self.up = True
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
