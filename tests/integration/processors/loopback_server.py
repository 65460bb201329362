"""A threaded HTTP server on 127.0.0.1 for the fake processors: each POST goes to a
function that gives the status, extra headers and JSON body of the answer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# (request path, request headers with lower-case names, body) -> (status, headers, body)
Responder = Callable[[str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class LoopbackServer:
    """Answers every POST with `respond(...)`, as `application/json`; `url` names
    `route` on the server's port (picked by the kernel)."""

    def __init__(self, respond: Responder, route: str) -> None:
        self.route = route

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, payload = respond(self.path, headers, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: tests read the fake's state, not an access log

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{self.route}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
