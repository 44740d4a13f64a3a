#!/usr/bin/env python3
"""A local fake of OpenAI's audio transcription API, for souk's tests.

OpenAI cannot be reached from the test machines. This stand-in follows the
documented contract of POST /v1/audio/transcriptions (OpenAI's API reference,
"Create transcription"), not any knowledge of the service's internals:

  POST /v1/audio/transcriptions
      Authorization: Bearer KEY; a wrong or missing key -> 401
        {"error": {"message", "type": "invalid_request_error", "param": null,
                   "code": "invalid_api_key"}}
      multipart/form-data with the fields file (required, with a filename),
      model (required; here only whisper-1 exists: another -> 400
      model_not_found), language, prompt, response_format (json default,
      text, verbose_json; others -> 400), temperature.
      json -> {"text": ...}; text -> the text as text/plain;
      verbose_json -> {"task": "transcribe", "language": "english",
                       "duration": seconds, "text": ..., "segments": [...]}
      An empty file -> 400 ("Audio file is too short").

The transcript is scripted: --text (default "show me running shoes"), or
POST /_fake/script {"text": ..., "status": 500 (optional, once)}.
GET /_fake/log -> {"requests": [{"model", "response_format", "filename",
"content_type", "bytes", "auth"}...]}.

python3 standard library only. Listens on 127.0.0.1, port 0 (or --port);
prints the chosen port as the first line of stdout.
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler

from fakeserve import serve

LOG = []
LOCK = threading.Lock()
STATE = {"text": "show me running shoes", "status": None}
ARGS = None


def parse_multipart(body, ctype):
    """{name: (filename or None, content type or None, bytes)} of a form."""
    boundary = None
    for part in ctype.split(";"):
        part = part.strip()
        if part.startswith("boundary="):
            boundary = part[9:].strip('"')
    if not boundary:
        return None
    fields = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, data = chunk.partition(b"\r\n\r\n")
        data = data[:-2] if data.endswith(b"\r\n") else data
        name = filename = ptype = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            low = line.lower()
            if low.startswith("content-disposition:"):
                for item in line.split(";")[1:]:
                    k, _, v = item.strip().partition("=")
                    if k == "name":
                        name = v.strip('"')
                    elif k == "filename":
                        filename = v.strip('"')
            elif low.startswith("content-type:"):
                ptype = line.split(":", 1)[1].strip()
        if name:
            fields[name] = (filename, ptype, data)
    return fields


def error(status, message, code, param=None):
    return status, json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                         "param": param, "code": code}})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_fake/log":
            with LOCK:
                return self._send(200, json.dumps({"requests": LOG}))
        self._send(404, "{}")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        if self.path == "/_fake/script":
            doc = json.loads(body or b"{}")
            with LOCK:
                STATE["text"] = doc.get("text", STATE["text"])
                STATE["status"] = doc.get("status")
            return self._send(200, "{}")
        if self.path != "/v1/audio/transcriptions":
            return self._send(404, "{}")
        self._send(*self._transcribe(body))

    def _transcribe(self, body):
        auth_ok = self.headers.get("Authorization") == f"Bearer {ARGS.api_key}"
        fields = parse_multipart(body, self.headers.get("Content-Type", "")) or {}
        field = lambda k: fields[k][2].decode() if k in fields else None
        entry = {"model": field("model"), "response_format": field("response_format"),
                 "filename": fields.get("file", (None,))[0],
                 "content_type": fields.get("file", (None, None))[1],
                 "bytes": len(fields["file"][2]) if "file" in fields else 0, "auth": auth_ok}
        with LOCK:
            LOG.append(entry)
            status, STATE["status"] = STATE["status"], None
            text = STATE["text"]
        if not auth_ok:
            return 401, json.dumps({"error": {"message": "Incorrect API key provided.",
                                              "type": "invalid_request_error", "param": None,
                                              "code": "invalid_api_key"}})
        if status:
            return status, json.dumps({"error": {"message": "The server had an error",
                                                 "type": "server_error", "param": None,
                                                 "code": None}})
        if "file" not in fields or not fields["file"][0]:
            return error(400, "you must provide a file", None, "file")
        if entry["model"] is None:
            return error(400, "you must provide a model parameter", None, "model")
        if entry["model"] != "whisper-1":
            return error(400, f"The model `{entry['model']}` does not exist", "model_not_found",
                         "model")
        if not fields["file"][2]:
            return error(400, "Audio file is too short. Minimum audio length is 0.1 seconds.",
                         "audio_too_short", "file")
        fmt = entry["response_format"] or "json"
        if fmt == "json":
            return 200, json.dumps({"text": text})
        if fmt == "text":
            return 200, text
        if fmt == "verbose_json":
            return 200, json.dumps({"task": "transcribe", "language": "english",
                                    "duration": 1.7, "text": text,
                                    "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 1.7,
                                                  "text": text}]})
        return error(400, f"Invalid response_format: {fmt}", None, "response_format")


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--api-key", default="sk-test-0123456789")
    p.add_argument("--text", default=STATE["text"])
    ARGS = p.parse_args()
    STATE["text"] = ARGS.text
    serve(Handler, ARGS.port)


if __name__ == "__main__":
    sys.exit(main())
