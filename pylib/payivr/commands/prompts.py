"""`payivr prompts build`: generate the prompt audio FreeSWITCH plays."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from payivr.commands import load_or_report


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `payivr prompts ...`."""
    prompts = subparsers.add_parser("prompts", help="IVR prompt audio")
    sub = prompts.add_subparsers(dest="prompts_command", required=True, metavar="ACTION")
    build = sub.add_parser(
        "build",
        help="speak every prompt (espeak-ng, sox: 8 kHz mono WAV); recorded prompts are kept",
    )
    build.add_argument(
        "--config", type=Path, help="payivr config (prompts dir: services.esl.prompts_dir)"
    )
    build.add_argument("--out", type=Path, help="prompts directory (overrides the config's)")
    build.add_argument(
        "--language",
        action="append",
        dest="languages",
        help="only this language (repeatable; default: all)",
    )
    build.add_argument(
        "--voice",
        action="append",
        default=[],
        metavar="LANG=VOICE",
        help="espeak-ng voice for a language, e.g. pt=pt-br",
    )
    build.add_argument("--jobs", type=int, default=None, help="parallel syntheses")
    build.set_defaults(handler=_build)


def _build(args: argparse.Namespace) -> int:
    from payivr.core.prompts import LANGUAGES
    from payivr.prompts_build import PromptBuildError, build_prompts

    out: Path | None = args.out
    if out is None:
        if args.config is None:
            print("payivr prompts build: give --config or --out", file=sys.stderr)
            return 2
        config = load_or_report(args.config, prefix="payivr prompts build: ")
        if config is None:
            return 2
        out = config.services.esl.prompts_dir
    voices = {}
    for item in args.voice:
        lang, sep, voice = item.partition("=")
        if not sep or not voice:
            print(f"payivr prompts build: --voice {item!r}: expected LANG=VOICE", file=sys.stderr)
            return 2
        voices[lang] = voice
    languages = args.languages or list(LANGUAGES)
    started = time.monotonic()
    try:
        report = build_prompts(out, languages, voices, args.jobs)
    except (PromptBuildError, ValueError) as exc:
        print(f"payivr prompts build: {exc}", file=sys.stderr)
        return 1
    print(f"prompts in {out}: {report.summary()} ({time.monotonic() - started:.1f} s)")
    for rel in report.recorded:
        print(f"  recorded, kept: {rel}")
    return 0
