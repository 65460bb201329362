"""Two real FreeSWITCH nodes behind Kamailio; one killed (-9) under 10 keyed calls.

FreeSWITCH is not packaged in Debian: skipped unless FREESWITCH_BIN (or `freeswitch`
on PATH) names one. The stack is `payivr stack up`'s (Redis, FreeSWITCH A, Kamailio,
the ESL application A, the callback worker with its watchdog); node B (FreeSWITCH B
and its own ESL application, on the same Redis) is started before Kamailio, which
gets both nodes in its dispatcher set. Ten keyed calls (a SIPp caller each, started
0.3 s apart) are in progress when FreeSWITCH B is killed.

Proven: every call gets exactly one signed callback (node A's calls and the calls
placed after B was marked inactive `approved`, node B's calls not), every caller's
call ends, the dispatcher marks B inactive within two probes, and node B's calls are
recorded as `failed` / `ivr-unavailable`: B's ESL application, which outlives its
FreeSWITCH, tells its event socket closing with no hang-up from a caller's hang-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from payivr.core.config import Config, load_config
from payivr.core.signature import verify_callback
from payivr.stack.demo_freeswitch import KeyedCall, start_keyed_call
from payivr.stack.layout import StackLayout, prepare
from payivr.stack.ports import wait_for_listener
from payivr.stack.processes import Managed, spawn, stop
from payivr.stack.receiver import CallbackReceiver
from payivr.stack.up import find_freeswitch
from tests.conftest import EXAMPLE_CONFIG
from tests.integration.failover.failsupport import wait_inactive

FREESWITCH = find_freeswitch()
pytestmark = [
    pytest.mark.freeswitch,
    pytest.mark.skipif(
        FREESWITCH is None,
        reason="no FreeSWITCH: set FREESWITCH_BIN or put freeswitch on PATH (not packaged "
        "in Debian; production hosts get it from the vendor repository, ansible role freeswitch)",
    ),
]
PAN = "4111111111111111"
CALLS = 10
LATER_CALLS = 2


def _base_config(root: Path) -> Path:
    """The example config, paths absolute, with a watchdog budget that ends a dead
    node's calls within the test (services.watchdog; shorter capture timeouts)."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["secrets_file"] = str((EXAMPLE_CONFIG.parent / data["secrets_file"]).resolve())
    data["services"]["esl"]["prompts_dir"] = str(
        (EXAMPLE_CONFIG.parent / data["services"]["esl"]["prompts_dir"]).resolve()
    )
    data["services"]["watchdog"] = {
        "answer_allowance_s": 20,
        "prompt_allowance_s": 20,
        "margin_s": 5,
    }
    capture = data["merchants"]["acme"].setdefault("capture", {})
    capture.update({"digit_timeout_ms": 3000, "field_timeout_ms": 10000})
    path = root / "base.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _edit(path: Path, change: object) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@dataclass
class NodeB:
    layout: StackLayout
    procs: list[Managed] = field(default_factory=list)

    @property
    def freeswitch(self) -> Managed:
        return self.procs[0]


def _start_node_b(base: Path, root: Path, redis_url: str) -> NodeB:
    """FreeSWITCH B and its ESL application, on the stack's Redis."""
    from payivr.stack import up

    layout = prepare(base, root / "b")
    _edit(layout.config_path, lambda d: d["services"]["redis"].update(url=redis_url))
    node = NodeB(layout)
    assert FREESWITCH is not None
    node.procs.append(up._start_freeswitch(layout, FREESWITCH))
    esl = spawn(
        "esl-b",
        up._payivr("esl", "serve", "--config", str(layout.config_path)),
        layout.workdir / "logs" / "esl.log",
    )
    node.procs.append(esl)
    deadline = time.monotonic() + 15
    while not wait_for_listener(layout.ports["esl"], 0.2):
        assert time.monotonic() < deadline, "ESL application B did not listen"
    return node


@contextlib.contextmanager
def two_nodes(tmp_path: Path) -> Iterator[tuple[Config, int, Path, NodeB, CallbackReceiver]]:
    from payivr.stack.up import stack_down, stack_up

    base = _base_config(tmp_path)
    started: list[NodeB] = []

    def before_kamailio(layout_a: StackLayout) -> None:
        node = _start_node_b(base, tmp_path, layout_a.redis_url)
        started.append(node)
        uri_b = f"sip:127.0.0.1:{node.layout.ports['freeswitch']}"
        _edit(
            layout_a.config_path,
            lambda d: d["services"].update(
                freeswitch_nodes=[*d["services"]["freeswitch_nodes"], uri_b]
            ),
        )

    receiver = CallbackReceiver().start()
    try:
        state = stack_up(
            base, tmp_path / "a", freeswitch=FREESWITCH, before_kamailio=before_kamailio
        )
        try:
            yield (
                load_config(Path(state.config)),
                state.ports["kamailio"],
                tmp_path / "a",
                started[0],
                receiver,
            )
        finally:
            stack_down(tmp_path / "a")
    finally:
        for node in started:
            for proc in reversed(node.procs):
                stop(proc)
        receiver.stop()


def _place(config: Config, kamailio_port: int, workdir: Path, url: str) -> KeyedCall:
    merchant = config.merchant("acme")
    assert merchant is not None
    return start_keyed_call(
        kamailio_port,
        config,
        merchant,
        workdir / f"sipp-{secrets.token_hex(4)}",
        card=PAN,
        callback_url=url,
        timeout_s=120,
    )


@dataclass
class Run:
    """What the scenario produced, for the tests below."""

    outcomes: dict[str, str]  # session id -> "result/reason", one per callback
    calls: int
    ended: int  # callers whose call ended (SIPp exited) within the bound
    inactive_s: float
    all_results_s: float


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The scenario, once for the module: 10 keyed calls, FreeSWITCH B killed (-9)
    8 s in, 2 more calls once the dispatcher marked B inactive."""
    with two_nodes(tmp_path_factory.mktemp("failover")) as (
        config,
        kamailio_port,
        stack_dir,
        node_b,
        receiver,
    ):
        ctl = stack_dir / "kamailio" / "kamailio_ctl"
        uri_b = f"sip:127.0.0.1:{node_b.layout.ports['freeswitch']}"
        calls: list[KeyedCall] = []
        try:
            for _ in range(CALLS):
                calls.append(_place(config, kamailio_port, stack_dir, receiver.url))
                time.sleep(0.3)
            time.sleep(8)  # every call answered and capturing
            os.kill(node_b.freeswitch.pid, signal.SIGKILL)
            killed = time.monotonic()
            inactive = wait_inactive(ctl, uri_b, 15)
            assert inactive is not None, "the dispatcher never marked FreeSWITCH B inactive"
            for _ in range(LATER_CALLS):
                calls.append(_place(config, kamailio_port, stack_dir, receiver.url))
            ended = sum(
                call.uac.wait(max(1.0, 120 - (time.monotonic() - killed))) is not None
                for call in calls
            )
        finally:
            for call in calls:
                call.uac.stop()
        receiver.wait(len(calls), max(5.0, 160 - (time.monotonic() - killed)))
        all_results = time.monotonic() - killed
        time.sleep(1.0)  # a duplicate would come within the worker's lease
        merchant = config.merchant("acme")
        assert merchant is not None
        outcomes: dict[str, str] = {}
        for cb in receiver.received:
            assert verify_callback(
                merchant.callback_secret.encode(),
                cb.body,
                cb.headers.get("X-Payivr-Signature", ""),
            ), "a callback with a bad signature"
            body = json.loads(cb.body)
            assert body["session_id"] not in outcomes, "two callbacks for one session"
            outcomes[body["session_id"]] = f"{body['result']}/{body['reason']}"
        print(
            f"\ntwo FreeSWITCH: B inactive {inactive:.1f}s after kill -9; outcomes "
            f"{sorted(outcomes.values())}; all callbacks {all_results:.0f}s after the kill"
        )
        return Run(outcomes, len(calls), ended, inactive, all_results)


@pytest.mark.timeout(200)
def test_every_call_gets_one_signed_callback(run: Run) -> None:
    assert len(run.outcomes) == run.calls
    assert run.ended == run.calls, "a caller was left in its call"
    approved = [o for o in run.outcomes.values() if o.startswith("approved/")]
    lost = [o for o in run.outcomes.values() if not o.startswith("approved/")]
    # Round-robin put calls on both nodes; the later calls all completed on A.
    assert lost and len(approved) >= LATER_CALLS + 1, run.outcomes
    assert run.inactive_s <= 2 * 2 + 2 + 2  # two probes 2 s apart, fr_timer, polling


def test_dead_node_calls_are_failed_ivr_unavailable(run: Run) -> None:
    lost = [o for o in run.outcomes.values() if not o.startswith("approved/")]
    assert lost and set(lost) == {"failed/ivr-unavailable"}, run.outcomes
