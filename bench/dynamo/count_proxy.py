#!/usr/bin/env python3
"""Counts DynamoDB requests on their way to dynalite (stdlib only).

A plain HTTP proxy in front of DYNAMODB's endpoint: every POST is forwarded
as is (the signature covers the Host header, which dynalite does not check)
and counted by its X-Amz-Target operation. GET /counts answers the counts as
JSON, GET /reset zeroes them. For the benchmark's "operations per turn":
what a node really sends, every actor included.
Usage: count_proxy.py LISTEN_PORT UPSTREAM_PORT
"""
import http.client, http.server, json, sys, threading

listen, upstream = int(sys.argv[1]), int(sys.argv[2])
counts, lock = {}, threading.Lock()
local = threading.local()


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        with lock:
            body = json.dumps(counts).encode()
            if self.path == "/reset":
                counts.clear()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        op = self.headers.get("X-Amz-Target", "?").split(".")[-1]
        with lock:
            counts[op] = counts.get(op, 0) + 1
        for attempt in (0, 1):
            # dynalite closes idle keep-alive connections: reconnect once
            if attempt or not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection("127.0.0.1", upstream)
            try:
                local.conn.request("POST", "/", body, dict(self.headers))
                r = local.conn.getresponse()
                data = r.read()
                break
            except (OSError, http.client.HTTPException):
                local.conn.close()
                if attempt:
                    raise
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


http.server.ThreadingHTTPServer(("127.0.0.1", listen), Proxy).serve_forever()
