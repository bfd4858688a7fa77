"""A loopback stand-in for the Hugging Face hub, serving one folder as a model repo the way the hub's
routes do, for huggingface_hub's ``snapshot_download`` (``HF_ENDPOINT`` / ``constants.ENDPOINT``):

- ``GET /api/models/{repo}/revision/{rev}``: ``{"id", "sha", "siblings": [{"rfilename"}]}``
- ``GET /api/models/{repo}/tree/{rev}``: ``[{"type": "file", "path", "size", "oid"}]`` (recursive)
- ``HEAD|GET /{repo}/resolve/{rev}/{file}``: the bytes, with ``ETag``, ``X-Repo-Commit`` and
  ``Content-Length`` (what ``file_download.get_hf_file_metadata`` reads), ``Range`` answered with 206.

``interrupt``: file names whose first GET sends only half the bytes, then closes the connection (the
client must resume with ``Range``). ``fail``: while True, the revision route answers 500.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class StandInHub:
    """Serve ``folder`` as model repo ``repo`` at ``url`` (start with ``with StandInHub(...) as hub``)."""

    def __init__(self, folder: Path, repo: str, interrupt: tuple[str, ...] = ()) -> None:
        self.folder, self.repo = Path(folder), repo
        self.files = sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())
        self.interrupt = set(interrupt)
        self.fail = False
        self.ranges: list[tuple[str, str]] = []  # (file, Range header) of every ranged GET
        self.gets: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                hub._serve(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandInHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _json(self, handler: BaseHTTPRequestHandler, value: object, status: int = 200) -> None:
        body = json.dumps(value).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _serve(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = handler.path.split("?")[0]
        api = f"/api/models/{self.repo}/"
        if path.startswith(api + "revision/"):
            if self.fail:
                return self._json(handler, {"error": "stand-in hub failure"}, 500)
            return self._json(handler, {"id": self.repo, "sha": COMMIT,
                                        "siblings": [{"rfilename": f} for f in self.files]})
        if path.startswith(api + "tree/"):
            return self._json(handler, [{"type": "file", "path": f, "size": self._size(f),
                                         "oid": self._etag(f)} for f in self.files])
        match = re.fullmatch(rf"/{re.escape(self.repo)}/resolve/[^/]+/(.+)", path)
        if not match or match.group(1) not in self.files:
            return self._json(handler, {"error": "not found"}, 404)
        self._file(handler, match.group(1), body)

    def _size(self, name: str) -> int:
        return (self.folder / name).stat().st_size

    def _etag(self, name: str) -> str:
        return hashlib.sha1((self.folder / name).read_bytes()).hexdigest()

    def _file(self, handler: BaseHTTPRequestHandler, name: str, body: bool) -> None:
        data = (self.folder / name).read_bytes()
        start, status = 0, 200
        wanted = handler.headers.get("Range")
        if wanted and body:
            self.ranges.append((name, wanted))
            start = int(re.fullmatch(r"bytes=(\d+)-\d*", wanted).group(1))
            status = 206
        handler.send_response(status)
        handler.send_header("ETag", f'"{self._etag(name)}"')
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(data) - start))
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        self.gets.append(name)
        if name in self.interrupt and start == 0:
            self.interrupt.discard(name)
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(data[start:])
