"""The caller pcap generator (RFC 2833 digits with increasing timestamps), checked on
its own and as SIPp really plays it to a UDP sink. Needs no FreeSWITCH."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from payivr.stack.ports import free_port, free_udp_block
from payivr.stack.rtp_pcap import (
    EVENT_PT,
    PCMA_PT,
    Keying,
    decode_events,
    keyed_call,
    rtp_packets,
)

HERE = Path(__file__).parent
PAN = "4111111111111111"


def test_repeated_digits_get_distinct_timestamps_and_sequence_always_grows() -> None:
    packets = rtp_packets([Keying(0.2, PAN + "#")], 6.5)
    seqs = [p.seq for p in packets]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    events = [p for p in packets if p.payload_type == EVENT_PT]
    starts = sorted({p.timestamp for p in events})
    assert len(starts) == len(PAN) + 1  # one timestamp per key press, "1111" included
    assert all(b - a == 300 * 8 for a, b in itertools.pairwise(starts))
    # each event: marker on its first packet, end bit thrice at the end, durations grow
    first = [p for p in events if p.timestamp == starts[1]]
    assert first[0].marker and not any(p.marker for p in first[1:])
    assert [p.payload[1] & 0x80 for p in first].count(0x80) == 3
    durations = [int.from_bytes(p.payload[2:4], "big") for p in first]
    assert durations == sorted(durations) and durations[-1] == 800  # 100 ms at 8 kHz
    assert decode_events((p.payload_type, p.timestamp, p.payload) for p in packets) == PAN + "#"
    # audio pauses while a digit is sent, and resumes after it
    assert any(p.payload_type == PCMA_PT and p.time_s > 0.4 for p in packets)


def test_a_stock_style_stream_would_lose_the_repeated_digits() -> None:
    # What SIPp's stock dtmf_2833 pcaps do: one timestamp for every digit.
    packets = rtp_packets([Keying(0.2, "4111")], 2.0)
    same = [
        (p.payload_type, 0 if p.payload_type == EVENT_PT else p.timestamp, p.payload)
        for p in packets
    ]
    assert decode_events(same) == "4"  # the receiver's view; ours keeps all four


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs sipp (apt-get install sip-tester)")
@pytest.mark.timeout(30)
def test_sipp_plays_the_pcap_and_every_digit_arrives(tmp_path: Path) -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.5)
    sink_port = sink.getsockname()[1]
    received: list[tuple[int, int, bytes]] = []
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            try:
                data = sink.recv(2048)
            except OSError:
                continue
            received.append((data[1] & 0x7F, int.from_bytes(data[4:8], "big"), data[12:]))

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    pcap = keyed_call(
        tmp_path / "caller.pcap", [Keying(0.3, PAN + "#", tone_ms=60, every_ms=120)], tail_s=0.3
    )
    uac = (HERE / "sipp" / "uac-plays-pcap-then-bye.xml").read_text()
    uac = uac.replace("PCAP", str(pcap)).replace("PAUSE_MS", "2900")
    (tmp_path / "uac.xml").write_text(uac)
    uas = (HERE / "sipp" / "uas-rtp-sink.xml").read_text().replace("SINK_PORT", str(sink_port))
    (tmp_path / "uas.xml").write_text(uas)
    uas_port, uac_port = free_port(), free_port()
    common = ["-i", "127.0.0.1", "-t", "u1", "-nostdin", "-m", "1", "-trace_err", "-error_file"]
    server = subprocess.Popen(
        ["sipp", "-sf", "uas.xml", "-p", str(uas_port), *common, "uas.err"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = subprocess.run(
            [
                "sipp",
                f"127.0.0.1:{uas_port}",
                "-sf",
                "uac.xml",
                "-p",
                str(uac_port),
                "-mp",
                str(free_udp_block()),
                *common,
                "uac.err",
                "-timeout",
                "20s",
            ],
            cwd=tmp_path,
            capture_output=True,
            timeout=25,
            check=False,
        )
        assert client.returncode == 0, (tmp_path / "uac.err").read_text(errors="replace")
    finally:
        server.kill()
        server.wait(5)
        stop.set()
        thread.join(2)
        sink.close()
    assert decode_events(received) == PAN + "#"
    assert sum(1 for pt, _, _ in received if pt == PCMA_PT) > 50  # the audio flowed too


def test_the_demo_keys_each_field_after_its_prompt_without_overlap(tmp_path: Path) -> None:
    import wave
    from datetime import date

    from payivr.core.config import load_config
    from payivr.stack.demo_freeswitch import caller_keying
    from tests.conftest import EXAMPLE_CONFIG

    for prompt_id, seconds in (("greeting", 6.0), ("amount-intro", 1.5)):
        (tmp_path / "en").mkdir(exist_ok=True)
        with wave.open(str(tmp_path / "en" / f"{prompt_id}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\0\0" * int(8000 * seconds))
    merchant = load_config(EXAMPLE_CONFIG).merchants["acme"]
    keyings = caller_keying(tmp_path, "en", merchant, PAN, "123", date(2026, 11, 21))
    assert [k.digits for k in keyings] == [PAN + "#", "1229", "123"]
    assert keyings[0].start_s > 6.0 + 1.5  # not before the greeting and amount are over
    ends = [k.start_s + len(k.digits) * k.every_ms / 1000 for k in keyings]
    assert all(end < nxt.start_s for end, nxt in zip(ends, keyings[1:], strict=False))
    packets = rtp_packets(keyings, ends[-1] + 1)  # raises if any two digits overlapped
    assert decode_events((p.payload_type, p.timestamp, p.payload) for p in packets) == (
        PAN + "#" + "1229" + "123"
    )


def test_a_spoken_card_is_timed_after_each_prompt_and_carried_as_pcmu(tmp_path: Path) -> None:
    import wave

    from payivr.stack.dtmf_tones import ulaw_decode
    from payivr.stack.rtp_pcap import PCMU_PT, speech_packets
    from payivr.stack.spoken_caller import DECODE_ALLOWANCE_S, SaidCard, schedule

    lengths = {"say-card-number": 3.0, "say-next-digits": 1.0, "say-expiry": 2.0,
               "say-cvv": 2.0, "readback-intro": 0.8, "readback-choice": 4.0}  # fmt: skip
    (tmp_path / "en" / "digits").mkdir(parents=True)
    for name, seconds in [*lengths.items(), *((f"digits/{d}", 0.5) for d in range(10))]:
        with wave.open(str(tmp_path / "en" / f"{name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\0\0" * int(8000 * seconds))
    speech = b"\x10\x27" * 8000  # one second at 10000
    card = SaidCard([speech] * 4, [4, 4, 4, 4], speech, speech, 3, speech[:8000])
    sayings = schedule(tmp_path, "en", card, first_prompt_s=10.0)
    assert len(sayings) == 12  # 4 chunks, expiry, code, each with its "yes"
    assert sayings[0].start_s >= 10.0 + 3.0
    # The "yes" after a chunk: the chunk heard (500 ms of silence), decoded (at most
    # the deadline), then the read-back (intro, four digits, question) played.
    readback = 0.8 + 4 * (0.5 + 0.1) + 4.0
    chunk_end = sayings[0].start_s + sayings[0].seconds
    assert sayings[1].start_s >= chunk_end + 0.5 + DECODE_ALLOWANCE_S + readback
    # The next chunk after "say the next digits"; no two sayings overlap.
    yes_end = sayings[1].start_s + sayings[1].seconds
    assert sayings[2].start_s >= yes_end + 0.5 + DECODE_ALLOWANCE_S + 1.0
    assert all(a.start_s + a.seconds < b.start_s for a, b in itertools.pairwise(sayings))
    packets = speech_packets(sayings, sayings[-1].start_s + 2)
    assert {p.payload_type for p in packets} == {PCMU_PT}
    assert [p.seq for p in packets] == list(range(1, len(packets) + 1))
    first = round(sayings[0].start_s * 50)
    assert ulaw_decode(packets[first].payload[0]) in range(9500, 10500)
    assert set(packets[first - 1].payload) == {0xFF}  # u-law silence before it
