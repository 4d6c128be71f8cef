"""The fake Slack works with the real slack_sdk clients and a real slack_bolt AsyncApp."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from helpers.fakes import (
    FakeSlack,
    block_actions_body,
    sign,
    slash_command_body,
    slash_command_payload,
)

BOT_TOKEN = "xoxb-fake"
APP_TOKEN = "xapp-fake"
SECRET = "fake-signing-secret"


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SLACK_"):
            monkeypatch.delenv(name)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "")


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)


async def test_auth_test_answers_like_slack(slack: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.auth_test()

    assert response["user_id"] == "U0BOT"
    assert response["bot_id"] == "B0BOT"
    assert response["team_id"] == "T0LAB"
    assert response["is_enterprise_install"] is False
    [call] = slack.calls_to("auth.test")
    assert call.token == BOT_TOKEN


async def test_update_replaces_posted_message(slack: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "working..."}}]
    posted = await client.chat_postMessage(channel="C0LAB", text="working...", blocks=blocks)
    done = [{"type": "section", "text": {"type": "mrkdwn", "text": "*3* in queue"}}]
    await client.chat_update(channel="C0LAB", ts=posted["ts"], text="3 in queue", blocks=done)

    assert posted["ts"] == "1764300000.000100"
    message = slack.messages[("C0LAB", posted["ts"])]
    assert message["text"] == "3 in queue"
    assert message["blocks"] == done
    assert [c.method for c in slack.calls] == ["chat.postMessage", "chat.update"]


async def test_timestamps_increase_and_errors_are_slack_like(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    first = await client.chat_postMessage(channel="C0LAB", text="a")
    second = await client.chat_postMessage(channel="C0LAB", text="b", thread_ts=first["ts"])

    assert float(second["ts"]) > float(first["ts"])
    assert [m["text"] for m in slack.messages_in("C0LAB")] == ["a", "b"]
    with pytest.raises(SlackApiError) as unknown:
        await client.api_call("mailq.nothing")
    assert unknown.value.response["error"] == "unknown_method"
    with pytest.raises(SlackApiError) as missing:
        await client.chat_update(channel="C0LAB", ts="1.2", text="x")
    assert missing.value.response["error"] == "message_not_found"
    assert len(slack.calls_to("mailq.nothing")) == 1


async def test_usergroups_and_users(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.usergroups = {"S0OPS": ["U1", "U2"]}

    members = await client.usergroups_users_list(usergroup="S0OPS")
    user = await client.users_info(user="U1")

    assert members["users"] == ["U1", "U2"]
    assert user["user"]["id"] == "U1"
    with pytest.raises(SlackApiError) as missing:
        await client.usergroups_users_list(usergroup="S0NONE")
    assert missing.value.response["error"] == "no_such_subteam"


async def test_files_upload_v2_round_trip(slack: FakeSlack, client: AsyncWebClient) -> None:
    content = "queue line 1\nqueue line 2\n" * 100

    response = await client.files_upload_v2(
        channel="C0LAB",
        thread_ts="1764300000.000100",
        content=content,
        filename="mailq.txt",
        title="mailq output",
        initial_comment="full output",
    )

    methods = [c.method for c in slack.calls]
    assert methods == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    file = slack.files[response["file"]["id"]]
    assert file.content == content.encode()
    assert file.filename == "mailq.txt"
    assert file.length == len(content.encode())
    assert (file.title, file.channel, file.thread_ts) == (
        "mailq output",
        "C0LAB",
        "1764300000.000100",
    )


async def test_rate_limit_is_retried_after_retry_after(slack: FakeSlack) -> None:
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.fail_next("chat.postMessage", status=429, retry_after=1)

    response = await client.chat_postMessage(channel="C0LAB", text="hello")

    assert response["ok"] is True
    first, second = slack.calls_to("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1


async def test_server_error_fails_then_retries(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", status=503)
    with pytest.raises(SlackApiError) as failed:
        await client.chat_postMessage(channel="C0LAB", text="hello")
    assert failed.value.response.status_code == 503

    retrying = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=slack.api_url,
        retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1)],
    )
    slack.fail_next("chat.postMessage", status=500)
    assert (await retrying.chat_postMessage(channel="C0LAB", text="hello"))["ok"] is True
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [503, 500, 200]


async def test_response_url_posts_are_recorded(slack: FakeSlack) -> None:
    webhook = AsyncWebhookClient(slack.response_url("cmd1"))

    response = await webhook.send(text="done", response_type="ephemeral")

    assert response.status_code == 200
    [call] = slack.responses
    assert call.method == "response_url:cmd1"
    assert call.args == {"text": "done", "response_type": "ephemeral"}


def signature_verifier_accepts(headers: dict[str, str], body: bytes) -> bool:
    return SignatureVerifier(SECRET).is_valid_request(body, headers)


def test_sign_matches_slack_sdk_verifier() -> None:
    body = slash_command_body("summary mx1")

    assert signature_verifier_accepts(sign(SECRET, body), body)
    assert not signature_verifier_accepts(sign(SECRET, body, int(time.time()) - 301), body)
    assert not signature_verifier_accepts(sign("other-secret", body), body)
    assert not signature_verifier_accepts(sign(SECRET, body), body + b"x")


def bolt_app(slack: FakeSlack) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url),
        signing_secret=SECRET,
    )

    @app.command("/mailq")
    async def mailq(ack: Callable[..., Awaitable[Any]], command: dict[str, Any], say: Any) -> None:
        await ack(f"on it: {command['text']}")
        await say(f"<@{command['user_id']}> asked for {command['text']}")

    @app.action("approve")
    async def approve(
        ack: Callable[..., Awaitable[Any]], body: dict[str, Any], client: Any
    ) -> None:
        await ack()
        container = body["container"]
        await client.chat_update(
            channel=container["channel_id"], ts=container["message_ts"], text="approved"
        )

    return app


async def test_socket_mode_slash_command_is_acked_and_answered(slack: FakeSlack) -> None:
    handler = AsyncSocketModeHandler(bolt_app(slack), APP_TOKEN)
    await handler.connect_async()
    try:
        payload = slash_command_payload("summary mx1", response_url=slack.response_url("c1"))
        envelope_id = await slack.socket_send("slash_commands", payload)

        assert await slack.socket_ack(envelope_id) == {"text": "on it: summary mx1"}
        [post] = await slack.wait_for("chat.postMessage")
    finally:
        await handler.close_async()

    assert post.args["text"] == "<@U0VIEWER> asked for summary mx1"
    assert post.token == BOT_TOKEN
    [connect] = slack.calls_to("apps.connections.open")
    assert connect.token == APP_TOKEN


async def test_socket_mode_reconnects_on_disconnect(slack: FakeSlack) -> None:
    handler = AsyncSocketModeHandler(bolt_app(slack), APP_TOKEN)
    await handler.connect_async()
    try:
        await slack.socket_disconnect()
        await slack.wait_for("apps.connections.open", count=2)
        envelope_id = await slack.socket_send("slash_commands", slash_command_payload("x"))
        assert await slack.socket_ack(envelope_id) == {"text": "on it: x"}
    finally:
        await handler.close_async()


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/slack/events"


async def test_signed_http_requests_reach_bolt(slack: FakeSlack) -> None:
    runner, url = await serve(bolt_app(slack).web_app(path="/slack/events"))
    try:
        async with aiohttp.ClientSession() as http:
            command = slash_command_body("summary mx1")
            async with http.post(url, data=command, headers=sign(SECRET, command)) as resp:
                assert resp.status == 200
                assert await resp.text() == "on it: summary mx1"
            [post] = await slack.wait_for("chat.postMessage")

            ts = slack.seed_message("C0LAB", "approve?")
            click = block_actions_body("approve", "q1", message_ts=ts)
            stale = sign(SECRET, click, int(time.time()) - 600)
            async with http.post(url, data=click, headers=stale) as resp:
                assert resp.status == 401
            async with http.post(url, data=click, headers=sign(SECRET, click)) as resp:
                assert resp.status == 200
            await slack.wait_for("chat.update")
    finally:
        await runner.cleanup()

    assert post.args["text"] == "<@U0VIEWER> asked for summary mx1"
    assert slack.messages[("C0LAB", ts)]["text"] == "approved"
