"""A git server on 127.0.0.1 speaking smart HTTP over TLS (`git http-backend` as CGI),
as GitHub does, with a self-signed certificate that only the test's git trusts.

Every request is recorded (method, path, headers) with the bytes sent back, so a
test can see that a clone was shallow and blob-limited, that no credentials were
sent, and that a redirect was not followed. `redirects` maps a path prefix to a
Location to answer with instead (301); `require_auth` answers 401 to a request
without credentials, as a private repository does. `PlainServer` is a bare HTTP server that
only records: the target a redirect points at, which must never be reached.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (key, cert), made with the openssl command line."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


class _Recorder:
    """A server (`self.httpd`, made by the subclass) that records the requests it got."""

    def __init__(self):
        self.requests: list[dict] = []
        self.bytes_sent = 0
        self.lock = threading.Lock()

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.requests.append({"method": handler.command, "path": handler.path, "headers": dict(handler.headers)})


class PlainServer(_Recorder):
    """http://127.0.0.1:<port>/: records every request, answers 200 with a fixed body."""

    def __init__(self):
        super().__init__()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                recorder.record(self)
                body = b"secret-internal-credentials\n"
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


class GitHttpsServer(_Recorder):
    """https://127.0.0.1:<port>/<name>.git for each bare repository under `root`."""

    def __init__(self, root: Path, certs: tuple[Path, Path], redirects: dict[str, str] | None = None,
                 require_auth: bool = False):
        super().__init__()
        self.root, self.redirects, self.require_auth = root, dict(redirects or {}), require_auth
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with server.lock:
                    server.bytes_sent += len(body)

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if not size:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _handle(self):
                server.record(self)
                path, _, query = self.path.partition("?")
                for prefix, location in server.redirects.items():
                    if path.startswith(prefix):
                        return self._send(301, [("location", location + path[len(prefix):] + (f"?{query}" if query else ""))], b"")
                if server.require_auth and "authorization" not in self.headers:
                    return self._send(401, [("www-authenticate", 'Basic realm="git"')], b"")
                body = self._body()
                env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(server.root), "GIT_HTTP_EXPORT_ALL": "1",
                       "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                       "CONTENT_TYPE": self.headers.get("content-type", ""), "CONTENT_LENGTH": str(len(body)),
                       "REMOTE_ADDR": "127.0.0.1", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(server.root)}
                if self.headers.get("git-protocol"):
                    env["GIT_PROTOCOL"] = self.headers["git-protocol"]
                if self.headers.get("content-encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["content-encoding"]
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode("latin-1").split("\r\n"):
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                self._send(status, headers, payload)

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(certs[1]), str(certs[0]))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
