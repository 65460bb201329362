"""EslConnection against FreeSWITCH's own bytes, replayed from the transcripts.

The replayer plays FreeSWITCH: it connects to the application's server, checks that
each command the application sends is the one the capture shows next, then sends
the captured FreeSWITCH bytes that followed it, unchanged except for the
Event-UUID -> Application-UUID mapping (the application picks its own UUIDs).
Quirks covered: the url-encoded connect reply without Content-Length, events
interleaved with replies, the linger notice before or after the hang-up events,
FreeSWITCH closing by itself after `linger 3`, an api reply sent only after a NOTIFY.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest

from payivr.esl.channel import CallerGone
from payivr.esl.connection import EslConnection
from payivr.esl.server import OutboundServer
from tests.esl import transcripts

UUID_HEADER = re.compile(rb"Event-UUID: ([0-9a-f-]{36})")


def _reframe(raw: bytes, old: bytes, new: bytes) -> bytes:
    """Rename a header inside one event block and fix its Content-Length."""
    if old not in raw:
        return raw
    head, _, body = raw.partition(b"\n\n")
    body = body.replace(old, new)
    head = re.sub(rb"Content-Length: \d+", f"Content-Length: {len(body)}".encode(), head)
    return head + b"\n\n" + body


async def replay(name: str, port: int, rename: tuple[bytes, bytes] | None = None) -> list[str]:
    """Play FreeSWITCH's side of a transcript; returns the mismatches (none expected)."""
    blocks = transcripts.parse(transcripts.TRANSCRIPTS / name)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    mapping: dict[bytes, bytes] = {}
    problems: list[str] = []
    buf = b""
    try:
        for direction, _, raw in blocks:
            if direction == "<<<":
                for old, new in mapping.items():
                    raw = raw.replace(old, new)
                if rename:
                    raw = _reframe(raw, *rename)
                writer.write(raw)
                await writer.drain()
                continue
            while b"\n\n" not in buf:
                data = await asyncio.wait_for(reader.read(65536), 10)
                if not data:
                    return [*problems, f"app closed before {raw[:30]!r}"]
                buf += data
            sent, buf = buf.split(b"\n\n", 1)
            if sent.split(b"\n")[0] != raw.split(b"\n")[0]:
                problems.append(f"expected {raw.split(chr(10).encode())[0]!r}, got {sent[:40]!r}")
            ours, theirs = UUID_HEADER.search(sent), UUID_HEADER.search(raw)
            if ours and theirs:
                mapping[theirs.group(1)] = ours.group(1)
        # FreeSWITCH closes after the disconnect notice.
    finally:
        writer.close()
    return problems


async def run_replay(
    name: str,
    script: Callable[[EslConnection], Awaitable[None]],
    *,
    events: tuple[str, ...],
    linger_s: int = 0,
    rename: tuple[bytes, bytes] | None = None,
) -> list[str]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handler(conn: EslConnection) -> None:
        try:
            await script(conn)
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)
            raise

    server = OutboundServer(handler, port=0, linger_s=linger_s, events=events)
    await server.start()
    try:
        problems = await asyncio.wait_for(replay(name, server.port, rename), 30)
        await asyncio.wait_for(done, 10)
        return problems
    finally:
        await server.stop(grace_s=1)


EXEC_HANGUP = ("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE")


def test_deflect_by_api_then_the_hang_up_sequence() -> None:
    async def script(conn: EslConnection) -> None:
        assert conn.channel_data["variable_sip_h_X-Pay-Merchant"] == "acme"
        assert (await conn.execute("answer")).response == "_none_"
        await conn.execute("set", "sip_h_X-Pay-Result=approved")
        await conn.execute("set", "sip_h_X-Pay-Auth-Code=123456")
        reply = await conn.api(f"uuid_deflect {conn.uuid} sip:queue@127.0.0.1:25093")
        assert reply == "+OK:SIP/2.0 200 OK\r\n\n"
        await asyncio.wait_for(conn.wait_hangup(), 5)
        assert conn.hangup_cause == "BLIND_TRANSFER"

    assert asyncio.run(run_replay("deflect_api.txt", script, events=EXEC_HANGUP)) == []


def test_recording_masked_around_the_collection() -> None:
    async def script(conn: EslConnection) -> None:
        await conn.execute("answer")
        await conn.execute("record_session", "/tmp/esltx_rec.wav")
        assert (await conn.execute("playback", "tone_stream://%(1000,0,440)")).response == (
            "FILE PLAYED"
        )
        await conn.execute("record_session_mask", "/tmp/esltx_rec.wav")
        result = await conn.execute(
            "play_and_get_digits",
            r"4 19 3 5000 # tone_stream://%(200,0,440) silence_stream://250 pan \d+ 3000",
        )
        assert len(result.secrets["variable_payivr_dtmf_pan"]) == 16
        assert "payivr_dtmf_pan" not in result.variables
        result.wipe()
        await conn.execute("record_session_unmask", "/tmp/esltx_rec.wav")
        await conn.execute("playback", "tone_stream://%(2000,0,880)")
        await conn.hangup()
        assert conn.hungup

    problems = asyncio.run(
        run_replay("record_mask.txt", script, events=EXEC_HANGUP,
                   rename=(b"variable_pan:", b"variable_payivr_dtmf_pan:"))
    )  # fmt: skip
    assert problems == []


def test_linger_notice_before_the_bridge_completes() -> None:
    events = ("CHANNEL_EXECUTE_COMPLETE", "DTMF", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE",
              "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE")  # fmt: skip

    async def script(conn: EslConnection) -> None:
        await conn.execute("answer")
        bridge = asyncio.ensure_future(conn.execute(
            "bridge", "{origination_uuid=59c98fd2-90a7-426c-b082-e5145dcc62fa}"
            "sofia/payivr/agent@127.0.0.1:25092"))  # fmt: skip
        await asyncio.sleep(0.05)
        await conn.api("uuid_drop_dtmf 59c98fd2-90a7-426c-b082-e5145dcc62fa on mask_digits 0")
        result = await bridge  # its EXECUTE_COMPLETE came after the linger notice
        assert result.application == "bridge" and result.hungup

    assert asyncio.run(run_replay("bridge_dtmf_drop.txt", script, events=events)) == []


def test_caller_hangs_up_mid_collection_and_freeswitch_closes_after_linger() -> None:
    events = ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "DTMF", "CHANNEL_HANGUP",
              "CHANNEL_HANGUP_COMPLETE")  # fmt: skip

    async def script(conn: EslConnection) -> None:
        await conn.execute("answer")
        result = await conn.execute(
            "play_and_get_digits",
            r"4 19 3 5000 # tone_stream://%(200,0,440) silence_stream://250 pan \d+ 3000",
        )
        assert result.hungup
        assert len(result.secrets["variable_payivr_dtmf_pan"]) == 4  # the partial "4111"
        result.wipe()
        with pytest.raises(CallerGone):
            await conn.execute("playback", "anything")

    problems = asyncio.run(
        run_replay("caller_hangup_during_collect.txt", script,
                   events=events, linger_s=3,
                   rename=(b"variable_pan:", b"variable_payivr_dtmf_pan:"))
    )  # fmt: skip
    assert problems == []
