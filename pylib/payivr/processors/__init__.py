"""Payment processors behind one interface (`payivr.core.processor.Processor`).

`build_processor(merchant)` is what the wiring calls: it reads the merchant's
`processor:` section (validated by `payivr.core.processor_options`, secrets already
resolved by the config loader) and returns the sandbox, the Redsys REST adapter or
the generic HTTP connector. Switching a merchant from the sandbox to Redsys is a
config change only (docs/processors.md).

`charge_and_settle(processor, request)` runs one charge to a settled outcome: a
timeout or an untrustworthy answer is reported as `failed` and followed by a reversal
whose outcome the caller records on the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from payivr.processors.outcome import SettledCharge, charge_and_settle, needs_reversal

if TYPE_CHECKING:
    from payivr.core.config import MerchantConfig
    from payivr.core.processor import Processor

__all__ = [
    "SettledCharge",
    "build_processor",
    "charge_and_settle",
    "needs_reversal",
    "sandbox_token_key",
]


class UnknownProcessorType(ValueError):
    """The config names a processor type payivr does not have."""


def build_processor(merchant: MerchantConfig) -> Processor:
    """The processor for ``merchant``, as its config says (`processor.type`)."""
    config = merchant.processor
    kind = config.type
    if kind == "sandbox":
        return _sandbox(merchant)
    if kind == "redsys":
        from payivr.processors.redsys import client as redsys

        return redsys.RedsysProcessor(redsys.settings_from_options(config.options))
    if kind == "http":
        from payivr.processors import http_connector as http

        return http.HttpConnectorProcessor(http.settings_from_options(config.options))
    raise UnknownProcessorType(f"unknown processor type {kind!r}")


def _sandbox(merchant: MerchantConfig) -> Processor:
    # The sandbox is pure (SPEC 8) and lives in the core beside the interface.
    from payivr.core import sandbox

    processor: Processor = sandbox.SandboxProcessor(sandbox_token_key(merchant))
    return processor


def sandbox_token_key(merchant: MerchantConfig) -> bytes:
    """The key of the sandbox's tokens: the merchant's `processor.token_secret`."""
    secret = merchant.processor.options.get("token_secret")
    reveal = getattr(secret, "value", None)
    if not callable(reveal):  # the config validator refuses such a config
        raise ValueError(f"merchant {merchant.id}: processor.token_secret is not set")
    return str(reveal()).encode()
