#!/usr/bin/env python3
"""Sends pre-signed webhook requests one after the other (stdlib only).

Lines FROM .. FROM+N-1 of a gen_requests.py file (body<TAB>signature), each
POSTed once its predecessor was answered; exits non-zero on an answer that
is not 200. Usage: send_seq.py BASE_URL FILE.tsv N FROM
"""
import sys, urllib.request

base, path, n, first = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lines = open(path).read().splitlines()[first:first + n]
for line in lines:
    body, sig = line.split("\t")
    req = urllib.request.Request(base + "/webhooks/whatsapp", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": sig})
    with urllib.request.urlopen(req, timeout=30) as r:
        if r.status != 200:
            sys.exit("answer %d" % r.status)
