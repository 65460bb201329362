"""Recognisers' own logging, silenced: their decoders print what they hear.

pocketsphinx writes its log (which includes hypotheses at INFO) to the C stderr;
Vosk/Kaldi likewise. Both are switched off through their own APIs before the first
model is loaded, and the tests read the process's stderr to check nothing came out.
"""

from __future__ import annotations

import importlib
import logging


def silence_pocketsphinx() -> None:
    module = importlib.import_module("pocketsphinx")
    module.set_loglevel("FATAL")
    # The Python wrapper logs through `logging` too (model paths, never audio).
    logging.getLogger("pocketsphinx").setLevel(logging.CRITICAL)


def silence_vosk() -> None:
    module = importlib.import_module("vosk")
    module.SetLogLevel(-1)
