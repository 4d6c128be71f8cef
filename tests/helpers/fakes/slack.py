"""A small fake of Slack's Web API, response_url endpoints and Socket Mode, on 127.0.0.1.

Point the real `AsyncWebClient(base_url=slack.api_url)` at it; every call is recorded in
`slack.calls` and can be awaited with `slack.wait_for(...)`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import WSMsgType, web

JSON_STRING_ARGS = ("blocks", "attachments", "metadata", "files")
FIRST_TS = 1764300000_000100  # microseconds: "1764300000.000100"

Answer = dict[str, Any]
Handler = Callable[["Call"], Answer]


@dataclass(frozen=True)
class Call:
    """One request the fake received. `args` merges query, form and JSON body."""

    method: str
    args: dict[str, Any]
    token: str | None
    time: float  # time.monotonic()
    status: int = 200
    raw: bytes = b""


@dataclass
class Fault:
    status: int
    retry_after: int
    error: str | None
    times: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeFile:
    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


@dataclass
class _Socket:
    connections: list[web.WebSocketResponse] = field(default_factory=list)
    acks: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)


class FakeSlack:
    """Fake Slack server: `async with FakeSlack() as slack: ...`.

    Close Socket Mode handlers before leaving the block: a connected client that sees the
    fake go away reconnects forever (to a closed port).
    """

    def __init__(self) -> None:
        self.team_id = "T0LAB"
        self.team_domain = "lab"
        self.bot_user_id = "U0BOT"
        self.bot_id = "B0BOT"
        self.app_id = "A0LAB"
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}  # extra fields merged into users.info
        self.refuse_sockets = False  # True: the Socket Mode link answers 503 (Slack is down)
        # The bot token's scopes, sent as x-oauth-scopes on every Web API answer (as Slack
        # does); the manifest's by default.
        self.scopes: list[str] = ["commands", "chat:write", "files:write", "users:read",
                                  "usergroups:read"]  # fmt: skip
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.files: dict[str, FakeFile] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._changed = asyncio.Event()
        self._next_ts = FIRST_TS
        self._socket = _Socket()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroup_users,
            "conversations.info": self._conversations_info,
            "reactions.add": lambda call: {"ok": True},
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # ---- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{name}", self._response_url)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._socket.connections):
            await ws.close(code=1001, message=b"fake slack shutting down")
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """For AsyncWebClient(base_url=...): must end with "/", methods are url-joined."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base_url}/response/{name}"

    # ---- reading what happened -------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def responses(self) -> list[Call]:
        """Posts to any response_url; method is "response_url:<name>"."""
        return [c for c in self.calls if c.method.startswith("response_url:")]

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """Current state of the messages in a channel (threads included), oldest first."""
        found = [m for (ch, _), m in self.messages.items() if ch == channel]
        return sorted(found, key=lambda m: m["ts"])

    def seed_message(self, channel: str, text: str, blocks: list[Any] | None = None) -> str:
        """Put a bot message into the fake's state (as if posted earlier); returns its ts."""
        ts = self._new_ts()
        self.messages[(channel, ts)] = self._message(channel, ts, {"text": text, "blocks": blocks})
        return ts

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5,
        predicate: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Wait until at least `count` calls to `method` (matching `predicate`) were recorded."""

        def matching() -> list[Call]:
            return [c for c in self.calls_to(method) if predicate is None or predicate(c)]

        try:
            async with asyncio.timeout(timeout):
                while len(found := matching()) < count:
                    await self._changed.wait()
        except TimeoutError:
            seen = [c.method for c in self.calls]
            msg = f"waited {timeout}s for {count} x {method}, got {len(matching())}; saw {seen}"
            raise TimeoutError(msg) from None
        return found

    # ---- fault injection -------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int = 1,
        times: int = 1,
        error: str | None = None,
        **extra: Any,
    ) -> None:
        """Make the next `times` calls to `method` fail.

        429 answers with Retry-After and error "ratelimited"; 5xx with "internal_error";
        status=200 with `error` gives Slack's usual `{"ok": false, "error": ...}`.
        `method` can also be "upload" or "response_url:<name>". Keyword arguments are
        added to the answer (``needed="users:read"`` with ``error="missing_scope"``).
        """
        fault = Fault(status, retry_after, error, times, extra)
        self._faults.setdefault(method, []).append(fault)

    def _take_fault(self, method: str) -> Fault | None:
        faults = self._faults.get(method)
        if not faults:
            return None
        fault = faults[0]
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        return fault

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        default = "ratelimited" if fault.status == 429 else "internal_error"
        headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
        body = {"ok": False, "error": fault.error or default, **fault.extra}
        return web.json_response(body, status=fault.status, headers=headers)

    # ---- HTTP plumbing ---------------------------------------------------------------

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._changed.set()
        self._changed = asyncio.Event()

    async def _respond(
        self,
        request: web.Request,
        method: str,
        answer: Callable[[Call], web.Response],
        **extra: str,
    ) -> web.Response:
        call = await _read_call(request, method, dict(extra))
        fault = self._take_fault(method)
        status = fault.status if fault else 200
        self._record(Call(call.method, call.args, call.token, call.time, status, call.raw))
        if fault is not None:
            return self._fault_response(fault)
        return answer(call)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        return await self._respond(request, method, self._answer_api)

    def _answer_api(self, call: Call) -> web.Response:
        handler = self._handlers.get(call.method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        if call.token is None:
            return web.json_response({"ok": False, "error": "not_authed"})
        wants_app_token = call.method == "apps.connections.open"
        if call.method != "auth.test" and call.token.startswith("xapp-") != wants_app_token:
            return web.json_response({"ok": False, "error": "not_allowed_token_type"})
        headers = (
            {} if call.token.startswith("xapp-") else {"x-oauth-scopes": ",".join(self.scopes)}
        )
        return web.json_response(handler(call), headers=headers)

    async def _response_url(self, request: web.Request) -> web.Response:
        method = f"response_url:{request.match_info['name']}"
        return await self._respond(request, method, lambda _: web.json_response({"ok": True}))

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        return await self._respond(request, "upload", self._store_upload, file_id=file_id)

    def _store_upload(self, call: Call) -> web.Response:
        file = self.files.get(call.args["file_id"])
        if file is None:
            return web.Response(status=404, text="file not found")
        file.content = call.raw
        return web.Response(text=f"OK - {len(call.raw)}")

    # ---- Web API methods -------------------------------------------------------------

    def _new_ts(self) -> str:
        ts, self._next_ts = self._next_ts, self._next_ts + 100
        return f"{ts // 1_000_000}.{ts % 1_000_000:06d}"

    def _message(self, channel: str, ts: str, args: dict[str, Any]) -> dict[str, Any]:
        message = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id}
        message |= {"team": self.team_id, "channel": channel, "ts": ts}
        keep = ("text", "blocks", "attachments", "thread_ts", "metadata")
        return message | {k: args[k] for k in keep if args.get(k) is not None}

    def _auth_test(self, call: Call) -> Answer:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Lab",
            "user": "mailqbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _connections_open(self, call: Call) -> Answer:
        return {"ok": True, "url": f"ws://{self.base_url.removeprefix('http://')}/link"}

    @staticmethod
    def dm_channel(user_id: str) -> str:
        """The channel of the app's direct messages with a user (Slack answers a D id)."""
        return "D" + user_id[1:]

    def _post_message(self, call: Call) -> Answer:
        channel = call.args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel[0] in "UW":  # a user ID posts in the app's DM with that user
            channel = self.dm_channel(channel)
        if not any(call.args.get(k) for k in ("text", "blocks", "attachments", "markdown_text")):
            return {"ok": False, "error": "no_text"}
        ts = self._new_ts()
        message = self._message(channel, ts, call.args)
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update(self, call: Call) -> Answer:
        key = (call.args.get("channel", ""), call.args.get("ts", ""))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        message = self.messages[key]
        for name in ("text", "blocks", "attachments", "metadata"):
            if name in call.args:
                message[name] = call.args[name]
        return {"ok": True, "channel": key[0], "ts": key[1], "text": message.get("text", "")}

    def _delete(self, call: Call) -> Answer:
        key = (call.args.get("channel", ""), call.args.get("ts", ""))
        if self.messages.pop(key, None) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _post_ephemeral(self, call: Call) -> Answer:
        if not call.args.get("channel") or not call.args.get("user"):
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "message_ts": self._new_ts()}

    def _users_info(self, call: Call) -> Answer:
        user_id = call.args.get("user", "")
        name = user_id.lower()
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": name,
            "deleted": False,
            "is_bot": user_id == self.bot_user_id,
            "tz": "UTC",
            "profile": {"display_name": name, "real_name": name},
        }
        return {"ok": True, "user": user | self.users.get(user_id, {})}

    def _usergroup_users(self, call: Call) -> Answer:
        group = call.args.get("usergroup", "")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _conversations_info(self, call: Call) -> Answer:
        channel = call.args.get("channel", "")
        info = {"id": channel, "name": channel.lower(), "is_channel": channel.startswith("C")}
        info |= {"is_private": channel.startswith("G"), "is_im": channel.startswith("D")}
        return {"ok": True, "channel": info | {"is_member": True}}

    def _get_upload_url(self, call: Call) -> Answer:
        file_id = f"F{len(self.files) + 1:07d}"
        filename, length = call.args.get("filename", ""), int(call.args.get("length", 0))
        self.files[file_id] = FakeFile(file_id, filename, length)
        return {
            "ok": True,
            "upload_url": f"{self.base_url}/upload/v1/{file_id}",
            "file_id": file_id,
        }

    def _complete_upload(self, call: Call) -> Answer:
        shared = []
        for item in call.args.get("files", []):
            file = self.files.get(item.get("id", ""))
            if file is None or file.content is None:
                return {"ok": False, "error": "file_not_found"}
            file.title = item.get("title") or file.filename
            file.channel = call.args.get("channel_id")
            file.thread_ts = call.args.get("thread_ts")
            file.initial_comment = call.args.get("initial_comment")
            shared.append(self._file_info(file))
        return {"ok": True, "files": shared}

    def _file_info(self, file: FakeFile) -> dict[str, Any]:
        return {
            "id": file.id,
            "name": file.filename,
            "title": file.title,
            "size": len(file.content or b""),
            "mimetype": "text/plain",
            "url_private": f"{self.base_url}/files/{file.id}",
            "channels": [file.channel] if file.channel else [],
        }

    # ---- Socket Mode -----------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_sockets:
            self._record(Call("link", {}, None, time.monotonic(), 503))
            return web.Response(status=503, text="socket mode is down")
        ws = web.WebSocketResponse()  # autoping: answers the SDK's pings
        await ws.prepare(request)
        self._socket.connections.append(ws)
        await ws.send_json(self._hello())
        self._socket.connected.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_socket_message(msg.json())
        finally:
            self._socket.connections.remove(ws)
        return ws

    def _hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": len(self._socket.connections),
            "debug_info": {"host": "applink-fake", "build_number": 1},
            "connection_info": {"app_id": self.app_id},
        }

    def _on_socket_message(self, message: dict[str, Any]) -> None:
        future = self._socket.acks.get(message.get("envelope_id", ""))
        if future is not None and not future.done():
            future.set_result(message)

    async def _current_socket(self, timeout: float) -> web.WebSocketResponse:
        async with asyncio.timeout(timeout):
            while not self._socket.connections:
                self._socket.connected.clear()
                await self._socket.connected.wait()
        return self._socket.connections[-1]

    async def socket_send(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        timeout: float = 5,
    ) -> str:
        """Send an envelope ("slash_commands", "interactive", "events_api") like Slack does."""
        ws = await self._current_socket(timeout)
        envelope_id = str(uuid.uuid4())
        if accepts_response_payload is None:
            accepts_response_payload = _accepts_response_payload(envelope_type, payload)
        envelope: dict[str, Any] = {"envelope_id": envelope_id, "type": envelope_type}
        envelope |= {"payload": payload, "accepts_response_payload": accepts_response_payload}
        if envelope_type == "events_api":
            envelope |= {"retry_attempt": 0, "retry_reason": ""}
        self._socket.acks[envelope_id] = asyncio.get_running_loop().create_future()
        await ws.send_json(envelope)
        return envelope_id

    async def socket_ack(self, envelope_id: str, timeout: float = 3) -> dict[str, Any] | None:
        """Wait for the client's `{"envelope_id": ...}` ack; return its payload, if any.

        Slack gives up after 3 seconds, so that is the default timeout.
        """
        async with asyncio.timeout(timeout):
            ack = await self._socket.acks[envelope_id]
        payload: dict[str, Any] | None = ack.get("payload")
        return payload

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does every few hours."""
        ws = await self._current_socket(timeout=5)
        await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {}})


def _accepts_response_payload(envelope_type: str, payload: dict[str, Any]) -> bool:
    if envelope_type == "slash_commands":
        return True
    return payload.get("type") in ("view_submission", "block_suggestion")


async def _read_call(request: web.Request, method: str, extra: dict[str, str]) -> Call:
    raw = await request.read()
    args: dict[str, Any] = dict(request.query) | extra
    if request.content_type == "application/json" and raw:
        args |= json.loads(raw)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        args |= dict(await request.post())
    for name in JSON_STRING_ARGS:
        if isinstance(args.get(name), str):
            args[name] = _maybe_json(args[name])
    token = _bearer(request.headers.get("Authorization")) or args.pop("token", None)
    return Call(method, args, token, time.monotonic(), raw=raw)


def _bearer(header: str | None) -> str | None:
    if header is None or not header.startswith("Bearer "):
        return None
    return header.removeprefix("Bearer ").strip() or None


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


__all__ = ["Call", "FakeFile", "FakeSlack", "Fault"]
