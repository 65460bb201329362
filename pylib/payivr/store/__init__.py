"""Redis adapters: session store, events stream, callback outbox, replay guard."""
