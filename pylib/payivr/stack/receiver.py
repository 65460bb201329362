"""A local HTTP endpoint standing in for the merchant's callback URL (demo, tests)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class ReceivedCallback:
    """One POST as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time() when the body had been read (latency benches)


class CallbackReceiver:
    """Accepts POSTs on 127.0.0.1, answers 200, keeps them for `wait()`."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[ReceivedCallback] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                at = time.time()
                with receiver._arrived:
                    receiver.received.append(
                        ReceivedCallback(self.path, dict(self.headers.items()), body, at)
                    )
                    receiver._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return  # quiet: the demo prints what matters

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/payivr/callback"

    def start(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def wait(self, count: int = 1, timeout: float = 15.0) -> list[ReceivedCallback]:
        """The callbacks received so far, once `count` arrived or the timeout passed."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
