"""WSGI app for the gunicorn peers of multiserve's bench.

Every path answers "Hello, World!" except /sim, which takes the same knobs
as multiserve's sim app: cpu (burn this much thread CPU time), io (then
sleep; cooperative under gevent), size (then send this many bytes).
Durations are Go-style (20ms, 1.5s, 20us) or bare milliseconds.
"""
import time
from urllib.parse import parse_qs

HELLO = b"Hello, World!"
CHUNK = b"x" * 32768
UNITS = (("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0), ("m", 60.0))


def duration(v):
    for suffix, mult in UNITS:
        if v.endswith(suffix):
            return float(v[: -len(suffix)]) * mult
    return float(v) * 1e-3


def size(v):
    v = v.lower()
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(v[-1:], 1)
    return int(v[:-1] if mult > 1 else v) * mult


def body(n):
    while n > 0:
        k = min(n, len(CHUNK))
        yield CHUNK[:k]
        n -= k


def app(environ, start_response):
    if environ.get("PATH_INFO", "/") != "/sim":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return [HELLO]
    try:
        q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        cpu = duration(q.get("cpu", "0"))
        io = duration(q.get("io", "0"))
        n = size(q.get("size", "0"))
    except ValueError as e:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [str(e).encode()]
    if cpu > 0:
        start = time.thread_time()
        while time.thread_time() - start < cpu:
            pass
    if io > 0:
        time.sleep(io)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(n))])
    return body(n)
