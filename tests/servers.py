"""Real servers for the tests: ``redis-server`` and gunicorn, started on free loopback ports by
the tests themselves, a tiny RESP client to look inside Redis, and a loopback HTTP server that
stands in for the download sites (IPInfo, the cloud providers)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], log: Any, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            out = log.read().decode(errors="replace")
            raise RuntimeError(f"server exited with {proc.returncode}:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port; can be killed and restarted on the
    same port (an outage)."""

    def __init__(self, tls: bool = False, replica_of: int | None = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.exe = exe
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="rampart-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls_args: list[str] = []
        self.ca_file = ""
        self.replica_of = replica_of
        if tls:
            self.ca_file = make_certificates(Path(self.dir))
            d = self.dir
            self.tls_args = [
                "--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no",
                "--tls-cert-file", f"{d}/server.crt", "--tls-key-file", f"{d}/server.key",
                "--tls-ca-cert-file", f"{d}/ca.crt",
            ]  # fmt: skip
        self.start()

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls_args else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.log = tempfile.TemporaryFile()
        port_args = self.tls_args or ["--port", str(self.port)]
        if self.replica_of is not None:
            port_args = [*port_args, "--replicaof", "127.0.0.1", str(self.replica_of)]
        self.proc = subprocess.Popen(
            [
                self.exe,
                *port_args,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.proc, self.log)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(self, *args: str | int) -> Any:
        """One command over RESP; the decoded reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            parts = [str(a).encode() for a in args]
            payload = b"*%d\r\n" % len(parts) + b"".join(
                b"$%d\r\n%s\r\n" % (len(p), p) for p in parts
            )
            s.sendall(payload)
            return _read_reply(s.makefile("rb"))

    def keys(self, pattern: str = "*") -> list[str]:
        return sorted(k.decode() for k in self.command("KEYS", pattern))

    def session(self) -> RedisSession:
        """One connection kept open, for counting: asking over it adds exactly one read."""
        return RedisSession(self.port)

    def commandstats(self) -> dict[str, int]:
        """Calls per command since the last ``CONFIG RESETSTAT``."""
        info = self.command("INFO", "commandstats").decode()
        out: dict[str, int] = {}
        for line in info.splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line[len("cmdstat_") :].split(":", 1)
                fields = dict(f.split("=") for f in rest.split(","))
                out[name] = int(fields["calls"])
        return out


class Sentinel:
    """A ``redis-server --sentinel`` watching ``master`` as ``mymaster``, quick to fail over."""

    def __init__(self, master: RedisServer) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="rampart-sentinel-")
        conf = Path(self.dir) / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
            "sentinel down-after-milliseconds mymaster 300\n"
            "sentinel failover-timeout mymaster 2000\n"
        )
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.proc, self.log)

    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/mymaster"

    def master_port(self) -> int:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n"
                      b"$8\r\nmymaster\r\n")  # fmt: skip
            reply = _read_reply(s.makefile("rb"))
        return int(reply[1])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """Three ``redis-server --cluster-enabled yes`` primaries joined by ``redis-cli``."""

    def __init__(self) -> None:
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.dir = tempfile.mkdtemp(prefix="rampart-cluster-")
        for n in range(3):
            port = free_port()
            node_dir = Path(self.dir) / str(n)
            node_dir.mkdir()
            log = tempfile.TemporaryFile()
            proc = subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                 "127.0.0.1", "--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port()),
                 "--dir", str(node_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            _wait_for_port(port, proc, log)
            self.nodes.append(proc)
            self.ports.append(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not all(b"cluster_state:ok" in self.call(p, "CLUSTER", "INFO") for p in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not settle")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2])

    @staticmethod
    def call(port: int, *args: str) -> Any:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            parts = [a.encode() for a in args]
            s.sendall(
                b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
            )
            return _read_reply(s.makefile("rb"))

    def keys(self) -> list[str]:
        return sorted(k.decode() for p in self.ports for k in self.call(p, "KEYS", "*"))

    def stop(self) -> None:
        for proc in self.nodes:
            proc.kill()
            proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_certificates(directory: Path) -> str:
    """A CA and a server certificate for 127.0.0.1, made with the openssl command; the CA's path."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test CA",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    return str(directory / "ca.crt")


class RedisSession:
    """Commands over one open connection (see :meth:`RedisServer.session`)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> RedisSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        self.sock.close()

    def command(self, *args: str | int) -> Any:
        parts = [str(a).encode() for a in args]
        payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(payload)
        return _read_reply(self.file)

    def reads(self) -> int:
        """Client requests the server has read (``total_reads_processed``, reset by ``CONFIG
        RESETSTAT``), this one included: a pipeline sent in one write is one read, so this
        counts round trips."""
        for line in self.command("INFO", "stats").decode().splitlines():
            if line.startswith("total_reads_processed:"):
                return int(line.split(":", 1)[1])
        raise AssertionError("redis-server does not report total_reads_processed")


def _read_reply(f: Any) -> Any:
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError(f"unexpected reply {line!r}")


class Gunicorn:
    """``gunicorn -w N`` serving ``app`` (a module of ``tests/apps``; by default
    ``shared_app.py``) with the given environment. With ``wait_for_workers`` it asks ``/pid``
    until every worker has answered."""

    def __init__(
        self,
        workers: int,
        env: dict[str, str],
        preload: bool = False,
        *,
        app: str = "shared_app:app",
        wait_for_workers: bool = True,
    ) -> None:
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{self.port}",
            "--chdir",
            str(ROOT / "tests" / "apps"),
            "--log-level",
            "warning",
            "--graceful-timeout",
            "2",
        ]
        if preload:
            cmd.append("--preload")
        cmd.append(app)
        # Output to a file, not a pipe nobody reads: a full pipe would block the workers.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.proc, self.log)
        # Every worker up: ask, a few at a time so that busy workers leave the next request to
        # the others, until as many distinct pids have answered (or ten seconds).
        self.pids: set[str] = set()
        if not wait_for_workers:
            return
        deadline = time.monotonic() + 10
        with ThreadPoolExecutor(workers * 2) as pool:
            while len(self.pids) < workers and time.monotonic() < deadline:
                self.pids.update(
                    pool.map(lambda _: self.get("/pid", ip="192.0.2.250")[1], range(workers * 4))
                )

    def get(self, path: str, ip: str = "192.0.2.1") -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"X-Forwarded-For": ip, "Connection": "close"})
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


class FileServer:
    """An HTTP server on a free loopback port serving ``files`` (path -> body). A path set to an
    ``int`` answers with that status. ``requests`` records every path asked for, query included."""

    def __init__(self, files: dict[str, bytes | int] | None = None) -> None:
        self.files: dict[str, bytes | int] = dict(files or {})
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = outer.files.get(self.path.split("?", 1)[0], 404)
                if isinstance(body, int):
                    self.send_response(body)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.split("?", 1)[0] == path)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
