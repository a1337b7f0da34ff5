"""The app the multi-process metrics test serves with gunicorn: Rampart (one blacklisted range)
and ``RampartMetrics`` at ``/metrics``. ``PROMETHEUS_MULTIPROC_DIR`` comes from the environment,
before prometheus-client is imported. ``/`` answers with the worker's pid, slowly enough that
concurrent requests spread over the workers."""

from __future__ import annotations

import os
import time

from flask import Flask
from flask_rampart import Rampart, SecurityConfig
from flask_rampart.metrics import RampartMetrics

app = Flask(__name__)
Rampart(
    app,
    SecurityConfig(
        blacklist=["203.0.113.0/24"],
        trusted_proxies=["127.0.0.1"],
        rate_limit=10_000,
        log_suspicious_level=None,
    ),
)
RampartMetrics(app, path="/metrics")


@app.get("/")
def index() -> str:
    time.sleep(0.05)
    return str(os.getpid())
