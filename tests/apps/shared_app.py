"""The app the multi-process tests serve with gunicorn: one limit on every route, storage from
``RAMPART_STORAGE_URI``. ``/ban/<ip>`` bans through whichever worker answers; ``/pid`` says
which worker that was (and is not limited). ``TOUCH_STORE_AT_IMPORT`` uses the store once at
import time."""

from __future__ import annotations

import os

from flask import Flask
from flask_rampart import Rampart, SecurityConfig

app = Flask(__name__)
rampart = Rampart(
    app,
    SecurityConfig(
        storage_uri=os.environ["RAMPART_STORAGE_URI"],
        storage_outage=os.environ.get("RAMPART_STORAGE_OUTAGE", "local"),
        rate_limit=int(os.environ.get("LIMIT", "50")),
        rate_limit_window=60,
        trusted_proxies=["127.0.0.1"],
        enable_penetration_detection=False,
        exclude_paths=["/pid", "/ban"],
    ),
)

if os.environ.get("TOUCH_STORE_AT_IMPORT"):
    # With --preload this runs in the master: its Redis connection is made before the fork,
    # and each worker must notice and connect on its own.
    with app.app_context():
        rampart.bans()


@app.get("/")
def index() -> str:
    return "ok"


@app.get("/pid")
def pid() -> str:
    return str(os.getpid())


@app.get("/ban/<ip>")
def ban(ip: str) -> str:
    rampart.ban(ip, 600, "banned by a test")
    return str(os.getpid())
