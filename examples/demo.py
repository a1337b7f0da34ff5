"""The Rampart demo: a small app protected by Rampart, served on http://127.0.0.1:5000.

Run it with ``make demo``; the curl lines it prints show each protection at work.
"""

from __future__ import annotations

import secrets

from flask import Flask, jsonify, render_template_string, request
from flask_rampart import Rampart, SecurityConfig

CONFIG = SecurityConfig(
    # The demo pretends a reverse proxy runs on this machine, so X-Forwarded-For from
    # 127.0.0.1 is believed. In production, list only your real proxies.
    trusted_proxies=["127.0.0.1"],
    blacklist=["203.0.113.0/24", "2001:db8:bad::/48"],
    blocked_user_agents=["sqlmap", "nikto", r"^masscan"],
    enable_cors=True,
    cors_allow_origins=["https://app.example.com"],
    security_headers={
        "csp": {"default-src": ["'self'"], "script-src": ["'self'"]},
        "csp_nonce_in": ["script-src"],
    },
    custom_error_responses={403: "Access denied by Rampart\n"},
    endpoint_rate_limits={"/api/items": (3, 60)},
    auto_ban_threshold=3,
    auto_ban_window=60,
    auto_ban_duration=120,
)

# The operator's dashboard, open to this machine only, with a token made for this run.
DASHBOARD_TOKEN = secrets.token_urlsafe(24)

app = Flask(__name__)
rampart = Rampart(app, config=CONFIG, dashboard="/_rampart", dashboard_token=DASHBOARD_TOKEN)


@app.get("/")
def index() -> object:
    return jsonify(message="hello from a Rampart-protected app")


@app.get("/page")
def page() -> str:
    return render_template_string(
        "<!doctype html><p>CSP nonce for this response: {{ csp_nonce() }}</p>"
        "<script nonce='{{ csp_nonce() }}'>console.log('allowed inline script')</script>"
    )


@app.get("/api/items")
def items() -> object:
    return jsonify(items=["a", "b"])


@app.post("/comments")
def comments() -> tuple[object, int]:
    # Rampart inspected every JSON value before this view reads the body (whole, as sent).
    return jsonify(received=request.get_json(silent=True)), 201


@app.post("/login")
def login() -> tuple[str, int]:
    # Every attempt fails in this demo, and each failure counts toward a ban.
    rampart.report()
    return "bad password\n", 401


BASE = "http://127.0.0.1:5000"
TRY = f"""
Rampart demo on {BASE}  (Ctrl-C to stop). Config:
{CONFIG!r}

Dashboard (what Rampart blocked, bans with an unban button): open in a browser
  {BASE}/_rampart/?token={DASHBOARD_TOKEN}

Try these in another terminal:

  # an ordinary request: 200, with security headers
  curl -i {BASE}/

  # a blacklisted client, seen through the (trusted) proxy header: 403
  curl -i -H 'X-Forwarded-For: 203.0.113.7' {BASE}/

  # the same header from an untrusted proxy would be ignored; a blocked user agent: 403
  curl -i -A 'sqlmap/1.7' {BASE}/

  # a CORS request from an allowed origin: Access-Control-Allow-Origin is sent
  curl -i -H 'Origin: https://app.example.com' {BASE}/

  # the security headers alone (CSP with a fresh nonce on every request)
  curl -sI {BASE}/page

  # /api/items allows 3 requests a minute per client: the 4th gets 429 with Retry-After
  for i in 1 2 3 4; do curl -s -o /dev/null -w '%{{http_code}} ' {BASE}/api/items; done; echo
  curl -si {BASE}/api/items | grep -iE '^(HTTP|retry-after|x-ratelimit)'

  # every failed login is reported: the 3rd report in a minute bans the client for 2 minutes
  for i in 1 2 3 4; do curl -s -o /dev/null -w '%{{http_code}} ' -X POST \\
      -H 'X-Forwarded-For: 198.51.100.9' {BASE}/login; done; echo

  # penetration-attempt detection reads every query parameter, header and JSON value: an XSS
  # in the query, then an SQL injection deep in a JSON body, 403 each; the log names the rule
  # and where it was found. (Sent as another client, 198.51.100.20: detections count toward
  # a ban, and these should not fall on you.)
  curl -i -H 'X-Forwarded-For: 198.51.100.20' '{BASE}/?q=%3Cscript%3Ealert(1)%3C/script%3E'
  curl -i -H 'X-Forwarded-For: 198.51.100.20' -H 'Content-Type: application/json' \\
      -d '{{"items": [{{"note": "1 union select password from users"}}]}}' {BASE}/comments

  # honest text with the same words passes: 201
  curl -i -H 'Content-Type: application/json' \\
      -d '{{"note": "select the blue one or the red one from the union shop"}}' {BASE}/comments
"""

if __name__ == "__main__":
    print(TRY, flush=True)
    app.run(host="127.0.0.1", port=5000)
