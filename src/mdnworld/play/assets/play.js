// The play page: ask the server for one dream step at a time, draw the frame and pi.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { sid: null, info: null, view: null, keys: { left: false, right: false },
  paused: false, busy: false, steps: 0, lastKey: null, history: [],
  pressedAt: null, latencies: [] }; // ms from a key going down to the first frame it moved
window.playState = state; // read by the tests and handy in the console

async function api(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}) });
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

function colour(k) {
  const c = state.info.colours[k % state.info.colours.length];
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function drawFrame(canvas, b64) {
  const raw = atob(b64), ctx = canvas.getContext("2d");
  const img = ctx.createImageData(64, 64);
  for (let i = 0, j = 0; i < raw.length; i += 3, j += 4) {
    img.data[j] = raw.charCodeAt(i); img.data[j + 1] = raw.charCodeAt(i + 1);
    img.data[j + 2] = raw.charCodeAt(i + 2); img.data[j + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function buildBars(K) {
  const bars = $("bars");
  bars.textContent = "";
  for (let k = 0; k < K; k++) {
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.id = `bar-${k}`;
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.background = colour(k);
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = `k=${k}`;
    bar.append(fill, label);
    bars.append(bar);
    const opt = document.createElement("option");
    opt.value = String(k);
    opt.textContent = `committed to k=${k}`;
    $("commit").append(opt);
  }
}

function drawHistory() {
  const c = $("history"), ctx = c.getContext("2d"), H = c.height;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, c.width, H);
  const recent = state.history.slice(-c.width);
  recent.forEach((pi, x) => {
    let y = H;
    pi.forEach((p, k) => {
      const h = p * H;
      ctx.fillStyle = colour(k);
      ctx.fillRect(x, y - h, 1, h);
      y -= h;
    });
  });
}

function show(view) {
  state.view = view;
  drawFrame($("dream"), view.frame);
  if (view.real_frame) drawFrame($("real"), view.real_frame);
  $("real-figure").hidden = !view.real_frame;
  view.pi.forEach((p, k) => {
    const bar = $(`bar-${k}`);
    bar.querySelector(".fill").style.height = `${Math.round(p * 100)}%`;
    bar.classList.toggle("dominant", k === view.dominant);
    bar.title = `π${k} = ${p.toFixed(3)}`;
  });
  $("score").textContent = view.score;
  $("pdeath").textContent = view.p_death.toFixed(3);
  $("death-fill").style.width = `${Math.min(100, view.p_death * 100)}%`;
  $("over").hidden = !view.done;
}

function currentKey() {
  if ($("controller").checked) return null;
  const { left, right } = state.keys;
  return left && !right ? "left" : right && !left ? "right" : "none";
}

async function step() {
  if (!state.sid || state.busy || state.view.done) return;
  state.busy = true;
  try {
    const key = currentKey(), pressed = state.pressedAt;
    const { view } = await api("/api/step", { session: state.sid, key });
    state.steps += 1;
    state.lastKey = key;
    state.history.push(view.pi);
    show(view);
    drawHistory();
    if (pressed !== null && key !== "none" && state.pressedAt === pressed) {
      state.latencies.push(performance.now() - pressed);
      state.pressedAt = null;
    }
  } catch (e) {
    $("status").textContent = e.message;
  } finally {
    state.busy = false;
  }
}

function loop() {
  const started = performance.now();
  const next = () => setTimeout(loop, Math.max(0, 1000 / Number($("fps").value) -
    (performance.now() - started)));
  if (state.paused) return next();
  step().then(next);
}

// A call that changes the session waits for the step in flight, whose view (from before the
// change) would otherwise land last and stay shown.
async function stepDone() {
  while (state.busy) await new Promise((resolve) => setTimeout(resolve, 10));
}

async function restart() {
  await stepDone();
  const { view } = await api("/api/restart", { session: state.sid, real: $("realgame").checked });
  state.history = [];
  show(view);
  drawHistory();
}

async function setting(body) {
  await stepDone();
  try {
    const { view } = await api("/api/set", { session: state.sid, ...body });
    show(view);
  } catch (e) { $("status").textContent = e.message; }
}

function press(key, down) {
  if (down && !state.keys[key]) state.pressedAt = performance.now();
  state.keys[key] = down;
  $(key).classList.toggle("down", down);
}

async function record(format) {
  $("recording").textContent = "writing…";
  try {
    const { url } = await api("/api/record", { session: state.sid, format });
    const a = document.createElement("a");
    a.href = url;
    a.textContent = url.split("/").pop();
    $("recording").textContent = "";
    $("recording").append(a);
  } catch (e) { $("recording").textContent = e.message; }
}

function wire() {
  const keyName = { ArrowLeft: "left", ArrowRight: "right" };
  document.addEventListener("keydown", (e) => {
    if (keyName[e.key]) { press(keyName[e.key], true); e.preventDefault(); }
    else if (e.key === " ") { $("pause").click(); e.preventDefault(); }
    else if (e.key === "r" || e.key === "R") restart();
  });
  document.addEventListener("keyup", (e) => { if (keyName[e.key]) press(keyName[e.key], false); });
  for (const key of ["left", "right"]) {
    $(key).addEventListener("pointerdown", () => press(key, true));
    for (const ev of ["pointerup", "pointerleave", "pointercancel"])
      $(key).addEventListener(ev, () => press(key, false));
  }
  $("tau").addEventListener("input", () => {
    $("tau-out").textContent = Number($("tau").value).toFixed(2);
    setting({ tau: Number($("tau").value) });
  });
  $("commit").addEventListener("change", () =>
    setting({ commit: $("commit").value === "" ? null : Number($("commit").value) }));
  $("deaths").addEventListener("change", () => setting({ deaths: $("deaths").checked }));
  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").textContent = state.paused ? "play" : "pause";
    $("step").disabled = !state.paused;
  });
  $("step").addEventListener("click", step);
  $("restart").addEventListener("click", restart);
  $("realgame").addEventListener("change", restart);
  $("rec-mp4").addEventListener("click", () => record("mp4"));
  $("rec-gif").addEventListener("click", () => record("gif"));
  // a closed tab frees its dream on the server
  window.addEventListener("pagehide", () => navigator.sendBeacon("/api/close",
    new Blob([JSON.stringify({ session: state.sid })], { type: "application/json" })));
}

async function main() {
  state.info = await (await fetch("/api/info")).json();
  const i = state.info;
  $("about").textContent = `M ${i.model_index} of ${i.run}: K = ${i.K} components` +
    (i.done_head ? "" : " (no done head: the dream ends only at 2100 steps)");
  $("controller").disabled = !i.controller;
  if (!i.controller) $("controller").parentElement.title = "this run has no trained controller";
  buildBars(i.K);
  wire();
  const { session, view } = await api("/api/new", { real: false });
  state.sid = session;
  show(view);
  document.body.dataset.ready = "1";
  loop();
}

main().catch((e) => { $("status").textContent = e.message; });
