"""`payivr flows check|simulate|media` (the simulation against the fake Zendesk)."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from payivr import cli
from tests.integration.connectors.test_comments import outbox_for, wait_until, worker_running
from tests.integration.connectors.zdsupport import TOKEN_ENV, write_config_file
from tests.support.fake_zendesk import FakeZendesk

REPO = Path(__file__).resolve().parents[3]
REFERENCE = REPO / "flows" / "zendesk-caller-aware.yaml"


@pytest.fixture()
def zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk()
    fake.add_user(501, "Ana", "+34 600 111 222", locale="es-ES")
    fake.add_ticket(8123, 501, "open", "2026-12-01T10:00:00Z")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def config_file(tmp_path: Path, zendesk: FakeZendesk, redis_url: str) -> Path:
    path = write_config_file(tmp_path, zendesk, redis_url)
    data = yaml.safe_load(path.read_text())
    data["flows"] = {
        "files": [str(REFERENCE)],
        "sources": ["127.0.0.1/32"],
        "entry_points": {"support": {"number": "8000", "flow": "zendesk-caller-aware"}},
        "queues": {"support": {"agents": ["sip:agent1@127.0.0.1:5090"]}},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def simulate(
    tmp_path: Path,
    zendesk: FakeZendesk,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    keyed: str,
    *extra: str,
) -> str:
    """`payivr flows simulate` of a call from Ana to the support entry; its output."""
    monkeypatch.setenv(TOKEN_ENV, zendesk.api_token)
    path = config_file(tmp_path, zendesk, redis_url)
    monkeypatch.setattr(sys, "stdin", io.StringIO(keyed))
    code = cli.main(["flows", "simulate", "--config", str(path), "--entry", "8000",
                     "--ani", "+34 600 111 222", *extra])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_check_ok_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = yaml.safe_load(REFERENCE.read_text())
    broken["activities"]["main_menu"]["options"]["1"] = "nowhere"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(broken))
    assert cli.main(["flows", "check", str(REFERENCE), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == f"{REFERENCE}: ok (flow zendesk-caller-aware, 13 activities)\n"
    assert err == f"{bad}: activities.main_menu.options.1: no activity 'nowhere'\n"


def test_check_against_a_config_without_the_connector(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = REPO / "config" / "payivr.example.yaml"
    assert cli.main(["flows", "check", str(REFERENCE), "--config", str(example)]) == 2
    err = capsys.readouterr().err
    assert "activities.find_user.connector: no connector 'zendesk'" in err


def test_simulate_known_caller_against_the_fake_zendesk(
    tmp_path: Path,
    zendesk: FakeZendesk,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = simulate(tmp_path, zendesk, redis_url, monkeypatch, capsys, "1\n\n")
    lines = [line for line in out.splitlines() if line.startswith("IVR: ")]
    assert lines == [
        "IVR: Thank you for calling ACME support.",
        "IVR: Su último ticket, número",
        "IVR: 8 1 2 3",
        "IVR: está abierto, y un agente está trabajando en él.",
        "IVR: Para hablar con un agente, pulse 1. Para terminar esta llamada, pulse 2.",
        "IVR: Por favor, espere; un agente le atenderá en breve.",
    ]
    assert "(comment for zendesk ticket 8123: payivr call to entry support: menu choice 1;" \
        " queue answered" in out  # fmt: skip
    assert "(flow ended by flow)" in out
    assert len(zendesk.recorded("GET")) == 2 and zendesk.recorded("PUT") == []


def test_media_builds_prompts_and_music(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = {
        "flow": "tiny",
        "prompts": {"hi": {"en": "Hello.", "es": "Hola."}},
        "start": "a",
        "activities": {
            "a": {"type": "say", "items": [{"prompt": "hi"}], "next": "q"},
            "q": {"type": "queue", "queue": "support", "music": "calm", "next": "h"},
            "h": {"type": "hangup"},
        },
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(flow))
    example = REPO / "config" / "payivr.example.yaml"
    data = yaml.safe_load(example.read_text())
    data["secrets_file"] = str(example.parent / data["secrets_file"])
    data["flows"] = {"files": [str(tmp_path / "tiny.yaml")],
                     "queues": {"support": {"agents": ["sip:a@127.0.0.1"]}}}  # fmt: skip
    config = tmp_path / "payivr.yaml"
    config.write_text(yaml.safe_dump(data))
    prompts = tmp_path / "prompts"
    args = ["flows", "media", "--config", str(config), "--prompts-dir", str(prompts)]
    assert cli.main(args) == 0
    assert capsys.readouterr().out == f"{prompts}: 3 generated, 0 kept\n"
    for rel in ("en/flows/tiny/hi.wav", "es/flows/tiny/hi.wav", "music/calm.wav"):
        head = (prompts / rel).read_bytes()[:44]
        assert head[:4] == b"RIFF" and head[8:12] == b"WAVE"
        assert int.from_bytes(head[24:28], "little") == 8000  # 8 kHz, as FreeSWITCH plays
        assert int.from_bytes(head[22:24], "little") == 1  # mono
    assert (prompts / "music" / "calm.wav").stat().st_size > 8000 * 2 * 30  # 30 s and more
    assert cli.main(args) == 0
    assert capsys.readouterr().out == f"{prompts}: 0 generated, 3 kept\n"


def test_simulate_post_comments_queues_the_comment_in_the_durable_outbox(
    tmp_path: Path,
    zendesk: FakeZendesk,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = simulate(tmp_path, zendesk, redis_url, monkeypatch, capsys, "2\n", "--post-comments")
    assert "(comment for zendesk ticket 8123 queued: " in out
    assert zendesk.recorded("PUT") == []  # queued, not sent by the simulation itself
    outbox = outbox_for(redis_url)
    (row,) = outbox.raw_rows()
    assert row.fields["ticket_id"] == "8123" and row.fields["call_id"].startswith("simulate-")
    with worker_running(redis_url, zendesk):  # what `payivr callbacks work` runs
        wait_until(lambda: 8123 in zendesk.comments)
        time.sleep(0.5)  # a second delivery would come meanwhile
    (comment,) = zendesk.comments[8123]
    assert comment["body"].startswith("payivr call to entry support: menu choice 2;")
    assert comment["public"] is False


def test_demo_runs_the_reference_flow_against_the_loopback_stand_in(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`./dev demo-flow`: the caller presses 2; the status was said, the comment made."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("2\n"))
    example = REPO / "config" / "payivr.example.yaml"
    assert cli.main(["flows", "demo", "--config", str(example)]) == 0
    out = capsys.readouterr().out
    assert "IVR: 8 1 2 3" in out and "IVR: Gracias por su llamada. Adiós." in out
    assert "(comment for zendesk ticket 8123: payivr call to entry support: menu choice 2;" in out
