"""The prompt catalogue: every language has every prompt, and the loader is strict."""

from __future__ import annotations

import json

import pytest

from payivr.core.config import LANGUAGES as CONFIG_LANGUAGES
from payivr.core.currency import format_amount
from payivr.core.plan import speech
from payivr.core.plan.fields import Field
from payivr.core.prompts import (
    LANGUAGES,
    PROMPT_IDS,
    PromptCatalogueError,
    PromptId,
    available_languages,
    load_prompts,
    parse_prompts,
)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_exactly_every_prompt(language: str) -> None:
    texts = load_prompts(language)
    assert set(texts) == PROMPT_IDS
    assert all(text.strip() for text in texts.values())


def test_shipped_languages() -> None:
    assert set(available_languages()) == set(LANGUAGES) == {"es", "en", "pt", "nl"}
    # Every language a request may ask for (config validation) has a prompt set.
    assert set(CONFIG_LANGUAGES) <= set(available_languages())


def test_languages_really_differ() -> None:
    # A copy-pasted English file would pass the key check; the texts must be translated.
    english = load_prompts("en")
    for language in ("es", "pt", "nl"):
        texts = load_prompts(language)
        same = [k for k in PROMPT_IDS if texts[k] == english[k]]
        assert same == [], (language, same)


def test_reprompts_are_catalogue_ids_for_every_reason() -> None:
    reasons = {
        "too-short", "too-long", "wrong-length", "not-digits", "invalid-number",
        "unknown-brand", "brand-not-accepted", "invalid-month", "expired",
        "too-far-ahead", "no-input", "restarted", "invalid-choice",
    }  # fmt: skip
    for field in Field:
        for reason in reasons:
            assert speech.reprompt(field, reason) in PromptId


@pytest.mark.parametrize("language", ["", "../en", "EN", "en/../../x", "e"])
def test_bad_language_codes_are_refused(language: str) -> None:
    with pytest.raises(PromptCatalogueError):
        load_prompts(language)


def test_unknown_language() -> None:
    with pytest.raises(PromptCatalogueError, match="no prompt set"):
        load_prompts("fr")


def test_parse_lists_every_problem() -> None:
    raw = "greeting: ''\nnot-a-prompt: hello\n"
    with pytest.raises(PromptCatalogueError) as info:
        parse_prompts(raw, source="x.yaml")
    message = str(info.value)
    assert "greeting: must be a non-empty text" in message
    assert "not-a-prompt: unknown prompt id" in message
    assert "goodbye: missing" in message


@pytest.mark.parametrize("raw", ["- a\n- b\n", "a: [", "just text"])
def test_parse_refuses_non_mappings(raw: str) -> None:
    with pytest.raises(PromptCatalogueError):
        parse_prompts(raw)


def test_whitespace_is_normalised() -> None:
    full = {p: "x" for p in PROMPT_IDS}
    full["greeting"] = "Hello\n   there "
    raw = "\n".join(f"{k}: {json.dumps(v)}" for k, v in full.items())
    assert parse_prompts(raw)["greeting"] == "Hello there"


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1250, "EUR", "12.50 EUR"),
        (5, "USD", "0.05 USD"),
        (0, "EUR", "0.00 EUR"),
        (1250, "JPY", "1250 JPY"),
        (1234, "KWD", "1.234 KWD"),
    ],
)
def test_format_amount(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text
