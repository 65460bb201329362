"""A merchant's own flow takes a payment with `pay` (Sipay "Model 1"): the capture
plan runs in the flow call, through the same executor; the result, the outbox
callback and the events are those of a transferred payment; the signed result
headers ride on the flow's transfer. The PCI search covers card data and the flow's
secure variable (a PIN the caller keyed, sent to the CRM and nowhere else).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from payivr.core.result import SIGNED_RESULT_HEADERS
from payivr.core.signature import verify
from tests.esl.flow_harness import FlowStack, flow_config
from tests.esl.peer import Keys
from tests.support.fake_zendesk import FakeZendesk

PAN, EXPIRY, CVV, PIN = "4111111111111111", "1230", "737", "4321"
PAY_FLOW = """
flow: pay-invoice
language: en
variables:
  pin: {secure: true}
  account: ""
prompts:
  ask-pin: {en: Please enter your four digit PIN.}
start: pin
activities:
  pin:
    type: collect
    prompt: ask-pin
    variable: pin
    min_digits: 4
    max_digits: 4
    next: account
    on_failure: bye
  account:
    type: http
    connector: zendesk
    path: /api/v2/users/search.json
    query: {query: "phone:{ani_digits}", pin: "{pin}"}
    outputs: {account: "$.users[0].id"}
    next: take
    on_error: take
  take:
    type: pay
    merchant: acme
    amount: "1250"
    currency: EUR
    order: "INV{account}"
    callback_url: http://127.0.0.1:9/payivr-callback
    next: back
  back:
    type: transfer
    uri: sip:billing@127.0.0.1:5090
    headers: {X-Account: "{account}"}
    payment_headers: true
  bye:
    type: hangup
"""


def test_pay_in_a_flow_approved_with_result_callback_and_headers(
    redis_url: str, tmp_path: Path
) -> None:
    zendesk = FakeZendesk()
    zendesk.add_user(501, "Ana", "+34 600 111 222")
    zendesk.start()
    flow_file = tmp_path / "pay-invoice.yaml"
    flow_file.write_text(PAY_FLOW)
    config = flow_config(zendesk, files=[str(flow_file)], flow="pay-invoice")

    async def scenario() -> None:
        async with FlowStack(redis_url, config, tmp_path) as stack:
            h = stack.h
            call = await stack.call([Keys(PIN), Keys(PAN + "#"), Keys(EXPIRY), Keys(CVV)])
            assert call.errors == [] and call.leaks == []
            # The capture plan's prompts, in the call, after the flow's own.
            names = [arg.rsplit("/", 1)[-1].removesuffix(".wav") for _, arg in call.played]
            assert names[:3] == ["ask-pin", "greeting", "amount-intro"]
            assert "result-approved" in names and "goodbye" not in names
            # The payment session: as a transferred payment's.
            sessions = [k for k in h.client.scan_iter("payivr:session:*")]
            assert len(sessions) == 1
            stored = h.load(sessions[0].rsplit(":", 1)[-1])
            assert stored.result is not None and stored.result.code == "approved"
            assert stored.request.order == "INV501" and str(stored.state) == "returned"
            (callback,) = h.outbox()
            body = json.loads(callback["body"])
            assert body["result"] == "approved" and body["order"] == "INV501"
            names = [fields["event"] for _, fields in h.client.xrange("payivr:events")]
            for name in ("session.created", "capture.started", "payment.result",
                         "call.returned", "session.closed", "flow.ended"):  # fmt: skip
                assert name in names
            # The transfer: X-Account and the signed result, as a payment's return.
            assert call.refer is not None
            target, headers = call.refer
            assert target == "sip:billing@127.0.0.1:5090"
            assert headers["X-Account"] == "501" and headers["X-Pay-Result"] == "approved"
            secret = h.config.merchants["acme"].signing_secret.encode()
            fields = {k: v for k, v in headers.items() if k.startswith("X-Pay-")}
            assert verify(secret, fields, call.variables["sip_call_id"],
                          headers["X-Pay-Signature"], SIGNED_RESULT_HEADERS)  # fmt: skip
            # PCI: card data and the secure PIN nowhere but where they belong.
            logs = "\n".join(h.log.lines)
            redis_text = "\n".join(h.redis_dump())
            sent = call.received.decode("utf-8", "replace")
            for secret_text in (PAN, PIN):
                assert secret_text not in logs
                assert secret_text not in redis_text
                assert secret_text not in sent
            for short in (EXPIRY, CVV, PIN):
                pattern = re.compile(rf"(?<![0-9]){short}(?![0-9])")
                assert not pattern.search(logs)
                for _, event in h.client.xrange("payivr:events"):
                    assert short not in event.values()
            assert call.cdr is not None
            assert not any(k.startswith("payivr_dtmf_") for k in call.cdr)
            # The PIN went to the CRM, as the flow says (a secure value may be sent).
            (lookup,) = zendesk.recorded("GET")
            assert lookup.query == {"query": "phone:34600111222", "pin": PIN}

    try:
        asyncio.run(scenario())
    finally:
        zendesk.stop()


def test_a_flow_payment_counts_in_the_payment_metrics(redis_url: str, tmp_path: Path) -> None:
    """The ESL application's scrape shows a flow's `pay` as a transferred payment's:
    field verdicts, the result by merchant/code/reason, the processor's latency; and
    the flow's activity. No card data or order id in the scrape."""
    import urllib.request

    from payivr.metrics import serve
    from payivr.stack.ports import free_port
    from tests.integration.callbacks.cbsupport import scraped_samples

    zendesk = FakeZendesk()
    zendesk.add_user(501, "Ana", "+34 600 111 222")
    zendesk.start()
    flow_file = tmp_path / "pay-invoice.yaml"
    flow_file.write_text(PAY_FLOW)
    config = flow_config(zendesk, files=[str(flow_file)], flow="pay-invoice")

    async def scenario() -> str:
        async with FlowStack(redis_url, config, tmp_path) as stack:
            call = await stack.call([Keys(PIN), Keys(PAN + "#"), Keys(EXPIRY), Keys(CVV)])
            assert call.errors == []
            assert stack.h.service is not None
            port = free_port()
            server = serve(stack.h.service.registry, "127.0.0.1", port)
            assert server is not None
            try:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as response:
                    return str(response.read().decode())
            finally:
                server.shutdown()
                server.server_close()

    try:
        text = asyncio.run(scenario())
    finally:
        zendesk.stop()
    samples = scraped_samples(text)
    assert (
        samples['payivr_payment_results_total{code="approved",merchant="acme",reason="none"}'] == 1
    )
    for field in ("card_number", "expiry", "cvv"):
        assert samples[f'payivr_payment_fields_total{{field="{field}",outcome="valid"}}'] == 1
    assert samples['payivr_processor_seconds_count{code="approved"}'] == 1
    assert (
        samples['payivr_flow_activities_total{flow="pay-invoice",kind="pay",outcome="approved"}']
        == 1
    )
    for secret_text in (PAN[:12], "INV501"):
        assert secret_text not in text
