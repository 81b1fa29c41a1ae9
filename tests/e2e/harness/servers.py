"""Two small threaded HTTP servers the tests control: the upstream recorder and the JWKS server."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tools.stack.procs import free_port


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._active = set()
        self._active_lock = threading.Lock()

    def process_request_thread(self, request, client_address):
        with self._active_lock:
            self._active.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active.discard(request)

    def close_connections(self):
        """Cut every open (keep-alive) connection, so a stopped server really answers nothing."""
        with self._active_lock:
            conns = list(self._active)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _read_body(handler):
    te = handler.headers.get("Transfer-Encoding", "")
    if "chunked" in te.lower():
        chunks = []
        while True:
            line = handler.rfile.readline().strip()
            size = int(line.split(b";")[0] or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(chunks)
    n = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(n) if n else b""


def _respond(handler, status, body, headers=()):
    """One answer per connection (every call is a new connection, so stop() is immediate)."""
    handler.close_connection = True
    try:
        handler.send_response(status)
        for k, v in headers:
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)
    except OSError:
        pass


class _Base:
    """Start/stop a ThreadingHTTPServer on a fixed port (stop makes the port refuse connections;
    start binds the same port again)."""

    handler_class = None

    def __init__(self, port=None):
        self.port = port or free_port()
        self._httpd = None
        self._thread = None

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def start(self):
        if self._httpd is not None:
            return self
        deadline = time.monotonic() + 5
        while True:
            try:
                httpd = _Server(self.address, self.handler_class)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Close the listening socket: new connections are refused from now on."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.close_connections()
            self._thread.join(timeout=5)

    @property
    def running(self):
        return self._httpd is not None


# ---------------------------------------------------------------------------------------------
# Upstream recorder


class _RecorderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        body = _read_body(self)
        rec = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "time": time.time(),
        }
        self.server.owner._record(rec)
        out = json.dumps(rec).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("X-Upstream", "recorder")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = _handle


class RecordedRequest(dict):
    """One request as the upstream saw it; header lookup is case-insensitive."""

    def header(self, name, default=None):
        values = self.header_values(name)
        return values[0] if values else default

    def header_values(self, name):
        return [v for k, v in self["headers"] if k.lower() == name.lower()]

    def has_header(self, name):
        return bool(self.header_values(name))


class UpstreamRecorder(_Base):
    """Answers every request 200 with JSON {method, path, headers, body} and remembers it.

    Tests tag requests with a unique `x-e2e-id` header and look them up with `received(id)`."""

    handler_class = _RecorderHandler
    TAG = "x-e2e-id"

    def __init__(self, port=None):
        super().__init__(port)
        self._lock = threading.Lock()
        self.requests = []

    def _record(self, rec):
        with self._lock:
            self.requests.append(RecordedRequest(rec))

    def received(self, tag):
        with self._lock:
            return [r for r in self.requests if r.header(self.TAG) == tag]


# ---------------------------------------------------------------------------------------------
# JWKS server


class _JwksHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        behaviour = owner._hit(path, self)
        kind = behaviour[0]
        if kind == "hang":
            # Hold the connection open without answering (longer than the filter's timeout).
            owner._release.wait(behaviour[1])
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True
            return
        if kind == "json":
            _, doc, delay, headers = behaviour
            if delay:
                time.sleep(delay)
            _respond(self, 200, json.dumps(doc).encode(), [("Content-Type", "application/json"), *headers])
        elif kind == "status":
            _, code, body = behaviour
            self._send(code, body.encode(), "text/plain")
        elif kind == "raw":
            _, body, ctype = behaviour
            self._send(200, body.encode(), ctype)
        else:  # unknown path
            self._send(404, b"no such JWKS path", "text/plain")

    def _send(self, code, body, ctype):
        _respond(self, code, body, [("Content-Type", ctype)])


class JwksServer(_Base):
    """A JWKS endpoint per path, each switchable between serving a document (optionally after a
    delay), an HTTP error status, a non-JSON body, or hanging; `stop()` makes the whole server
    refuse connections. Every GET is counted per path (`hits(path)`)."""

    handler_class = _JwksHandler

    def __init__(self, port=None):
        super().__init__(port)
        self._lock = threading.Lock()
        self._routes = {}
        self._hits = {}
        self.log = []  # (time, path, host header)
        self._release = threading.Event()

    def serve(self, path, doc, delay=0.0, headers=()):
        with self._lock:
            self._routes[path] = ("json", doc, delay, tuple(headers))

    def fail(self, path, status=500, body="upstream failure"):
        with self._lock:
            self._routes[path] = ("status", status, body)

    def raw(self, path, body, ctype="application/json"):
        with self._lock:
            self._routes[path] = ("raw", body, ctype)

    def hang(self, path, seconds=30.0):
        with self._lock:
            self._routes[path] = ("hang", seconds)

    def hits(self, path):
        with self._lock:
            return self._hits.get(path, 0)

    def _hit(self, path, handler):
        with self._lock:
            self._hits[path] = self._hits.get(path, 0) + 1
            self.log.append((time.time(), path, handler.headers.get("Host")))
            return self._routes.get(path, ("missing",))

    def stop(self):
        self._release.set()
        super().stop()
        self._release = threading.Event()

    def close(self):
        self.stop()


# ---------------------------------------------------------------------------------------------
# Introspection server (RFC 7662)


class _IntrospectionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        owner = self.server.owner
        body = _read_body(self).decode("utf-8", "replace")
        from urllib.parse import parse_qs
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        status, doc = owner._answer(self.path, form, dict(self.headers.items()))
        _respond(self, status, json.dumps(doc).encode(), [("Content-Type", "application/json")])


class IntrospectionServer(_Base):
    """An RFC 7662 endpoint: POST `token=...`; answers the document set for that token with
    `answer(token, doc)` (`{"active": false}` for any other token), or `status` for every call
    when set. Every call is logged with its path, form and headers (`calls`)."""

    handler_class = _IntrospectionHandler

    def __init__(self, port=None):
        super().__init__(port)
        self._lock = threading.Lock()
        self._answers = {}
        self.status = None
        self.calls = []

    def answer(self, token, doc):
        with self._lock:
            self._answers[token] = doc

    def calls_for(self, token):
        with self._lock:
            return [c for c in self.calls if c["form"].get("token") == token]

    def _answer(self, path, form, headers):
        with self._lock:
            self.calls.append({"path": path, "form": form, "headers": {k.lower(): v for k, v in headers.items()}})
            if self.status is not None:
                return self.status, {"error": "server_error"}
            return 200, self._answers.get(form.get("token"), {"active": False})


# ---------------------------------------------------------------------------------------------
# ext_authz authorizer


class _AuthorizerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        owner = self.server.owner
        _read_body(self)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with owner._lock:
            owner.checks.append({"method": self.command, "path": self.path, "headers": headers})
        verdict = headers.get("x-verdict", "allow")
        if verdict == "allow":
            status, extra, body = 200, {"x-authz-user": "alice", "x-not-forwarded": "1"}, b""
        else:
            status, extra, body = int(verdict), {"x-reason": "verdict", "x-not-returned": "1"}, b"denied by the authorizer"
        _respond(self, status, body, extra.items())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class AuthorizerServer(_Base):
    """An HTTP ext_authz authorizer: allows unless the checked request carries `x-verdict: <status>`
    (then answers that status); on allow it returns `x-authz-user: alice` (and a header the provider
    config does not forward). Every check is logged (`checks`)."""

    handler_class = _AuthorizerHandler

    def __init__(self, port=None):
        super().__init__(port)
        self._lock = threading.Lock()
        self.checks = []
