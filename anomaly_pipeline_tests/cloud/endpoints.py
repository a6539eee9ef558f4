"""Real sockets on 127.0.0.1 for the network-failure tests: a server that accepts connections and
never answers, a port where nothing listens, and a minimal Azure Blob endpoint (the REST calls
deltalake's object store makes to check a container: list blobs, or the service's XML error)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMPTY_BLOB_LIST = (
    b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs></Blobs><NextMarker/>'
    b"</EnumerationResults>"
)
AUTHENTICATION_FAILED = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server '
    b"failed to authenticate the request.</Message></Error>"
)


@contextmanager
def silent_server() -> Iterator[str]:
    """A URL whose server completes the TCP handshake (the kernel does, from the backlog) and then
    never sends a byte."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def closed_port() -> str:
    """A URL where nothing listens (connections are refused)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def blob_endpoint(status: int = 200) -> Iterator[str]:
    """An Azure Blob endpoint: every container is empty (200) or every request is refused with the
    service's error body (e.g. 403 AuthenticationFailed). It runs in its own process: deltalake
    holds the GIL while it waits for an answer, so a server thread of this process could not
    answer."""
    code = f"from {__name__} import serve_blobs; serve_blobs({status})"
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        yield f"http://127.0.0.1:{int(server.stdout.readline())}"
    finally:
        server.kill()
        server.wait()


def serve_blobs(status: int) -> None:
    """`blob_endpoint`'s server: prints its port, then serves until killed."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = EMPTY_BLOB_LIST if status == 200 else AUTHENTICATION_FAILED
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def route_adls_to(monkeypatch, url: str) -> None:
    """Make deltalake's Azure client talk to `url` instead of <account>.dfs.core.windows.net (the
    object store's emulator settings, read from the environment)."""
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", url)
