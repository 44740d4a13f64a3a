#!/usr/bin/env python3
"""Pre-signs webhook requests for the wrk benchmark (stdlib only).

Writes one request per line, "body<TAB>signature" (read by wrk.lua):
N requests from U distinct users, each with a unique MessageSid (souk
deduplicates on it, so a replayed request would measure the dedupe path).
Usage: gen_requests.py OUT.tsv N USERS TOKEN PUBLIC_URL BATCH [--first]
  BATCH: a small number that makes this file's MessageSids its own.
  --body TEXT: every message says TEXT (default: "hello N").
  --first: every request from a new user (the session-spawn path).
"""
import base64, hashlib, hmac, sys, urllib.parse

out, n, users, token, public = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
batch = int(sys.argv[6])
first = "--first" in sys.argv
text = sys.argv[sys.argv.index("--body") + 1] if "--body" in sys.argv else None
url = public + "/webhooks/whatsapp"


def sign(params):
    s = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), s.encode(), hashlib.sha1).digest()).decode()


with open(out, "w") as f:
    for i in range(n):
        u = i if first else i % users
        waid = "1999%07d" % u
        sid = "SM%08x%024x" % (batch, i)
        params = [("MessageSid", sid), ("AccountSid", "AC" + "0" * 32), ("From", "whatsapp:+" + waid),
                  ("To", "whatsapp:+14155238886"), ("Body", text if text else "hello %d" % i), ("NumMedia", "0"),
                  ("ProfileName", "Bench"), ("WaId", waid)]
        body = urllib.parse.urlencode(params)
        f.write("%s\t%s\n" % (body, sign(params)))
