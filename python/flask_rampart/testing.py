"""Helpers for testing applications protected by Rampart.

``ManualClock`` replaces the wall clock the rate limits and bans run on, so a test can step past a
window instead of sleeping::

    from flask_rampart.testing import ManualClock

    clock = ManualClock()
    Rampart(app, SecurityConfig(rate_limit=2, rate_limit_window=60), clock=clock)
    ...
    clock.advance(60)   # the window has passed
"""

from __future__ import annotations

from ._native import ManualClock

__all__ = ["ManualClock"]
