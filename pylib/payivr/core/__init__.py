"""The pure core of payivr: no sockets, Redis, HTTP, ESL or KSR imports here.

Everything in this package is deterministic given its inputs (time and randomness
are passed in), so it can be tested without servers and reused by every adapter.
"""
