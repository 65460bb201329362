"""The prompt catalogue: every prompt id the capture plan can play, and its texts.

The texts are data, one YAML file per language under ``payivr/data/prompts/``
(``en.yaml``: ``prompt-id: text``). The FreeSWITCH side renders them into WAV files
(espeak-ng); ``payivr simulate`` prints them. A language file must define exactly the
ids of :class:`PromptId`, no more and no fewer, so a new prompt cannot ship without
its translations.
"""

from __future__ import annotations

import enum
import re
from importlib import resources

import yaml

from payivr.core.config import LANGUAGES as CONFIG_LANGUAGES


class PromptId(enum.StrEnum):
    """Every prompt the capture plan emits (``Play.prompt`` / ``Collect.prompt``)."""

    # Opening
    GREETING = "greeting"
    GREETING_TOKENIZE = "greeting-tokenize"
    AMOUNT_INTRO = "amount-intro"
    TOKEN_SALE_INTRO = "token-sale-intro"  # noqa: S105 (a prompt id)
    # Field prompts (Collect)
    ENTER_CARD_NUMBER = "enter-card-number"
    ENTER_EXPIRY = "enter-expiry"
    ENTER_CVV = "enter-cvv"
    ENTER_CVV_AMEX = "enter-cvv-amex"
    ENTER_CVV_OPTIONAL = "enter-cvv-optional"
    ENTER_CVV_TOKEN = "enter-cvv-token"  # noqa: S105 (a prompt id)
    # Re-prompts, one per reason (played before the field prompt again)
    CARD_TOO_SHORT = "card-too-short"
    CARD_WRONG_LENGTH = "card-wrong-length"
    CARD_INVALID_NUMBER = "card-invalid-number"
    CARD_NOT_ACCEPTED = "card-not-accepted"
    EXPIRY_INVALID = "expiry-invalid"
    EXPIRY_INVALID_MONTH = "expiry-invalid-month"
    EXPIRY_EXPIRED = "expiry-expired"
    CVV_INVALID = "cvv-invalid"
    NO_INPUT = "no-input"
    RESTART_FIELD = "restart-field"
    # Confirmation
    CONFIRM_CARD_ENDING = "confirm-card-ending"
    CONFIRM_CHOICE = "confirm-choice"
    CONFIRM_INVALID = "confirm-invalid"
    START_AGAIN = "start-again"
    # Speech input (docs/dictation.md)
    SAY_CARD_NUMBER = "say-card-number"
    SAY_OR_KEY_CARD_NUMBER = "say-or-key-card-number"
    SAY_NEXT_DIGITS = "say-next-digits"
    SAY_REMAINING_DIGITS = "say-remaining-digits"
    SAY_EXPIRY = "say-expiry"
    SAY_CVV = "say-cvv"
    READBACK_INTRO = "readback-intro"
    READBACK_CHOICE = "readback-choice"
    SAY_AGAIN = "say-again"
    SPEECH_UNCLEAR = "speech-unclear"
    # Processing and results
    PROCESSING = "processing"
    PROCESSING_TOKENIZE = "processing-tokenize"
    RESULT_APPROVED = "result-approved"
    AUTH_CODE_IS = "auth-code-is"
    RESULT_CARD_SAVED = "result-card-saved"
    RESULT_CARD_REGISTERED = "result-card-registered"
    RESULT_DECLINED = "result-declined"
    RESULT_CARD_NOT_REGISTERED = "result-card-not-registered"
    RESULT_FAILED = "result-failed"
    ATTEMPTS_EXHAUSTED = "attempts-exhausted"
    GOODBYE = "goodbye"
    TRANSFER_BACK = "transfer-back"


PROMPT_IDS: frozenset[str] = frozenset(p.value for p in PromptId)

# Languages that ship with a prompt set (SPEC 2: X-Pay-Language).
LANGUAGES: tuple[str, ...] = CONFIG_LANGUAGES

_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


class PromptCatalogueError(ValueError):
    """A prompt file is missing, malformed, or does not define exactly PROMPT_IDS."""


def available_languages() -> tuple[str, ...]:
    """Languages with a prompt file in the package, sorted."""
    folder = resources.files("payivr") / "data" / "prompts"
    names = [
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    ]
    return tuple(sorted(names))


def load_prompts(language: str) -> dict[str, str]:
    """The texts of every prompt id in ``language`` (``es``, ``en``, ``pt``, ``nl``).

    Raises :class:`PromptCatalogueError` listing every problem at once.
    """
    if not _LANGUAGE_RE.match(language):
        raise PromptCatalogueError(f"{language!r}: not a language code")
    resource = resources.files("payivr") / "data" / "prompts" / f"{language}.yaml"
    try:
        raw = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptCatalogueError(f"{language}: no prompt set for this language") from None
    return parse_prompts(raw, source=f"prompts/{language}.yaml")


def parse_prompts(raw: str, *, source: str = "prompts") -> dict[str, str]:
    """Parse and validate one prompt file's YAML text."""
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PromptCatalogueError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise PromptCatalogueError(f"{source}: must be a mapping of prompt id to text")
    problems: list[str] = []
    texts: dict[str, str] = {}
    for key, value in data.items():
        if key not in PROMPT_IDS:
            problems.append(f"{source}: {key}: unknown prompt id")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{source}: {key}: must be a non-empty text")
        else:
            texts[key] = " ".join(value.split())
    for missing in sorted(PROMPT_IDS - data.keys()):
        problems.append(f"{source}: {missing}: missing")
    if problems:
        raise PromptCatalogueError("; ".join(problems))
    return texts
