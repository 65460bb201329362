"""Speech input adapters (docs/dictation.md): recognisers behind the pure
``payivr.core.speech_input.Recogniser`` port, and the listen loop that turns a
call's audio frames into one plan event, off the event loop and bounded in time."""
