"""A TCP relay on loopback that a test can cut and restore: the database going away.

``async with Cuttable(("127.0.0.1", 5432)) as relay:`` listens on ``relay.port`` and relays
every connection to the target. ``relay.cut()`` closes every relayed connection and refuses
new ones (connections are reset at once, like a database that went away); ``relay.restore()``
accepts again. ``relay.hold()`` keeps the target's answers back, connections open (a slow
host); ``relay.asked_while_held`` is set once the client sends something meanwhile;
``relay.release()`` lets the answers through. Only loopback addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self


class Cuttable:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.is_cut = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.asked_while_held = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        self._drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        self.is_cut = True
        self._drop()

    def restore(self) -> None:
        self.is_cut = False

    def hold(self) -> None:
        self.asked_while_held.clear()
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def _drop(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, answers=False)),
            asyncio.ensure_future(self._pump(up_reader, writer, answers=True)),
        ]
        self._tasks.update(pumps)
        for pump in pumps:
            pump.add_done_callback(self._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, answers: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if answers:
                    await self._flowing.wait()
                elif not self._flowing.is_set():
                    self.asked_while_held.set()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()
