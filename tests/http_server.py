"""A local HTTP file server for tests: byte ranges, request counts and simulated failures.

``serve_folder(root)`` serves ``root`` on 127.0.0.1 (a free port) from a thread, the way a
cloud bucket serves COGs: ``GET`` and ``HEAD``, single byte ranges (``206 Partial Content``
with ``Content-Range``; ``Accept-Ranges: bytes`` on every file; ``416`` beyond the end), which
python's ``SimpleHTTPRequestHandler`` does not support and GDAL's ``/vsicurl/`` relies on.
Every request is recorded (method, path, range, status, bytes sent), and chosen paths can
fail: ``server.fail(path, 403)`` or ``404``, or ``server.truncate(path, n)``, after which the
file is served as if only its first ``n`` bytes existed (an interrupted upload).
``server.stac_api(features, page_size)`` answers ``GET /search`` as a STAC API's item search
does: the features whose ``bbox``, ``datetime`` and ``collection`` match the query, a page at a
time, each page linking the next (``rel: next``, as earth-search and the Planetary Computer
page their results).

    with serve_folder(tmp_path) as server:
        url = server.url + "items.json"
        ...
        assert server.count(path="a/B02.tif", status=206) > 0

Import it as ``from http_server import serve_folder`` (``tests/`` is on pytest's pythonpath).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Request:
    """One request as the server answered it."""

    method: str
    path: str  # relative to the served folder, without query
    range: str | None  # the Range header, if any
    status: int
    sent: int  # body bytes sent


@dataclass
class FolderServer:
    """The state of a running :func:`serve_folder`: its URL, requests and failure rules."""

    root: Path
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    features: list[dict] | None = None  # served by GET /search (``stac_api``)
    page_size: int = 10
    searches: list[dict[str, str]] = field(default_factory=list)  # each /search's parameters

    def stac_api(self, features: list[dict], page_size: int = 10) -> None:
        """Answer ``GET /search`` with the matching ``features`` (STAC items), paged."""
        self.features, self.page_size = features, page_size

    def search_page(self, query: dict[str, str]) -> dict:
        """One page of the item search ``query`` (bbox, datetime, collections, token)."""
        self.searches.append(query)
        found = [f for f in self.features or [] if _matches(f, query)]
        start = int(query.get("token", 0))
        limit = min(int(query.get("limit", self.page_size)), self.page_size)
        page = {"type": "FeatureCollection", "features": found[start : start + limit], "links": []}
        if start + limit < len(found):
            following = urllib.parse.urlencode({**query, "token": start + limit})
            href = f"{self.url}search?{following}"
            page["links"].append({"rel": "next", "href": href, "type": "application/geo+json"})
        return page

    def fail(self, path: str, status: int) -> None:
        """Answer every request for ``path`` (relative, e.g. ``"a/B02.tif"``) with ``status``."""
        self.failures[path.lstrip("/")] = status

    def truncate(self, path: str, size: int) -> None:
        """Serve ``path`` as if it held only its first ``size`` bytes."""
        self.truncated[path.lstrip("/")] = size

    def count(
        self, *, path: str | None = None, status: int | None = None, method: str | None = None
    ) -> int:
        """How many requests match all the given criteria."""
        with self.lock:
            return sum(
                1
                for r in self.requests
                if (path is None or r.path == path.lstrip("/"))
                and (status is None or r.status == status)
                and (method is None or r.method == method)
            )

    def sent(self, path: str) -> int:
        """Body bytes sent for ``path`` over all requests."""
        with self.lock:
            return sum(r.sent for r in self.requests if r.path == path.lstrip("/"))

    @property
    def range_requests(self) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.range is not None)

    def record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)


def _matches(feature: dict, query: dict[str, str]) -> bool:
    """Whether a STAC item matches an item search's bbox, datetime and collections."""
    if "bbox" in query:
        west, south, east, north = (float(v) for v in query["bbox"].split(","))
        w, s, e, n = feature["bbox"]
        if w > east or e < west or s > north or n < south:
            return False
    if "datetime" in query:
        start, _, end = query["datetime"].partition("/")
        when = feature["properties"]["datetime"]
        if (start not in ("", "..") and when < start) or (end not in ("", "..") and when > end):
            return False
    if "collections" in query:
        return feature.get("collection") in query["collections"].split(",")
    return True


def _handler(state: FolderServer) -> type[BaseHTTPRequestHandler]:
    root = state.root.resolve()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as GDAL's curl expects
        # headers and body go out as two writes: with Nagle's algorithm on, the body would
        # wait for the client's delayed ACK (40 ms a request), which no real server makes
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet tests

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
            header = self.headers.get("Range")
            if rel == "search" and state.features is not None and rel not in state.failures:
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                payload = json.dumps(state.search_page(query)).encode()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/geo+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload if body else b"")
                state.record(Request(self.command, rel, header, 200, len(payload)))
                return
            target = (root / rel).resolve()
            if rel in state.failures:
                self._error(rel, header, state.failures[rel])
                return
            if root not in target.parents or not target.is_file():
                self._error(rel, header, HTTPStatus.NOT_FOUND)
                return
            size = min(target.stat().st_size, state.truncated.get(rel, target.stat().st_size))
            start, end, status = 0, size - 1, HTTPStatus.OK
            match = RANGE.match(header or "")
            if match and (match.group(1) or match.group(2)):  # one range; several: whole file
                first, last = match.groups()
                if first:
                    start, end = int(first), min(int(last or end), end)
                else:  # the last N bytes
                    start = max(size - int(last), 0)
                if start >= size or start > end:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    state.record(Request(self.command, rel, header, 416, 0))
                    return
                status = HTTPStatus.PARTIAL_CONTENT
            with target.open("rb") as f:
                f.seek(start)
                chunk = f.read(end + 1 - start) if body else b""
            self.send_response(status)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end + 1 - start))
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            self.wfile.write(chunk)
            state.record(Request(self.command, rel, header, int(status), len(chunk)))

        def _error(self, rel: str, header: str | None, status: int) -> None:
            message = HTTPStatus(status).phrase.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(message)
            state.record(Request(self.command, rel, header, int(status), 0))

    return Handler


@contextmanager
def serve_folder(root: str | Path) -> Iterator[FolderServer]:
    """Serve ``root`` on ``http://127.0.0.1:<free port>/`` until the block ends."""
    state = FolderServer(Path(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, name="serve_folder", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


if __name__ == "__main__":  # a server of its own process (benchmarks): URL out, stdin to stop
    import sys

    with serve_folder(sys.argv[1]) as running:
        print(running.url, flush=True)
        sys.stdin.read()  # until the caller closes it
        print(sum(request.sent for request in running.requests), flush=True)
