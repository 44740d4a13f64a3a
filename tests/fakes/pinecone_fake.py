#!/usr/bin/env python3
"""A local fake of Pinecone's REST data-plane API, for souk's tests.

Pinecone is a cloud service with no local edition, so souk's Pinecone
vector store is tested against this stand-in. It follows Pinecone's
*documented* data-plane contract (docs.pinecone.io, "Upsert", "Query",
"Delete", "Fetch" of the data plane API reference, and "Filter by metadata"),
not any knowledge of Pinecone's internals:

  every request: header Api-Key must equal --api-key, else
      401 {"code": 16, "message": "Invalid API Key", "details": []}
  POST /vectors/upsert {"vectors": [{"id", "values", "metadata"?}], "namespace"?}
      at most 1000 vectors and 2 MB per request (400 otherwise); ids are
      non-empty strings; values a list of numbers of the index's dimension,
      not all zero; metadata an object of strings, numbers, booleans or lists
      of strings (null refused). -> 200 {"upsertedCount": n}
  POST /query {"vector", "topK", "namespace"?, "filter"?, "includeValues"?,
      "includeMetadata"?} -> 200 {"matches": [{"id", "score", "values"?,
      "metadata"?}], "namespace", "usage": {"readUnits"}}: exact top-k by
      cosine (the index metric here), best first. topK 1..10000. The filter
      language: {"field": value} (equality), {"field": {"$eq"|"$ne"|"$gt"|
      "$gte"|"$lt"|"$lte"|"$in"|"$nin"|"$exists": ...}}, "$and"/"$or": [...].
      A list-valued metadata field matches $eq/$in when any element does.
  POST /vectors/delete {"ids": [...] | "deleteAll": true | "filter", "namespace"?}
      at most 1000 ids; -> 200 {}; a namespace that does not exist -> 404
      {"code": 5, "message": "Namespace not found", "details": []}
  GET  /vectors/fetch?ids=a&ids=b&namespace=ns -> 200 {"vectors": {id: {"id",
      "values", "metadata"?}}, "namespace", "usage": {"readUnits"}}
  Errors are {"code", "message", "details"} (code 3 INVALID_ARGUMENT for 400).

The index's dimension is --dimension; with 0 (the default) the first upsert
into each namespace fixes that namespace's dimension (a relaxation so one fake
serves tests with several embedders; a real index has one dimension).

Test control (not Pinecone's; no auth):
  GET  /_fake/state    {"namespaces": {ns: vector count}, "requests": [{"method",
                       "path", "namespace", "count" (vectors or ids), "bytes",
                       "api_version", "status"}]}
  POST /_fake/script   {"rules": [...]}: a rule answers the next matching request
                       (after the auth check) while its "times" (default 1) lasts:
                         {"path": "/query", "status": 429}   (or 500, 503...)
                         {"path": "/query", "malformed": true}  200 with a body
                                                              that is not the shape
                         {"path": "/query", "delay_ms": 2000}  answer that late
  POST /_fake/reset    forget vectors, requests and script.

python3 standard library only. Listens on 127.0.0.1, port 0 (or --port);
prints the chosen port as the first line of stdout. Exits when the process
that started it is gone (a test that crashed must not leave it running,
holding the test runner's output open).
"""

import argparse
import json
import math
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from fakeserve import serve

UPSERT_MAX_VECTORS = 1000
REQUEST_MAX_BYTES = 2 * 1024 * 1024
DELETE_MAX_IDS = 1000
TOPK_MAX = 10000


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(message):
    return ApiError(400, 3, message)


class State:
    def __init__(self, api_key, dimension):
        self.api_key = api_key
        self.dimension = dimension
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.namespaces = {}      # ns -> {"dim": int, "vectors": {id: (values, norm, metadata)}}
        self.requests = []
        self.rules = []

    def take_rule(self, path):
        for rule in self.rules:
            if rule.get("path", path) == path and rule.get("times", 1) != 0:
                if rule.get("times", 1) > 0:
                    rule["times"] = rule.get("times", 1) - 1
                return rule
        return None


def check_values(values, dim, what):
    if not isinstance(values, list) or not values:
        raise invalid(f"{what}: values must be a non-empty list of numbers")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise invalid(f"{what}: values must be finite numbers")
    if dim and len(values) != dim:
        raise invalid(f"Vector dimension {len(values)} does not match the dimension of the index {dim}")
    if not any(values):
        raise invalid("Dense vectors must contain at least one non-zero value.")


def check_metadata(md, what):
    if md is None:
        return {}
    if not isinstance(md, dict):
        raise invalid(f"{what}: metadata must be an object")
    for k, v in md.items():
        ok = isinstance(v, (str, bool, int, float)) or (
            isinstance(v, list) and all(isinstance(x, str) for x in v))
        if not ok:
            raise invalid(f"{what}: metadata field {k} has an unsupported value type")
    return md


def compare(value, op, arg):
    if op == "$exists":
        return (value is not None) == bool(arg)
    if value is None:
        return op in ("$ne", "$nin")
    values = value if isinstance(value, list) else [value]
    if op == "$eq":
        return arg in values
    if op == "$ne":
        return arg not in values
    if op == "$in":
        if not isinstance(arg, list):
            raise invalid("$in needs a list")
        return any(v in arg for v in values)
    if op == "$nin":
        if not isinstance(arg, list):
            raise invalid("$nin needs a list")
        return all(v not in arg for v in values)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            raise invalid(f"{op} needs a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return {"$gt": value > arg, "$gte": value >= arg,
                "$lt": value < arg, "$lte": value <= arg}[op]
    raise invalid(f"unsupported filter operator {op}")


def matches(md, flt):
    if not isinstance(flt, dict):
        raise invalid("filter must be an object")
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(md, f) for f in cond):
                return False
        elif key == "$or":
            if not any(matches(md, f) for f in cond):
                return False
        elif key.startswith("$"):
            raise invalid(f"unsupported filter operator {key}")
        elif isinstance(cond, dict):
            for op, arg in cond.items():
                if not compare(md.get(key), op, arg):
                    return False
        elif not compare(md.get(key), "$eq", cond):
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True    # headers and body are two writes: no 40 ms stall
    state = None

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def handle_any(self, method):
        url = urlsplit(self.path)
        raw = self.read_body() if method == "POST" else b""
        st = self.state
        if url.path.startswith("/_fake/"):
            return self.control(method, url.path, raw)
        record = {"method": method, "path": url.path, "bytes": len(raw),
                  "api_version": self.headers.get("X-Pinecone-API-Version"),
                  "namespace": None, "count": 0}
        try:                          # for the record only; route() validates
            parsed = json.loads(raw) if raw else {}
            record["namespace"] = parsed.get("namespace", "") if isinstance(parsed, dict) else None
        except ValueError:
            pass
        if method == "GET":
            record["namespace"] = (parse_qs(url.query).get("namespace") or [""])[0]
        with st.lock:
            st.requests.append(record)
            try:
                if self.headers.get("Api-Key") != st.api_key:
                    raise ApiError(401, 16, "Invalid API Key")
                rule = st.take_rule(url.path)
                if rule and rule.get("delay_ms"):
                    delay = rule["delay_ms"] / 1000.0
                    st.lock.release()             # others are served meanwhile
                    try:
                        time.sleep(delay)
                    finally:
                        st.lock.acquire()
                if rule and rule.get("status"):
                    raise ApiError(rule["status"], 14 if rule["status"] >= 500 else 8,
                                   "scripted failure")
                if rule and rule.get("malformed"):
                    record["status"] = 200
                    return self.reply(200, raw=b'{"matches": [{"id": 7, "score": "high"}]}')
                status, obj = self.route(method, url, raw, record)
            except ApiError as e:
                status, obj = e.status, {"code": e.code, "message": e.message, "details": []}
            record["status"] = status
        self.reply(status, obj)

    def route(self, method, url, raw, record):
        if method == "GET" and url.path == "/vectors/fetch":
            q = parse_qs(url.query)
            return 200, self.fetch(q.get("ids", []), (q.get("namespace") or [""])[0], record)
        if method != "POST":
            raise ApiError(404, 5, "Not Found")
        if len(raw) > REQUEST_MAX_BYTES:
            raise invalid(f"Request size {len(raw)} bytes exceeds the 2 MB limit")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise invalid("the body is not JSON")
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        ns = body.get("namespace", "")
        if not isinstance(ns, str):
            raise invalid("namespace must be a string")
        record["namespace"] = ns
        if url.path == "/vectors/upsert":
            return 200, self.upsert(body, ns, record)
        if url.path == "/query":
            return 200, self.query(body, ns)
        if url.path == "/vectors/delete":
            return 200, self.delete(body, ns, record)
        raise ApiError(404, 5, "Not Found")

    def upsert(self, body, ns, record):
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise invalid("vectors must be a non-empty list")
        if len(vectors) > UPSERT_MAX_VECTORS:
            raise invalid(f"at most {UPSERT_MAX_VECTORS} vectors per upsert request")
        st = self.state
        space = st.namespaces.get(ns) or {"dim": st.dimension, "vectors": {}}
        staged = {}
        for i, v in enumerate(vectors):
            if not isinstance(v, dict) or not isinstance(v.get("id"), str) or not v["id"]:
                raise invalid(f"vectors[{i}]: id must be a non-empty string")
            values = v.get("values")
            check_values(values, space["dim"] or (len(values) if isinstance(values, list) else 0),
                         f"vectors[{i}]")
            if not space["dim"]:
                space["dim"] = len(values)
            md = check_metadata(v.get("metadata"), f"vectors[{i}]")
            norm = math.sqrt(sum(x * x for x in values))
            staged[v["id"]] = (values, norm, md)
        space["vectors"].update(staged)
        st.namespaces[ns] = space
        record["count"] = len(vectors)
        return {"upsertedCount": len(vectors)}

    def query(self, body, ns):
        top_k = body.get("topK")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= TOPK_MAX:
            raise invalid(f"topK must be an integer in 1..{TOPK_MAX}")
        vec = body.get("vector")
        space = self.state.namespaces.get(ns)
        check_values(vec, space["dim"] if space else 0, "vector")
        flt = body.get("filter") or {}
        qn = math.sqrt(sum(x * x for x in vec))
        scored = []
        for vid, (values, norm, md) in (space["vectors"].items() if space else []):
            if flt and not matches(md, flt):
                continue
            dot = sum(a * b for a, b in zip(values, vec))
            scored.append((dot / (norm * qn), vid, values, md))
        scored.sort(key=lambda t: (-t[0], t[1]))
        out = []
        for score, vid, values, md in scored[:top_k]:
            m = {"id": vid, "score": score}
            if body.get("includeValues"):
                m["values"] = values
            if body.get("includeMetadata") and md:
                m["metadata"] = md
            out.append(m)
        return {"matches": out, "namespace": ns, "usage": {"readUnits": 5}}

    def delete(self, body, ns, record):
        st = self.state
        space = st.namespaces.get(ns)
        if space is None:
            raise ApiError(404, 5, "Namespace not found")
        if body.get("deleteAll"):
            record["count"] = len(space["vectors"])
            del st.namespaces[ns]
        elif "ids" in body:
            ids = body["ids"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise invalid("ids must be a list of strings")
            if len(ids) > DELETE_MAX_IDS:
                raise invalid(f"at most {DELETE_MAX_IDS} ids per delete request")
            for i in ids:
                space["vectors"].pop(i, None)
            record["count"] = len(ids)
        elif "filter" in body:
            gone = [vid for vid, (_, _, md) in space["vectors"].items() if matches(md, body["filter"])]
            for vid in gone:
                del space["vectors"][vid]
            record["count"] = len(gone)
        else:
            raise invalid("one of ids, deleteAll or filter is required")
        return {}

    def fetch(self, ids, ns, record):
        if not ids:
            raise invalid("ids is required")
        record["namespace"] = ns
        space = self.state.namespaces.get(ns)
        out = {}
        for vid in ids:
            if space and vid in space["vectors"]:
                values, _, md = space["vectors"][vid]
                out[vid] = {"id": vid, "values": values}
                if md:
                    out[vid]["metadata"] = md
        return {"vectors": out, "namespace": ns, "usage": {"readUnits": 1}}

    def control(self, method, path, raw):
        st = self.state
        with st.lock:
            if method == "GET" and path == "/_fake/state":
                return self.reply(200, {
                    "namespaces": {ns: len(s["vectors"]) for ns, s in st.namespaces.items()},
                    "requests": st.requests})
            if method == "POST" and path == "/_fake/script":
                st.rules = json.loads(raw or b"{}").get("rules", [])
                return self.reply(200, {"ok": True})
            if method == "POST" and path == "/_fake/reset":
                st.reset()
                return self.reply(200, {"ok": True})
        self.reply(404, {"code": 5, "message": "Not Found", "details": []})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default="pc-test-key")
    ap.add_argument("--dimension", type=int, default=0)
    args = ap.parse_args()
    Handler.state = State(args.api_key, args.dimension)
    parent = os.getppid()

    def watch_parent():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    serve(Handler, args.port,
          before=lambda: threading.Thread(target=watch_parent, daemon=True).start())


if __name__ == "__main__":
    sys.exit(main())
