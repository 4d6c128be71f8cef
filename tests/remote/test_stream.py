"""Streaming large outputs: bounded memory, exit checks at the end, early exit, cut streams."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from bot.demo.ssh import Reply, static_handler
from bot.errors import CommandFailed, ConnectionLost
from bot.remote.command import RemoteCommand
from bot.remote.ssh import CHUNK_SIZE, PAUSE_BYTES, RemoteStream, SSHExecutor

POSTQUEUE = RemoteCommand(("/usr/sbin/postqueue", "-j"), remote_timeout=30)
BLOCK = b"x" * (64 * 1024)
TOTAL = 40 * 1024 * 1024


async def produce(total: int) -> AsyncIterator[bytes]:
    """Lazy stdout: the same 64 KiB block over and over, nothing accumulated."""
    for _ in range(total // len(BLOCK)):
        yield BLOCK


async def consume(
    executor: SSHExecutor, host, chunks: list[bytes], opened: list[RemoteStream]
) -> None:
    """Stream POSTQUEUE into ``chunks``; ``opened`` gets the stream (to read ``result``)."""
    async with executor.stream(host, POSTQUEUE) as out:
        opened.append(out)
        async for chunk in out:
            chunks.append(chunk)


async def test_stream_40mb_in_chunks_with_bounded_memory(make_server, host_for, executor):
    async def big(command_line: str, stdin: bytes) -> Reply:
        return Reply(0, produce(TOTAL))

    server = await make_server(big)
    host = host_for(server)
    received = largest = 0
    tracemalloc.start()
    try:
        async with executor.stream(host, POSTQUEUE) as out:
            async for chunk in out:
                received += len(chunk)
                largest = max(largest, len(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == TOTAL
    assert largest <= CHUNK_SIZE
    assert peak < 12 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    assert out.result is not None
    assert (out.result.exit_status, out.result.stdout_bytes) == (0, TOTAL)


async def test_failure_at_end_of_stream_raises_after_the_data(make_server, host_for, executor):
    server = await make_server(static_handler(75, b'{"queue_id": "A"}\n', b"postqueue: fatal\n"))
    chunks: list[bytes] = []
    opened: list[RemoteStream] = []
    with pytest.raises(CommandFailed) as caught:
        await consume(executor, host_for(server), chunks, opened)
    assert chunks == [b'{"queue_id": "A"}\n']
    assert caught.value.exit_status == 75
    result = opened[0].result
    assert result is not None
    assert (result.exit_status, result.stderr) == (75, "postqueue: fatal\n")


async def test_breaking_out_early_closes_the_channel(make_server, host_for, executor):
    stopped = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield BLOCK
        finally:
            stopped.set()

    async def handler(command_line: str, stdin: bytes) -> Reply:
        if "postqueue" in command_line:
            return Reply(0, endless())
        return Reply(0, b"still fine\n")

    server = await make_server(handler)
    host = host_for(server)
    async with executor.stream(host, POSTQUEUE) as out:
        async for _chunk in out:
            break
    assert out.result is None
    await asyncio.wait_for(stopped.wait(), 2)
    after = await executor.run(host, RemoteCommand(("/bin/echo",)))
    assert after.stdout == "still fine\n"
    assert server.connections_accepted == 1


@pytest.mark.parametrize("collect", ["stream", "run"])
async def test_connection_dropped_mid_stream_is_an_error(make_server, host_for, executor, collect):
    async def half(command_line: str, stdin: bytes) -> Reply:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield BLOCK
            server.disconnect_all()
            await asyncio.sleep(3600)
            yield BLOCK

        return Reply(0, chunks())

    server = await make_server(half)
    host = host_for(server)
    attempt = executor.run(host, POSTQUEUE) if collect == "run" else consume(executor, host, [], [])
    with pytest.raises(ConnectionLost, match="output is incomplete") as caught:
        await attempt
    assert isinstance(caught.value, CommandFailed)
    assert caught.value.exit_status == -1


async def test_a_slow_reader_holds_the_sender_back(make_server, host_for, executor):
    """Unread output above PAUSE_BYTES stops the channel reading (and the host, through the
    SSH window): a reader that pauses after its first chunk finds a bounded backlog."""
    total = 16 * 1024 * 1024

    async def big(command_line: str, stdin: bytes) -> Reply:
        return Reply(0, produce(total))

    server = await make_server(big)
    host = host_for(server)
    received = 0
    backlog: list[int] = []
    async with executor.stream(host, POSTQUEUE) as out:
        async for chunk in out:
            if not received:
                await asyncio.sleep(0.5)  # the host could send all 16 MiB meanwhile
                backlog.append(out._session.unread)
            received += len(chunk)
    assert received == total
    # what was queued before the pause took hold, plus at most one SSH window in flight
    assert PAUSE_BYTES <= backlog[0] <= PAUSE_BYTES + 2 * 1024 * 1024 + 64 * 1024
