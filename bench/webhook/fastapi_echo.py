"""Baseline for the webhook benchmark: a minimal FastAPI + uvicorn app doing
what the reference design's webhook did at best — the Twilio signature check
and a TwiML echo — with no persistence. Debian packages python3-fastapi,
python3-uvicorn, python3-multipart."""
import base64, hashlib, hmac, os
from xml.sax.saxutils import escape

from fastapi import FastAPI, Request, Response

TOKEN = os.environ["TWILIO_AUTH_TOKEN"].encode()
URL = os.environ["PUBLIC_URL"] + "/webhooks/whatsapp"
app = FastAPI()


@app.post("/webhooks/whatsapp")
async def webhook(request: Request):
    form = await request.form()
    s = URL + "".join(k + v for k, v in sorted(form.multi_items()))
    expected = base64.b64encode(hmac.new(TOKEN, s.encode(), hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "")):
        return Response(status_code=403)
    body = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>%s</Message></Response>' % escape(form.get("Body", ""))
    return Response(content=body, media_type="text/xml")
