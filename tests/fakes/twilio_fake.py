#!/usr/bin/env python3
"""A local fake of Twilio's Programmable Messaging REST API, for souk's tests.

Twilio cannot be reached from the test machines, so the sender is tested
against this stand-in. It follows Twilio's *documented* contract (the
"Outbound REST" section of shared/twilio.md and Twilio's Message resource
reference), not any knowledge of Twilio's internals:

  POST /2010-04-01/Accounts/{AccountSid}/Messages.json
      form-urlencoded body; HTTP Basic auth (AccountSid:AuthToken) checked:
      wrong or missing -> 401 {code: 20003, message, more_info, status}.
      Fields: To, From, Body | ContentSid (+ ContentVariables), StatusCallback.
      Success -> 201 with the Message resource: sid ("SM" + 32 hex), status
      "queued", to, from, body, error_code null, error_message null, ...
      Validation as documented: To missing 21604, From missing 21603, neither
      Body nor ContentSid 21602, To not a WhatsApp address 21211, Body over
      1600 characters 21617 (all 400 with the error JSON).
  GET  /2010-04-01/Accounts/{AccountSid}/Messages.json?To=&From=&DateSent=&PageSize=
      the documented list: newest first, filters To, From, DateSent (also
      DateSent< and DateSent> for on-or-before / on-or-after a GMT date),
      PageSize (default 50, max 1000); one page, next_page_uri null.
  GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   fetch one.

Test control (not Twilio's; no auth):
  GET  /_fake/messages   {"messages": [accepted...], "attempts": [every POST]}
                         each with "ts" (float epoch seconds) and the form
                         fields as sent.
  POST /_fake/script     JSON {"rules": [...]} replaces the script. A rule is
                         used by the next matching POST (after the auth check)
                         while its "times" (default 1, -1 for ever) lasts:
                           {"status": 429, "code": 20429, "retry_after": 1}
                           {"status": 500}            (no error JSON code needed)
                           {"status": 400, "code": 21211, "message": "..."}
                           {"delay_ms": 2000}         accept and record at once,
                                                      answer only after the delay
                         optional matchers: "to" (exact), "body_prefix".
  POST /_fake/reset      forget messages, attempts and script.

python3 standard library only. Listens on 127.0.0.1, port 0 (or --port);
prints the chosen port as the first line of stdout.
"""

import argparse
import base64
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from fakeserve import serve

BODY_MAX_CHARS = 1600

ERRORS = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    63003: "Channel could not find To address",
    63014: "Message could not be delivered: blocked by the end user",
    63016: "Failed to send freeform message because you are outside the allowed window. "
           "If you are using WhatsApp, please use a Message Template.",
    63018: "Rate limit exceeded for Channel",
}


def rfc2822(ts):
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(ts))


class State:
    def __init__(self, account_sid, auth_token):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.messages = []   # accepted Message resources (plus "ts" and "form")
        self.attempts = []   # every POST that reached us
        self.rules = []

    def take_rule(self, form):
        for rule in self.rules:
            if rule.get("times", 1) == 0:
                continue
            if "to" in rule and form.get("To") != rule["to"]:
                continue
            if "body_prefix" in rule and not form.get("Body", "").startswith(rule["body_prefix"]):
                continue
            if rule.get("times", 1) > 0:
                rule["times"] = rule.get("times", 1) - 1
            return dict(rule)
        return None


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"   # keep-alive: the sender reuses connections
        server_version = "twilio-fake/1.0"
        # One write per response and no Nagle: headers and body written
        # apart would otherwise meet the client's delayed ACK (~40 ms each).
        wbufsize = -1
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):   # quiet: tests read stdout
            pass

        # ---- replies ----------------------------------------------------
        def reply(self, status, doc, headers=None):
            data = json.dumps(doc).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass   # the client went away (a killed sender): nothing to do

        def error(self, status, code, message=None, headers=None):
            doc = {
                "code": code,
                "message": message or ERRORS.get(code, "Error"),
                "more_info": "https://www.twilio.com/docs/errors/%d" % code,
                "status": status,
            }
            self.reply(status, doc, headers)

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n > 0 else b""

        def account_path(self, path):
            """'/2010-04-01/Accounts/{sid}/rest' -> (sid, rest) or (None, None)."""
            parts = path.split("/")
            if len(parts) < 5 or parts[1] != "2010-04-01" or parts[2] != "Accounts":
                return None, None
            return parts[3], "/".join(parts[4:])

        def authorised(self, sid):
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Basic "):
                return False
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                return False
            return (user == state.account_sid and password == state.auth_token
                    and sid == state.account_sid)

        # ---- routes ------------------------------------------------------
        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/_fake/messages":
                with state.lock:
                    self.reply(200, {"messages": state.messages, "attempts": state.attempts})
                return
            sid, rest = self.account_path(url.path)
            if sid is None:
                return self.error(404, 20404)
            if not self.authorised(sid):
                return self.error(401, 20003, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
            if rest == "Messages.json":
                return self.list_messages(sid, parse_qs(url.query, keep_blank_values=True))
            if rest.startswith("Messages/") and rest.endswith(".json"):
                msid = rest[len("Messages/"):-len(".json")]
                with state.lock:
                    found = [m for m in state.messages if m["sid"] == msid]
                if found:
                    return self.reply(200, public(found[0]))
            return self.error(404, 20404)

        def do_POST(self):
            url = urlsplit(self.path)
            raw = self.read_body()
            if url.path == "/_fake/script":
                doc = json.loads(raw or b"{}")
                with state.lock:
                    state.rules = doc.get("rules", [])
                return self.reply(200, {"ok": True})
            if url.path == "/_fake/reset":
                with state.lock:
                    state.reset()
                return self.reply(200, {"ok": True})
            sid, rest = self.account_path(url.path)
            if sid is None or rest != "Messages.json":
                return self.error(404, 20404)
            self.create_message(sid, raw)

        def create_message(self, sid, raw):
            fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
            form = {k: v[0] for k, v in fields.items()}
            auth_ok = self.authorised(sid)
            now = time.time()
            with state.lock:
                state.attempts.append({"ts": now, "auth_ok": auth_ok, "form": form})
                rule = state.take_rule(form) if auth_ok else None
            if not auth_ok:
                return self.error(401, 20003, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
            if rule and "status" in rule:
                headers = {}
                if "retry_after" in rule:
                    headers["Retry-After"] = str(rule["retry_after"])
                if rule.get("code"):
                    return self.error(rule["status"], rule["code"], rule.get("message"), headers)
                return self.reply(rule["status"], {"status": rule["status"], "message": "scripted"}, headers)
            to, frm = form.get("To", ""), form.get("From", "")
            body, content_sid = form.get("Body"), form.get("ContentSid")
            if not to:
                return self.error(400, 21604)
            if not frm:
                return self.error(400, 21603)
            if not body and not content_sid:
                return self.error(400, 21602)
            if not to.startswith("whatsapp:+") or not to[len("whatsapp:+"):].isdigit():
                return self.error(400, 21211)
            if body is not None and len(body) > BODY_MAX_CHARS:
                return self.error(400, 21617)
            msid = "SM" + secrets.token_hex(16)
            msg = {
                "account_sid": state.account_sid,
                "api_version": "2010-04-01",
                "body": body if body is not None else "",
                "date_created": rfc2822(now),
                "date_sent": None,
                "date_updated": rfc2822(now),
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": frm,
                "messaging_service_sid": None,
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": msid,
                "status": "queued",
                "subresource_uris": {
                    "media": "/2010-04-01/Accounts/%s/Messages/%s/Media.json" % (sid, msid)},
                "to": to,
                "uri": "/2010-04-01/Accounts/%s/Messages/%s.json" % (sid, msid),
                # fake-only bookkeeping, hidden from the API views by public()
                "ts": now,
                "form": form,
            }
            with state.lock:
                state.messages.append(msg)
            if rule and "delay_ms" in rule:
                time.sleep(rule["delay_ms"] / 1000.0)
            self.reply(201, public(msg))

        def list_messages(self, sid, query):
            def one(name):
                return query[name][0] if name in query else None
            to, frm = one("To"), one("From")
            try:
                page_size = min(max(int(one("PageSize") or 50), 1), 1000)
            except ValueError:
                return self.error(400, 20001, "Invalid PageSize")
            # "DateSent>=2024-01-02" arrives as name "DateSent>" value "2024-01-02"
            # (the '=' of the inequality is the query's own '=').
            date_filters = [(k, v[0]) for k, v in query.items() if k.startswith("DateSent")]
            with state.lock:
                found = []
                for m in reversed(state.messages):   # newest first
                    if m["account_sid"] != sid:
                        continue
                    if to is not None and m["to"] != to:
                        continue
                    if frm is not None and m["from"] != frm:
                        continue
                    day = time.strftime("%Y-%m-%d", time.gmtime(m["ts"]))
                    ok = True
                    for k, v in date_filters:
                        if k == "DateSent" and day != v or k == "DateSent<" and day > v \
                                or k == "DateSent>" and day < v:
                            ok = False
                    if ok:
                        found.append(sent_view(m))
                    if len(found) == page_size:
                        break
            base = "/2010-04-01/Accounts/%s/Messages.json" % sid
            self.reply(200, {
                "messages": found,
                "end": max(len(found) - 1, 0),
                "first_page_uri": base + "?PageSize=%d&Page=0" % page_size,
                "next_page_uri": None,
                "page": 0,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": 0,
                "uri": base + "?PageSize=%d&Page=0" % page_size,
            })

    return Handler


def public(msg):
    return {k: v for k, v in msg.items() if k not in ("ts", "form")}


def sent_view(msg):
    """The resource as a later read sees it: the fake hands every accepted
    message on at once, so it reads as sent."""
    view = public(msg)
    view["status"] = "sent"
    view["date_sent"] = msg["date_created"]
    return view


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--account-sid", default="AC" + "0" * 32)
    ap.add_argument("--auth-token", default="fake-auth-token")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    state = State(args.account_sid, args.auth_token)
    ThreadingHTTPServer.request_queue_size = 128   # the sender opens many connections at once
    serve(make_handler(state), args.port)


if __name__ == "__main__":
    sys.exit(main())
