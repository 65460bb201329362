"""Callback delivery (SPEC 7): the outbox worker, its policy checks, sender and metrics."""
