"""``pay``: take a payment in this call with payivr's capture plan (SPEC section 6).

```yaml
take_payment:
  type: pay
  merchant: acme               # a merchant of payivr's config
  operation: sale              # sale (default), preauth, tokenize, token_sale...
  amount: "{amount_due}"       # minor units: 1250 = 12.50
  currency: EUR                # default: the merchant's
  order: "{order}"
  description: "Invoice {order}"
  callback_url: "https://shop.example.com/payivr"   # the result's callback, as X-Pay-Callback-Url
  next: after_payment
```
The caller keys the card exactly as in a transferred payment call: the same prompts,
checks, attempts, recording masks, processor call, result, outbox callback and
``payivr:events`` of the payment session the activity creates. The card data never
leaves the capture plan. Afterwards ``pay_result`` (approved, declined, failed,
cancelled, ...), ``pay_reason`` and ``pay_session`` are set; a later ``transfer`` with
``payment_headers: true`` carries the signed X-Pay-* result headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from payivr.core.errors import IllegalTransition
from payivr.core.flow.commands import StartPayment
from payivr.core.flow.events import PaymentDone
from payivr.core.flow.model import Activity, Env, FlowReader, Step
from payivr.core.processor import Operation

RESULT = "pay_result"
REASON = "pay_reason"
SESSION = "pay_session"


@dataclass(frozen=True)
class Pay(Activity):
    kind: ClassVar[str] = "pay"
    media: ClassVar[bool] = True
    keys: ClassVar[frozenset[str]] = frozenset(
        {"merchant", "operation", "amount", "currency", "order", "description", "callback_url"}
    )

    merchant: str = ""
    operation: str = "sale"
    amount: str = ""
    currency: str = ""
    order: str = ""
    description: str = ""
    callback_url: str = ""

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> Pay:
        merchant = r.get("merchant", str, "")
        if not merchant:
            r.problem("merchant", "required (a merchant of payivr's config)")
        else:
            r.refs.merchants.append((r.path_of("merchant"), merchant))
        operation = r.choice("operation", tuple(o.value for o in Operation), "sale")
        if nxt is None:
            r.problem("next", "required (the activity after the payment)")
        for name in (RESULT, REASON, SESSION):
            r.written("", name)
        # The payment request carries these to the processor and the merchant's
        # callback: shown, so no secure variable goes there.
        return cls(
            aid,
            nxt,
            on_error,
            merchant=merchant,
            operation=operation,
            amount=r.template("amount", shown=True, required=operation != "tokenize"),
            currency=r.template("currency", shown=True),
            order=r.template("order", shown=True, required=True),
            description=r.template("description", shown=True),
            callback_url=r.template("callback_url", shown=True),
        )

    def begin(self, env: Env) -> Step:
        command = StartPayment(
            merchant=self.merchant,
            operation=self.operation,
            amount=env.vars.render(self.amount),
            currency=env.vars.render(self.currency),
            order=env.vars.render(self.order),
            language=env.language,
            description=env.vars.render(self.description),
            callback_url=env.vars.render(self.callback_url),
        )
        return Step((command,), waits=(PaymentDone,))

    def answer(self, event: Any, env: Env) -> Step:
        if not isinstance(event, PaymentDone):
            raise IllegalTransition(f"pay {self.id} waits for PaymentDone, not {event!r}")
        env.vars.set(RESULT, event.code)
        env.vars.set(REASON, event.reason)
        env.vars.set(SESSION, event.session)
        if event.hungup:
            return Step(outcome=event.code, ends_call=True)
        return Step(goto=self.next, outcome=event.code)
