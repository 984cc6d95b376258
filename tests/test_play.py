"""``mdnworld play`` on the tiny real run (V, two Ms with a done head, a controller): one
player's dream, the server's API and its refusals, and the page in headless Chromium."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, browser_api

from mdnworld.env import MAX_STEPS
from mdnworld.errors import ConfigError
from mdnworld.play.server import MAX_SESSIONS, make_server
from mdnworld.play.session import PlayModels, PlaySession


def test_a_session_steers_commits_lets_the_controller_play_and_records(full_run: Path) -> None:
    models = PlayModels.from_run(full_run, 1)
    K = models.n_components
    s = PlaySession(models, seed=0)
    s.set(deaths=False)  # the tiny M's done head is quick to kill: count steps without it
    first = s.frame.copy()
    views = [s.step("right") for _ in range(5)]
    assert s.history.keys == ["right"] * 5 and views[-1]["score"] == s.t
    assert not np.array_equal(first, views[-1]["frame"]), "the frame did not change"
    assert np.isclose(views[-1]["pi"].sum(), 1, atol=1e-5) and views[-1]["pi"].shape == (K,)
    assert 0 <= views[-1]["p_death"] <= 1
    s.restart()
    s.set(commit=K - 1, tau=0.5)
    for _ in range(8):
        s.step("left")
    assert s.history.component == [K - 1] * 8 and s.tau == 0.5
    s.set(commit=None)
    for _ in range(4):
        s.step(None)  # the run's controller acts
    assert len(s.history.keys) == 12
    path = s.record(".mp4")
    assert path.parent == full_run / "play" and path.stat().st_size > 1000
    for bad in ({"tau": 9.0}, {"commit": K}, {"commit": "1"}, {"deaths": "no"}):
        with pytest.raises(ConfigError):
            s.set(**bad)
    with pytest.raises(ConfigError, match="key must be"):
        s.step("up")
    s.close()


def test_a_dream_ends_at_death_and_stays_over(full_run: Path) -> None:
    s = PlaySession(PlayModels.from_run(full_run, 0), seed=3)
    while not s.done:
        s.step("none")
    assert 1 <= s.t <= MAX_STEPS
    assert s.step("left")["score"] == s.t, "a finished dream must not move"
    assert s.restart()["score"] == 0 and not s.done


def test_the_real_game_beside_the_dream_takes_the_same_keys(full_run: Path) -> None:
    s = PlaySession(PlayModels.from_run(full_run, 0), seed=1, real=True)
    try:
        start = s.real_frame.copy()
        for _ in range(12):
            v = s.step("left")
        assert v["real_frame"].shape == (64, 64, 3) and v["real_done"] is not None
        assert not np.array_equal(start, v["real_frame"]), "the real game did not move"
    finally:
        s.close()


@pytest.fixture(scope="module")
def server(full_run: Path) -> Iterator[str]:
    srv = make_server(full_run, model_index=0, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.sessions.close_all()
        thread.join(5)


def _call(url: str, body: bytes | dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_server_answers_and_refuses(server: str, full_run: Path) -> None:
    with urllib.request.urlopen(server + "/", timeout=30) as r:
        assert r.status == 200 and b"<canvas" in r.read()
    status, info = _call(server + "/api/info")
    assert status == 200 and info["K"] >= 1 and info["controller"] and info["done_head"]
    (full_run / "play").mkdir(exist_ok=True)
    for path in (
        "/etc/passwd",
        "/../config.json",
        "/%2e%2e/config.json",
        "/recordings/..%2fconfig.json",
        "/recordings/play_00000000_1.mp4",
        "/play.py",
        "/assets/x",
    ):
        assert _call(server + path)[0] == 404, path  # fmt: skip
    assert _call(server + "/api/step", b"not json")[0] == 400
    assert _call(server + "/api/step", b"[1]")[0] == 400
    assert _call(server + "/api/step", {"session": "nope"})[0] == 404
    assert _call(server + "/api/launch", {})[0] == 404
    sid = _call(server + "/api/new", {})[1]["session"]
    assert _call(server + "/api/step", {"session": sid, "key": "jump"})[0] == 400
    assert _call(server + "/api/set", {"session": sid, "tau": "hot"})[0] == 400
    assert _call(server + "/api/record", {"session": sid, "format": "avi"})[0] == 400
    assert _call(server + "/api/step", {"session": sid, "key": "right"})[0] == 200
    status, rec = _call(server + "/api/record", {"session": sid, "format": "gif"})
    with urllib.request.urlopen(server + rec["url"], timeout=30) as r:
        assert r.read(6) == b"GIF89a"
    assert _call(server + "/api/close", {"session": sid})[1] == {"closed": True}
    assert _call(server + "/api/step", {"session": sid})[0] == 404, "a closed tab's dream lives"
    sids = [_call(server + "/api/new", {})[1]["session"] for _ in range(MAX_SESSIONS)]
    assert _call(server + "/api/new", {})[0] == 429
    for sid in sids:
        _call(server + "/api/close", {"session": sid})


def _history(server: str, page) -> dict:
    return _call(server + "/api/history", {"session": page.evaluate("playState.sid")})[1]


@pytest.mark.slow
def test_the_page_in_headless_chromium(server: str, tmp_path: Path) -> None:
    sync_api = browser_api()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(90_000)  # a loaded 2-core machine: 30 s once ran out
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/", wait_until="load")
            page.wait_for_function("document.body.dataset.ready === '1'", timeout=30_000)
            page.click("#pause")  # step by hand: the checks below count steps exactly
            page.uncheck("#deaths")  # the tiny M's done head is quick to kill
            page.wait_for_function("playState.view.deaths === false && !playState.busy")
            page.click("#restart")
            page.wait_for_function("playState.view.score === 0")
            n0 = page.evaluate("playState.steps")
            frame0 = page.evaluate("playState.view.frame")
            bars0 = page.evaluate("playState.view.pi")

            def step(n: int) -> None:  # one click = one step (a click while one is in flight
                for _ in range(n):  # is dropped, as a real key repeat would be)
                    before = page.evaluate("playState.steps")
                    page.click("#step")
                    page.wait_for_function(f"playState.steps === {before + 1} && !playState.busy")

            page.keyboard.down("ArrowRight")
            step(6)
            page.keyboard.up("ArrowRight")
            h = _history(server, page)
            assert h["keys"] == ["right"] * 6, h
            assert page.evaluate("playState.view.frame") != frame0, "the frame did not change"
            assert page.evaluate("playState.view.pi") != bars0, "the pi bars did not change"
            heights = page.eval_on_selector_all(".bar .fill", "els => els.map(e => e.style.height)")
            assert len(heights) == len(bars0) and any(x != "0%" for x in heights)
            assert page.eval_on_selector_all(".bar.dominant", "els => els.length") == 1

            k = len(bars0) - 1
            page.select_option("#commit", str(k))
            page.wait_for_function(f"playState.view.commit === {k}")
            step(5)
            assert _history(server, page)["component"][-5:] == [k] * 5

            page.select_option("#commit", "")
            page.check("#controller")
            page.click("#pause")  # play on: the controller steers
            page.wait_for_function(f"playState.steps >= {n0 + 20} || playState.view.done")
            assert page.evaluate("playState.lastKey") is None or page.evaluate(
                "playState.view.done"
            )
            page.click("#restart")
            page.wait_for_function("playState.view.score < 5")
            shot = tmp_path / "play.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            assert not errors, errors
            sid = page.evaluate("playState.sid")
            page.goto("about:blank")  # the tab leaves: its dream is freed on the server
            for _ in range(50):
                if _call(server + "/api/history", {"session": sid})[0] == 404:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the dream of a closed tab is still alive")
            page.close()
        finally:
            browser.close()
