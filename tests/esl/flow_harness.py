"""The ESL application with flows: the reference flow's config, the fake Zendesk.

`FlowStack(redis_url, zendesk)` starts the application with `flows:` (the reference
flow at entry point 8000, queue `support`) and the `zendesk` connector pointing at a
FakeZendesk on loopback; `call(...)` runs one FakeCall without a payivr session.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import yaml

from payivr.core.config import Config, parse_config
from tests.esl.harness import EXAMPLE_CONFIG, EslHarness
from tests.esl.peer import CallScript, FakeCall, Input, run_call
from tests.integration.connectors.zdsupport import TOKEN_ENV, connector_doc
from tests.support.fake_zendesk import FakeZendesk

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "flows" / "zendesk-caller-aware.yaml"
ENTRY = "8000"
CALLER = "+34 600 111 222"


def flow_config(zendesk: FakeZendesk, files: list[str] | None = None, **entry: Any) -> Config:
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE_CONFIG.read_text()))
    data["connectors"] = {"zendesk": connector_doc(zendesk)}
    data["flows"] = {
        "files": files or [str(REFERENCE)],
        "sources": ["127.0.0.1/32"],
        "entry_points": {
            "support": {"number": ENTRY, "flow": "zendesk-caller-aware", **entry},
        },
        "queues": {"support": {"agents": ["sip:agent1@127.0.0.1:5090"]}},
    }
    config = parse_config(
        data, base_dir=EXAMPLE_CONFIG.parent, environ={TOKEN_ENV: zendesk.api_token}
    )
    merchants = {
        mid: dataclasses.replace(m, processor=dataclasses.replace(m.processor, timeout_s=0.3))
        for mid, m in config.merchants.items()
    }
    return dataclasses.replace(config, merchants=merchants)


class FlowStack:
    """A started application with flows, inside one event loop, with log capture."""

    def __init__(self, redis_url: str, config: Config, prompts_dir: Path) -> None:
        self.h = EslHarness(redis_url, config=config, prompts_dir=prompts_dir)
        self.logger = logging.getLogger("payivr")
        self.previous_level = self.logger.level

    async def __aenter__(self) -> FlowStack:
        self.logger.addHandler(self.h.log)
        self.logger.setLevel(logging.DEBUG)
        await self.h.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.h.stop()
        self.logger.removeHandler(self.h.log)
        self.logger.setLevel(self.previous_level)

    async def call(
        self,
        inputs: list[Input],
        *,
        ani: str = CALLER,
        dialled: str = ENTRY,
        headers: dict[str, str] | None = None,
        **script: Any,
    ) -> FakeCall:
        call_script = CallScript(
            sip_headers=headers or {},
            inputs=list(inputs),
            caller_number=ani,
            dialled=dialled,
            **script,
        )
        call = await run_call(call_script, self.h.server.port, timeout=20)
        await self.h.idle()
        return call

    def events(self) -> list[dict[str, str]]:
        return [fields for _, fields in self.h.client.xrange("payivr:events")]

    def comments(self) -> list[dict[str, str]]:
        return [fields for _, fields in self.h.client.xrange("payivr:comments")]
