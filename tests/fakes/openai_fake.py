#!/usr/bin/env python3
"""A local fake of the OpenAI API (chat completions, embeddings), for souk's tests.

OpenAI is a cloud API that cannot run on the test machines, so souk's LLM agent,
its intent classifier and its cloud embedder are tested against this stand-in.
It follows OpenAI's *documented* contract (the API reference for
POST /v1/chat/completions and POST /v1/embeddings), not any knowledge of how the
real service works inside; it plays a *scripted* model, it does not think.

  Authorization: Bearer <key> is required (--key, default sk-test): a missing or
  wrong key -> 401 {"error": {"message", "type": "invalid_request_error",
  "param": null, "code": "invalid_api_key"}}. Every error uses that shape.

  POST {prefix}/chat/completions  (prefix: anything, e.g. /v1)
      checked as documented: model (string), messages (non-empty array; role
      system|user|assistant|tool; a tool message's tool_call_id must answer a
      tool call of an earlier assistant message), tools ([{type: function,
      function: {name, description?, parameters?}}]), tool_choice ("none" |
      "auto" | "required" | {type: function, function: {name}}; needs tools
      unless "none"), response_format ({type: text | json_object |
      json_schema, json_schema: {name, schema, strict?}}) -> 400 otherwise.
      Answer: {id, object: "chat.completion", created, model, choices: [{index:
      0, message: {role: assistant, content, tool_calls?}, finish_reason:
      "stop" | "tool_calls"}], usage: {prompt_tokens, completion_tokens,
      total_tokens}}; a tool call is {id: "call_…", type: "function",
      function: {name, arguments: JSON text}}. With tool_choice "none" no tool
      call is made; a request with response_format json_schema gets content that
      is JSON valid against the schema's enum (structured output).
  POST {prefix}/embeddings
      model, input (a string or an array of strings, none empty), dimensions
      (optional; text-embedding-3-* only), encoding_format float. Answer:
      {object: "list", data: [{object: "embedding", index, embedding}], model,
      usage: {prompt_tokens, total_tokens}}; vectors are deterministic (a hash
      of the text's words), unit length, 1536 wide unless dimensions says.

Scripted behaviour (test control, not OpenAI's; no auth):
  POST /_fake/script  {"rules": [...]} replaces the script. A request takes the
      first rule that matches it while the rule's "times" lasts (default 1, -1
      for ever). Matchers: "kind": "chat" (no response_format) | "classify"
      (response_format json_schema) | "embeddings"; "contains": a substring of
      the last user message (chat) or of any input (embeddings). Actions:
        {"status": 429|500|…, "retry_after": 1}   an error answer
        {"delay_ms": 3000}                           answer late (a time-out)
        {"malformed": true}                          200 with a body that is not JSON
        {"raw": "text"}                              200 with exactly this body
        {"tool_calls": [{"name": n, "arguments": {...} | "text"}]}
        {"content": "text"}   "{tool.FIELD}" is replaced by FIELD of the latest
                              tool result in the request ("{tool.order_id}")
        {"intent": "place_order"}                    the classification
        {"wrong_dims": true}                         embeddings one number short
      A rule may combine a delay with another action.
  Without a rule: chat answers "How can I help?"; classify answers
      {"intent": "general"}; embeddings are computed.
  GET  /_fake/requests   {"requests": [{path, kind, body, authorised, ts}...]}
  POST /_fake/reset      forget requests and script.

python3 standard library only. Listens on 127.0.0.1, port 0 (or --port); prints
the chosen port as the first line of stdout.
"""

import argparse
import hashlib
import json
import math
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

from fakeserve import serve

DEFAULT_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                "text-embedding-ada-002": 1536}
ROLES = {"system", "user", "assistant", "tool", "developer"}


class BadRequest(Exception):
    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param


class State:
    def __init__(self, key):
        self.key = key
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.rules = []
        self.requests = []

    def take_rule(self, kind, text):
        with self.lock:
            for rule in self.rules:
                if rule.get("times", 1) == 0:
                    continue
                if rule.get("kind", kind) != kind:
                    continue
                if "contains" in rule and rule["contains"] not in text:
                    continue
                if rule.get("times", 1) > 0:
                    rule["times"] = rule.get("times", 1) - 1
                return rule
        return None


def tokens(text):
    return max(1, len(text) // 4)


def check_chat(req):
    if not isinstance(req.get("model"), str) or not req["model"]:
        raise BadRequest("you must provide a model parameter", "model")
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("'messages' must be a non-empty array", "messages")
    asked = set()
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadRequest("invalid role in messages[%d]" % i, "messages[%d].role" % i)
        if m["role"] == "assistant":
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                if c.get("type") != "function" or not c.get("id") or \
                        not isinstance(fn.get("name"), str) or \
                        not isinstance(fn.get("arguments"), str):
                    raise BadRequest("invalid tool call in messages[%d]" % i)
                asked.add(c["id"])
            if m.get("content") is None and not m.get("tool_calls"):
                raise BadRequest("messages[%d]: content or tool_calls required" % i)
        elif m["role"] == "tool":
            if m.get("tool_call_id") not in asked:
                raise BadRequest("messages with role 'tool' must be a response to a "
                                 "preceeding message with 'tool_calls'.", "messages[%d]" % i)
            if not isinstance(m.get("content"), str):
                raise BadRequest("messages[%d].content must be a string" % i)
        elif not isinstance(m.get("content"), str):
            raise BadRequest("messages[%d].content must be a string" % i)
    tools = req.get("tools")
    names = set()
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            raise BadRequest("'tools' must be a non-empty array", "tools")
        for t in tools:
            fn = t.get("function") if isinstance(t, dict) else None
            if t.get("type") != "function" or not isinstance(fn, dict) or \
                    not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", fn.get("name", "")):
                raise BadRequest("invalid tool", "tools")
            if "parameters" in fn and not isinstance(fn["parameters"], dict):
                raise BadRequest("tool parameters must be a JSON schema object", "tools")
            names.add(fn["name"])
    choice = req.get("tool_choice")
    if choice is not None:
        if isinstance(choice, dict):
            if choice.get("type") != "function" or \
                    (choice.get("function") or {}).get("name") not in names:
                raise BadRequest("invalid tool_choice", "tool_choice")
        elif choice not in ("none", "auto", "required"):
            raise BadRequest("invalid tool_choice", "tool_choice")
        elif choice != "none" and not names:
            raise BadRequest("tool_choice is only allowed when 'tools' are specified",
                             "tool_choice")
    fmt = req.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object",
                                                                "json_schema"):
            raise BadRequest("invalid response_format", "response_format")
        if fmt["type"] == "json_schema":
            js = fmt.get("json_schema") or {}
            if not isinstance(js.get("name"), str) or not isinstance(js.get("schema"), dict):
                raise BadRequest("response_format.json_schema needs name and schema",
                                 "response_format")
    return names


def last_user(msgs):
    for m in reversed(msgs):
        if m.get("role") == "user":
            return m.get("content") or ""
    return ""


def last_tool_result(msgs):
    for m in reversed(msgs):
        if m.get("role") == "tool":
            try:
                return json.loads(m["content"])
            except ValueError:
                return {}
    return {}


def fill(template, msgs):
    result = last_tool_result(msgs)

    def field(match):
        v = result.get(match.group(1)) if isinstance(result, dict) else None
        if isinstance(v, float):
            return "%.2f" % v
        return "" if v is None else str(v)
    return re.sub(r"\{tool\.([A-Za-z_]+)\}", field, template)


def embed(text, dims):
    v = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        h = hashlib.sha256(word.encode()).digest()
        for k in range(4):
            i = int.from_bytes(h[4 * k:4 * k + 4], "little") % dims
            v[i] += 1.0 if h[16 + k] & 1 else -1.0
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [round(x / n, 6) for x in v]


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "openai-fake/1.0"

        def log_message(self, fmt, *args):   # quiet: tests read stdout
            pass

        def send(self, status, body, headers=None, ctype="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass    # the client gave up waiting (a time-out test)

        def error(self, status, message, etype="invalid_request_error", code=None,
                  param=None, headers=None):
            self.send(status, {"error": {"message": message, "type": etype, "param": param,
                                         "code": code}}, headers)

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self):
            if self.path == "/_fake/requests":
                with state.lock:
                    self.send(200, {"requests": list(state.requests)})
            else:
                self.error(404, "Invalid URL (GET %s)" % self.path)

        def do_POST(self):
            raw = self.read_body()
            if self.path == "/_fake/script":
                with state.lock:
                    state.rules = json.loads(raw or b"{}").get("rules", [])
                self.send(200, {"ok": True})
                return
            if self.path == "/_fake/reset":
                with state.lock:
                    state.reset()
                self.send(200, {"ok": True})
                return
            if self.path.endswith("/chat/completions"):
                kind = "chat"
            elif self.path.endswith("/embeddings"):
                kind = "embeddings"
            else:
                self.error(404, "Invalid URL (POST %s)" % self.path)
                return
            auth = self.headers.get("Authorization", "")
            authorised = auth == "Bearer " + state.key
            try:
                req = json.loads(raw)
            except ValueError:
                req = None
            if kind == "chat" and isinstance(req, dict) and \
                    (req.get("response_format") or {}).get("type") == "json_schema":
                kind = "classify"
            with state.lock:
                state.requests.append({"path": self.path, "kind": kind, "body": req,
                                       "authorised": authorised, "ts": time.time()})
            if not authorised:
                self.error(401, "Incorrect API key provided.", code="invalid_api_key")
                return
            if not isinstance(req, dict):
                self.error(400, "We could not parse the JSON body of your request.")
                return
            try:
                if kind == "embeddings":
                    self.embeddings(req)
                else:
                    self.chat(req, kind)
            except BadRequest as e:
                self.error(400, str(e), param=e.param)

        def act_common(self, rule):
            """Delay, error and malformed answers; True when answered."""
            if rule is None:
                return False
            if rule.get("delay_ms"):
                time.sleep(rule["delay_ms"] / 1000.0)
            if rule.get("status"):
                headers = {}
                if "retry_after" in rule:
                    headers["Retry-After"] = str(rule["retry_after"])
                etype = "rate_limit_exceeded" if rule["status"] == 429 else "server_error"
                self.error(rule["status"], "scripted %d" % rule["status"], etype=etype,
                           headers=headers)
                return True
            if "raw" in rule:
                self.send(200, rule["raw"].encode())
                return True
            if rule.get("malformed"):
                self.send(200, b'{"id": "chatcmpl-x", "choices": [ {"message": ', )
                return True
            return False

        def chat(self, req, kind):
            names = check_chat(req)
            msgs = req["messages"]
            text = last_user(msgs)
            rule = state.take_rule(kind, text)
            if self.act_common(rule):
                return
            rule = rule or {}
            message = {"role": "assistant", "content": None}
            finish = "stop"
            if kind == "classify":
                schema = req["response_format"]["json_schema"]["schema"]
                allowed = (((schema.get("properties") or {}).get("intent") or {})
                           .get("enum") or ["general"])
                intent = rule.get("intent", "general")
                if intent not in allowed:
                    intent = allowed[-1]
                message["content"] = json.dumps({"intent": intent})
            elif rule.get("tool_calls") and req.get("tool_choice") != "none":
                calls = []
                for c in rule["tool_calls"]:   # a scripted model may name any tool
                    args = c.get("arguments", {})
                    calls.append({"id": "call_" + secrets.token_hex(8), "type": "function",
                                  "function": {"name": c["name"],
                                               "arguments": args if isinstance(args, str)
                                               else json.dumps(args)}})
                message["tool_calls"] = calls
                finish = "tool_calls"
            else:
                message["content"] = fill(rule.get("content", "How can I help?"), msgs)
            prompt = sum(tokens(m.get("content") or "") for m in msgs)
            out = tokens(message["content"] or json.dumps(message.get("tool_calls")))
            self.send(200, {"id": "chatcmpl-" + secrets.token_hex(12),
                            "object": "chat.completion", "created": int(time.time()),
                            "model": req["model"],
                            "choices": [{"index": 0, "message": message, "logprobs": None,
                                         "finish_reason": finish}],
                            "usage": {"prompt_tokens": prompt, "completion_tokens": out,
                                      "total_tokens": prompt + out}})

        def embeddings(self, req):
            model = req.get("model")
            inp = req.get("input")
            if not isinstance(model, str) or not model:
                raise BadRequest("you must provide a model parameter", "model")
            if isinstance(inp, str):
                inp = [inp]
            if not isinstance(inp, list) or not inp or len(inp) > 2048 or \
                    not all(isinstance(s, str) and s for s in inp):
                raise BadRequest("'input' must be a non-empty string or array of "
                                 "non-empty strings (at most 2048)", "input")
            dims = DEFAULT_DIMS.get(model, 1536)
            if "dimensions" in req:
                if not model.startswith("text-embedding-3") or \
                        not isinstance(req["dimensions"], int) or \
                        not 1 <= req["dimensions"] <= dims:
                    raise BadRequest("invalid dimensions", "dimensions")
                dims = req["dimensions"]
            rule = state.take_rule("embeddings", "\n".join(inp))
            if self.act_common(rule):
                return
            rule = rule or {}
            data = []
            for i, s in enumerate(inp):
                v = embed(s, dims)
                if rule.get("wrong_dims"):
                    v = v[:-1]
                data.append({"object": "embedding", "index": i, "embedding": v})
            n = sum(tokens(s) for s in inp)
            self.send(200, {"object": "list", "data": data, "model": model,
                            "usage": {"prompt_tokens": n, "total_tokens": n}})

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", default="sk-test")
    args = ap.parse_args()
    state = State(args.key)
    serve(make_handler(state), args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
