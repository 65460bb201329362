"""The media proxy (rtpengine) that removes card tones from the agent's audio."""
