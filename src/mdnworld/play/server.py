"""The play server: the standard library's threading HTTP server, JSON over POST, no build step.

Why the stdlib server and polling rather than websockets: one dream step is one small request
(~1 ms on localhost next to ~6 ms of model time), the page asks for the next frame when the
last one has arrived (so a slow machine slows the game instead of queueing keys), and nothing
new has to be installed or kept up to date. The page (assets/) is plain HTML, JS and CSS.

Routes (everything else is 404; a malformed request is 400, an unknown session 404):

    GET  /, /play.js, /play.css     the page (only these three files are ever served)
    GET  /api/info                  K, the model, whether a controller and the real game exist
    POST /api/new      {real}       a new dream for this tab -> {session, view}
    POST /api/step     {session, key: "left"|"right"|"none"|null}   (null: the controller)
    POST /api/set      {session, tau?, commit?, deaths?}
    POST /api/restart  {session, real?}
    POST /api/record   {session, format: "mp4"|"gif"} -> {url}
    POST /api/history  {session}    the server's record: components and keys of every step
    POST /api/close    {session}    the tab is gone: free its state (also after IDLE_S idle)
    GET  /recordings/<name>         a recording this server wrote (``RunLayout.play_recording``)

Frames travel as base64 of the raw (64, 64, 3) RGB bytes; the page draws them on a canvas and
scales it up without smoothing. The server binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.device import prepare_cpu
from mdnworld.errors import UserError
from mdnworld.palette import COLOURS
from mdnworld.play.session import PlayModels, PlaySession

ASSETS = {"/": "index.html", "/play.js": "play.js", "/play.css": "play.css"}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css",
         ".mp4": "video/mp4", ".gif": "image/gif"}  # fmt: skip
MAX_SESSIONS = 8
IDLE_S = 300.0  # a session nobody asked about for this long is freed
MAX_BODY = 4096


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _jsonable(view: dict[str, Any]) -> dict[str, Any]:
    out = dict(view)
    for key in ("frame", "real_frame"):
        if out.get(key) is not None:
            out[key] = base64.b64encode(np.ascontiguousarray(out[key]).tobytes()).decode()
    out["pi"] = [round(float(p), 4) for p in out["pi"]]
    return out


class Sessions:
    """The live dreams, one per browser tab, by id; idle ones are freed."""

    def __init__(self, models: PlayModels) -> None:
        self.models = models
        self.live: dict[str, tuple[PlaySession, float]] = {}
        self.lock = threading.Lock()
        self.count = 0

    def new(self, real: bool) -> PlaySession:
        self.sweep()
        with self.lock:
            if len(self.live) >= MAX_SESSIONS:
                raise BadRequest(429, f"{MAX_SESSIONS} dreams are open; close a tab first")
            self.count += 1
            seed = self.count
        session = PlaySession(self.models, seed=seed, real=real)
        with self.lock:
            self.live[session.id] = (session, time.monotonic())
        return session

    def get(self, sid: Any) -> PlaySession:
        with self.lock:
            if not isinstance(sid, str) or sid not in self.live:
                raise BadRequest(404, f"no dream {sid!r} (closed or expired: reload the page)")
            session = self.live[sid][0]
            self.live[sid] = (session, time.monotonic())
            return session

    def close(self, sid: Any) -> None:
        with self.lock:
            entry = self.live.pop(sid, None) if isinstance(sid, str) else None
        if entry:
            entry[0].close()

    def sweep(self) -> None:
        now = time.monotonic()
        with self.lock:
            old = [sid for sid, (_, seen) in self.live.items() if now - seen > IDLE_S]
        for sid in old:
            self.close(sid)

    def close_all(self) -> None:
        for sid in list(self.live):
            self.close(sid)


class PlayHandler(http.server.BaseHTTPRequestHandler):
    sessions: Sessions  # set on the subclass that make_server builds
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # quiet: one line per frame would flood the terminal

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        if path in ASSETS:
            name = ASSETS[path]
            body = resources.files("mdnworld.play").joinpath("assets", name).read_bytes()
            return self._send(200, body, TYPES[Path(name).suffix])
        if path == "/api/info":
            m = self.sessions.models
            return self._json(200, {
                "run": str(m.run.root), "model_index": m.model_index, "K": m.n_components,
                "controller": m.controller is not None, "done_head": m.mdnrnn.done is not None,
                "colours": COLOURS.tolist(),
            })  # fmt: skip
        if path.startswith("/recordings/"):
            file = self.sessions.models.run.play_recording(path.removeprefix("/recordings/"))
            if file is not None and file.is_file():
                return self._send(200, file.read_bytes(), TYPES[file.suffix])
        self._json(404, {"error": f"not found: {path}"})

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise BadRequest(413, f"request body over {MAX_BODY} bytes")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                raise BadRequest(400, "the body is not JSON") from None
            if not isinstance(body, dict):
                raise BadRequest(400, "the body must be a JSON object")
            self._json(200, self._api(self.path, body))
        except BadRequest as e:
            self._json(e.status, {"error": str(e)})
        except UserError as e:
            self._json(400, {"error": str(e)})

    def _api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        sessions = self.sessions
        if path == "/api/new":
            s = sessions.new(bool(body.get("real", False)))
            with s.lock:
                return {"session": s.id, "view": _jsonable(s.view())}
        if path == "/api/close":
            sessions.close(body.get("session"))
            return {"closed": True}
        if path not in ("/api/step", "/api/set", "/api/restart", "/api/record", "/api/history"):
            raise BadRequest(404, f"not found: {path}")
        s = sessions.get(body.get("session"))
        with s.lock:
            if path == "/api/step":
                return {"view": _jsonable(s.step(body.get("key", "none")))}
            if path == "/api/set":
                tau = body.get("tau")
                if tau is not None and not isinstance(tau, int | float):
                    raise BadRequest(400, f"tau must be a number, got {tau!r}")
                s.set(tau=tau, commit=body.get("commit", "keep"), deaths=body.get("deaths"))
                return {"view": _jsonable(s.view())}
            if path == "/api/restart":
                return {"view": _jsonable(s.restart(body.get("real")))}
            if path == "/api/history":
                h = s.history
                return {"component": h.component, "keys": h.keys, "score": s.t}
            fmt = body.get("format", "mp4")
            if fmt not in ("mp4", "gif"):
                raise BadRequest(400, f"format must be mp4 or gif, got {fmt!r}")
            return {"url": f"/recordings/{s.record('.' + fmt).name}"}


def make_server(
    run_dir: Path | str, model_index: int = 0, host: str = "127.0.0.1", port: int = 8001
) -> http.server.ThreadingHTTPServer:
    """A play server for M ``model_index`` of ``run_dir`` (port 0: any free port). Torch runs
    one thread per request: a single dream step is too small to share between cores."""
    prepare_cpu(1, keep_heap=False)  # long-lived, a step at a time: hold no freed heap
    sessions = Sessions(PlayModels.from_run(run_dir, model_index))
    handler = type("Handler", (PlayHandler,), {"sessions": sessions})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.sessions = sessions  # type: ignore[attr-defined]
    return server


def serve(
    run_dir: Path | str, model_index: int = 0, host: str = "127.0.0.1", port: int = 8001,
    log: Any = print,
) -> None:  # fmt: skip
    """Serve the play page until Ctrl-C."""
    with make_server(run_dir, model_index, host, port) as server:
        real_host, real_port = server.server_address[:2]
        log(f"play: model_{model_index} of {run_dir} on http://{real_host}:{real_port}/ "
            "(← / → steer; Ctrl-C stops)")  # fmt: skip
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log("play: server stopped")
        finally:
            server.sessions.close_all()  # type: ignore[attr-defined]
