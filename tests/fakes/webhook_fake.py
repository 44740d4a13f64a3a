#!/usr/bin/env python3
"""A tiny HTTP server playing the merchant's webhook receiver, for souk's tests.

Every request other than the control ones below is recorded (method, path,
headers with lower-case names, body, time) and answered with the next status
of the script (default 200) and a small JSON body.

Test control (no auth):
  GET  /_fake/requests   {"requests": [...]} in arrival order
  POST /_fake/script     JSON {"statuses": [503, 200]}: the statuses the next
                         requests get, in order; afterwards 200 again
  POST /_fake/reset      forget requests and script

python3 standard library only. Listens on 127.0.0.1, port 0 (or --port);
prints the chosen port as the first line of stdout.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

from fakeserve import serve


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.statuses = []


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "webhook-fake/1.0"
        wbufsize = -1
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            pass

        def reply(self, status, doc):
            data = json.dumps(doc).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n > 0 else b""

        def handle_any(self, method):
            body = self.body()
            if self.path == "/_fake/requests" and method == "GET":
                with state.lock:
                    return self.reply(200, {"requests": state.requests})
            if self.path == "/_fake/reset" and method == "POST":
                with state.lock:
                    state.requests, state.statuses = [], []
                return self.reply(200, {})
            if self.path == "/_fake/script" and method == "POST":
                with state.lock:
                    state.statuses = list(json.loads(body or b"{}").get("statuses", []))
                return self.reply(200, {})
            with state.lock:
                state.requests.append({
                    "method": method,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                    "ts": time.time(),
                })
                status = state.statuses.pop(0) if state.statuses else 200
            self.reply(status, {"ok": 200 <= status < 300})

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    serve(make_handler(State()), args.port)


if __name__ == "__main__":
    sys.exit(main())
