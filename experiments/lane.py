"""One pipelined connection for the store's batched script calls, on a single Redis server.

The store sends its hot-path script calls in batches (:mod:`experiments.batching`): each batch
is written in one go and its replies come back in order. redis-py's pipeline spends about
45 µs of Python per call on things such a batch does not need: a pooled connection checked out
and back, a command stack, a retry wrapper, a timeout context around every reply. A
:class:`Lane` is one connection (TCP or unix socket) whose replies hiredis parses as they arrive
and hands, in order, to the batch waiting for them: a few µs per call. Batches from many
requests share the connection, each written whole; Redis answers them in the order they were
written.

The rules are those of the client :func:`experiments.connection.connect` makes:

- connecting (and authenticating) is bounded by the timeout, and so is each batch's wait for
  its replies; a batch not answered in time fails with redis-py's ``TimeoutError`` and the
  connection is closed, failing the batches written after it (their replies would come after
  the missing ones) with ``ConnectionError``;
- nothing is ever sent twice: a batch that failed may have run;
- a lost connection fails the batches waiting on it; the next batch connects again.

Error replies are redis-py's exception types (``NoScriptError`` for NOSCRIPT and so on), in
place in the batch's list, as a pipeline run with ``raise_on_error=False`` gives them. TLS
(``rediss://``) is left to redis-py's own connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis._parsers import BaseParser
from redis.asyncio.connection import ConnectionPool, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import AuthenticationError, InvalidResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["IDLE_CHECK_SECONDS", "Command", "Lane"]

Command = Sequence[str | int]


def _pack(command: Command) -> bytes:
    # hiredis's stub types the argument as a 1-tuple; any tuple of str, int or bytes is taken
    return cast(bytes, hiredis.pack_command(cast(Any, tuple(command))))


IDLE_CHECK_SECONDS = 30.0
"""A connection without a reply for this long is checked with a PING before its next batch
(the interval of redis-py's health check on the store's pool)."""


class Lane:
    """A pipelined connection to one Redis server; :meth:`run` sends a batch of commands."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        encoding: str | None = "utf-8",
        encoding_errors: str = "strict",
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.host, self.port, self.path = host, port, path
        self.username, self.password, self.db = username, password, db
        self.encoding, self.encoding_errors = encoding, encoding_errors
        self.address = path if path is not None else f"{host}:{port}"
        self._protocol: _Protocol | None = None
        self._opening: asyncio.Lock | None = None  # one connect at a time, per event loop
        self._opening_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def of_pool(cls, pool: ConnectionPool, timeout_seconds: float) -> Lane | None:
        """A lane to the server ``pool`` connects to, with its credentials; None for TLS."""
        kind = pool.connection_class
        if issubclass(kind, SSLConnection):
            return None
        options = pool.connection_kwargs
        place: dict[str, Any] = (
            {"path": options["path"]}
            if issubclass(kind, UnixDomainSocketConnection)
            else {"host": options.get("host", "localhost"), "port": int(options.get("port", 6379))}
        )
        return cls(
            timeout_seconds=timeout_seconds,
            username=options.get("username"),
            password=options.get("password"),
            db=int(options.get("db", 0) or 0),
            encoding=options.get("encoding", "utf-8") if options.get("decode_responses") else None,
            encoding_errors=options.get("encoding_errors", "strict"),
            **place,
        )

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to ``commands``, in order; an error reply is its exception, in place.

        Raises ``ConnectionError`` or ``TimeoutError`` (redis-py's) when the batch could not be
        sent or was not answered in time: then it may or may not have run.
        """
        protocol = self._protocol
        if protocol is None or not protocol.usable():
            protocol = await self._open()
        elif protocol.loop.time() - protocol.last_reply > IDLE_CHECK_SECONDS:
            protocol = await self._checked(protocol)
        data = b"".join([_pack(command) for command in commands])
        return await protocol.send(data, len(commands), self.timeout_seconds)

    def send_now(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]] | None:
        """:meth:`run` on a connection that is open and answered lately: the batch is written
        before this returns, so Redis can start on it while the caller goes on, and the
        future holds its replies. None when the connection must first be opened or checked:
        then use :meth:`run`."""
        protocol = self._protocol
        if (
            protocol is None
            or not protocol.usable()
            or protocol.loop.time() - protocol.last_reply > IDLE_CHECK_SECONDS
        ):
            return None
        data = b"".join([_pack(command) for command in commands])
        return protocol.send(data, len(commands), self.timeout_seconds)

    async def _checked(self, protocol: _Protocol) -> _Protocol:
        """``protocol`` if it still answers a PING, else a new connection.

        After a long quiet spell a connection may be gone without a word (a NAT or firewall
        forgetting it): a batch sent on it would wait out its whole timeout and fail. As
        redis-py's health check does, a PING goes first; only a connection that answers it is
        used, so no batch is sent on a dead one.
        """
        try:
            await protocol.send(_pack(("PING",)), 1, self.timeout_seconds)
        except (RedisConnectionError, RedisTimeoutError):
            protocol.close()
            return await self._open()
        return protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._opening is None or self._opening_loop is not loop:
            self._opening, self._opening_loop = asyncio.Lock(), loop
        async with self._opening:
            protocol = self._protocol
            if protocol is not None and protocol.usable():
                return protocol
            self._protocol = await self._connect(loop)
            return self._protocol

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        def make() -> _Protocol:
            return _Protocol(self.address, self.encoding, self.encoding_errors)

        try:
            async with asyncio.timeout(self.timeout_seconds):
                if self.path is not None:
                    _, protocol = await loop.create_unix_connection(make, self.path)
                else:
                    _, protocol = await loop.create_connection(make, self.host, self.port)
        except TimeoutError:
            raise RedisTimeoutError(f"Timeout connecting to {self.address}") from None
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to {self.address}: {exc}") from exc
        hello: list[Command] = []
        if self.password is not None:
            auth = [self.password] if self.username is None else [self.username, self.password]
            hello.append(("AUTH", *auth))
        if self.db:
            hello.append(("SELECT", self.db))
        if hello:
            data = b"".join(_pack(command) for command in hello)
            try:
                replies = await protocol.send(data, len(hello), self.timeout_seconds)
            except BaseException:
                protocol.close()
                raise
            for command, reply in zip(hello, replies, strict=True):
                if isinstance(reply, Exception):  # WRONGPASS is redis-py's AuthenticationError
                    protocol.close()
                    if command[0] == "AUTH" and not isinstance(reply, AuthenticationError):
                        raise AuthenticationError(str(reply))
                    raise reply
        return protocol

    async def aclose(self) -> None:
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None


class _Batch:
    __slots__ = ("count", "future", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int) -> None:
        self.future = future
        self.count = count
        self.replies: list[Any] = []


class _Protocol(asyncio.Protocol):
    """The connection: writes batches, parses replies and hands each batch its own."""

    def __init__(self, address: str, encoding: str | None, errors: str) -> None:
        self.address = address
        options: dict[str, Any] = {"encoding": encoding, "errors": errors} if encoding else {}
        self.reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error, **options
        )
        self.waiting: deque[_Batch] = deque()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.last_reply = self.loop.time()
        self.lost = False

    def usable(self) -> bool:
        return (
            not self.lost
            and self.transport is not None
            and not self.transport.is_closing()
            and self.loop is asyncio.get_running_loop()
        )

    def send(self, data: bytes, count: int, timeout_seconds: float) -> asyncio.Future[list[Any]]:
        if not self.usable():
            raise RedisConnectionError(f"Connection to {self.address} closed")
        assert self.transport is not None
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        self.waiting.append(_Batch(future, count))
        self.transport.write(data)
        timer = self.loop.call_later(timeout_seconds, self._expire, future)
        future.add_done_callback(lambda _: timer.cancel())
        return future

    def _expire(self, future: asyncio.Future[list[Any]]) -> None:
        if not future.done():
            future.set_exception(RedisTimeoutError(f"Timeout reading from {self.address}"))
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._fail(RedisConnectionError(f"Connection to {self.address} closed"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.last_reply = self.loop.time()
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except InvalidResponse as exc:
                self._fail(RedisConnectionError(f"Invalid reply from {self.address}: {exc}"))
                self.close()
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream cannot be trusted
                self.close()
                return
            batch = waiting[0]
            batch.replies.append(reply)
            if len(batch.replies) == batch.count:
                waiting.popleft()
                if not batch.future.done():
                    batch.future.set_result(batch.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc is not None else ""
        self._fail(RedisConnectionError(f"Connection to {self.address} lost{reason}"))

    def _fail(self, error: Exception) -> None:
        self.lost = True
        while self.waiting:
            future = self.waiting.popleft().future
            if not future.done():
                future.set_exception(error)
