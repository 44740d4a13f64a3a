#!/usr/bin/env python3
"""A local fake of Twilio's media hosting, for souk's media download tests.

Twilio cannot be reached from the test machines. This stand-in follows
Twilio's documented contract for message media (the "Media download" part of
shared/twilio.md, Twilio's Media resource reference and its "Protect media
access with HTTP Basic authentication" article), not Twilio's internals:

  GET /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}
      HTTP Basic auth (AccountSid:AuthToken) checked: wrong or missing -> 401
      with Twilio's error JSON (code 20003). Then 307 to a short-lived CDN URL
      on another host: http://{cdn_host}:{port}/cdn/{MediaSid}?Expires=...
      (the real CDN is mms.twiliocdn.com; here a second name of this server,
      "localhost" when the first was 127.0.0.1, so the client sees a different
      host and must not send the credentials there).
  GET /cdn/{MediaSid}
      the file {dir}/{MediaSid} with its Content-Type (by extension: .ogg
      audio/ogg, .jpg image/jpeg, else application/octet-stream); 404 if
      absent. A request carrying an Authorization header is recorded as such
      (the test asserts none does).

  POST /2010-04-01/Accounts/{AccountSid}/Messages.json
      the outbound message API, only as far as souk's sender needs it for the
      end-to-end voice test (the full contract is tests/fakes/twilio_fake.py's):
      Basic auth checked (401/20003), form fields recorded, 201 with the
      Message resource (sid "SM" + 32 hex, status "queued", to, from, body).

Test control (not Twilio's):
  GET /_fake/messages?count=N&timeout_ms=T
                                 {"messages": [{"To", "From", "Body"}...]},
                                 once at least N are there (or T has passed)
  GET /big?bytes=N[&chunked=1]  N bytes, with Content-Length or chunked
                                 without it (the size cap tests)
  GET /redirect?to=URL           307 to URL (the allow-list tests)
  GET /slow?ms=N                 answers after N ms (the timeout tests)
  GET /_fake/log                 {"requests": [{"path", "host", "auth"}...]}
  POST /_fake/reset              forgets the log

python3 standard library only. Listens on 127.0.0.1, port 0 (or --port);
prints the chosen port as the first line of stdout.
"""
import argparse
import base64
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from fakeserve import serve

LOG = []
LOCK = threading.Lock()
MESSAGES = []
ARRIVED = threading.Condition(LOCK)
ARGS = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, status, body=b"", ctype="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _record(self, path):
        with LOCK:
            LOG.append({"path": path, "host": self.headers.get("Host", ""),
                        "auth": self.headers.get("Authorization") is not None})

    def do_POST(self):
        parts = urlparse(self.path).path.strip("/").split("/")
        if len(parts) == 4 and parts[1] == "Accounts" and parts[3] == "Messages.json":
            return self._message(parts[2])
        if self.path == "/_fake/reset":
            with LOCK:
                LOG.clear()
            return self._send(200, b"{}")
        self._send(404, b"{}")

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        if url.path == "/_fake/messages":
            want = int(q.get("count", ["0"])[0])
            deadline = time.time() + int(q.get("timeout_ms", ["0"])[0]) / 1000.0
            with ARRIVED:
                while len(MESSAGES) < want and time.time() < deadline:
                    ARRIVED.wait(deadline - time.time())
                return self._send(200, json.dumps({"messages": MESSAGES}).encode())
        if url.path == "/_fake/log":
            with LOCK:
                return self._send(200, json.dumps({"requests": LOG}).encode())
        self._record(url.path)
        if len(parts) == 7 and parts[0] == "2010-04-01" and parts[1] == "Accounts" \
                and parts[3] == "Messages" and parts[5] == "Media":
            return self._media(parts[2], parts[6])
        if len(parts) == 2 and parts[0] == "cdn":
            return self._cdn(parts[1])
        if url.path == "/big":
            return self._big(int(q.get("bytes", ["0"])[0]), q.get("chunked", ["0"])[0] == "1")
        if url.path == "/redirect":
            return self._send(307, b"", headers={"Location": q["to"][0]})
        if url.path == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000.0)
            return self._send(200, b"late", "text/plain")
        self._send(404, b'{"code": 20404, "message": "not found", "status": 404}')

    def _authorized(self, account):
        want = "Basic " + base64.b64encode(
            f"{ARGS.account_sid}:{ARGS.auth_token}".encode()).decode()
        if account == ARGS.account_sid and self.headers.get("Authorization") == want:
            return True
        body = json.dumps({"code": 20003, "message": "Authenticate",
                           "more_info": "https://www.twilio.com/docs/errors/20003",
                           "status": 401}).encode()
        self._send(401, body, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
        return False

    def _message(self, account):
        n = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
        if not self._authorized(account):
            return
        sid = "SM" + uuid.uuid4().hex
        with ARRIVED:
            MESSAGES.append(form)
            ARRIVED.notify_all()
        body = {"sid": sid, "account_sid": account, "status": "queued", "to": form.get("To"),
                "from": form.get("From"), "body": form.get("Body", ""), "error_code": None,
                "error_message": None, "num_segments": "1", "direction": "outbound-api"}
        self._send(201, json.dumps(body).encode())

    def _media(self, account, media_sid):
        if not self._authorized(account):
            return
        host = self.headers.get("Host", "")
        port = host.rsplit(":", 1)[1] if ":" in host else "80"
        cdn = "localhost" if host.startswith("127.") else "127.0.0.1"
        expires = int(time.time()) + 4 * 3600
        loc = f"http://{cdn}:{port}/cdn/{media_sid}?Expires={expires}&Signature=fake"
        self._send(307, b"", headers={"Location": loc})

    def _cdn(self, name):
        path = os.path.join(ARGS.dir, os.path.basename(name))
        if not os.path.isfile(path):
            return self._send(404, b"")
        with open(path, "rb") as f:
            data = f.read()
        ext = os.path.splitext(path)[1]
        ctype = {".ogg": "audio/ogg", ".jpg": "image/jpeg"}.get(ext, "application/octet-stream")
        self._send(200, data, ctype)

    def _big(self, n, chunked):
        block = b"x" * 65536
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(n))
        self.end_headers()
        try:
            left = n
            while left > 0:
                b = block[:min(left, len(block))]
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                else:
                    self.wfile.write(b)
                left -= len(b)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a client that cuts a transfer (the size cap) is expected here
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", default=".")
    p.add_argument("--account-sid", default="AC00000000000000000000000000000000")
    p.add_argument("--auth-token", default="0123456789abcdef0123456789abcdef")
    ARGS = p.parse_args()
    serve(Handler, ARGS.port, Server)


if __name__ == "__main__":
    sys.exit(main())
