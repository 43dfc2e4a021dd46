// The live page served at `/`: one self-contained HTML file (no external scripts, fonts or styles,
// so it works offline and under the strict Content-Security-Policy the server sends).
//
// Protocol (/v1/stream, docs/serve.md): a {"type": "config"} text message (prompt, width, height,
// steps, strength), then one binary message per webcam frame (RGBA straight from the canvas, width ×
// height × 4 bytes); the server answers "ready", then restyled frames (binary RGB, width × height × 3)
// and a "chunk" stats message per chunk. Output frame i belongs to input frame i, so the page measures
// the latency of each frame as (shown − sent). At most ~8 frames are kept in flight (the server runs
// chunks of 4, and a stream of n steps holds n − 1 chunks), so a slow model lowers the frame rate
// instead of growing a queue.
//
// URL parameters (for links and the headless-browser test): token, prompt, size, steps, strength;
// autostart=1 starts the camera at once; autoprompt=TEXT applies a second prompt once 8 frames came
// back. The stats element carries data-frames-out, data-latency-ms, data-fps and data-prompt-applied
// (set when the server confirmed the new prompt without restarting the stream), which a test reads.
#include "server/server.h"

namespace wanrt::serve {

const std::string& live_page_html() {
    static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wanrt live</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }
  .row { display: flex; gap: 1rem; flex-wrap: wrap; align-items: flex-start; }
  canvas, video { background: #000; width: 384px; height: 384px; image-rendering: pixelated; }
  fieldset { border: 1px solid #444; margin-top: 1rem; }
  label { display: inline-block; margin-right: 1rem; }
  input[type=text] { width: 28rem; }
  #stats { font-family: monospace; white-space: pre; margin-top: .5rem; }
  #err { color: #f66; font-family: monospace; }
</style>
</head>
<body>
<h1>wanrt live</h1>
<div class="row">
  <div><div>camera</div><video id="cam" autoplay playsinline muted></video></div>
  <div><div>restyled</div><canvas id="out"></canvas></div>
</div>
<fieldset>
  <label>prompt <input id="prompt" type="text" value="a watercolor painting, soft pastel colors"></label>
  <button id="apply">apply prompt</button><br>
  <label>strength <input id="strength" type="range" min="0.3" max="1" step="0.05" value="0.8"> <span id="sv">0.8</span></label>
  <label>steps <select id="steps"><option>1</option><option selected>2</option><option>3</option><option>4</option></select></label>
  <label>size <input id="size" type="number" min="64" max="1280" step="16" value="256"></label>
  <button id="start">start</button> <button id="stop" disabled>stop</button>
</fieldset>
<div id="stats">not connected</div>
<div id="err"></div>
<canvas id="grab" style="display:none"></canvas>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token");
for (const k of ["prompt", "size", "steps", "strength"]) if (params.get(k)) $(k).value = params.get(k);
let autoprompt = params.get("autoprompt");
let ws = null, timer = null, sent = [], nextOut = 0, inFlight = 0;
let shown = 0, shownT0 = 0, lastLatency = 0, chunkMs = 0, W = 256, H = 256;
const maxInFlight = 12;

function config() {
  return { type: "config", prompt: $("prompt").value, strength: parseFloat($("strength").value),
           steps: parseInt($("steps").value), width: W, height: H };
}
function send(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }

async function start() {
  $("err").textContent = "";
  W = H = parseInt($("size").value);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) { $("err").textContent = "camera: " + e; return; }
  $("cam").srcObject = stream;
  const out = $("out"), grab = $("grab");
  out.width = grab.width = W; out.height = grab.height = H;
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/stream" +
              (token ? "?token=" + encodeURIComponent(token) : "");
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  sent = []; nextOut = 0; inFlight = 0; shown = 0; shownT0 = performance.now();
  ws.onopen = () => send(config());
  ws.onerror = () => { $("err").textContent = "WebSocket error"; };
  ws.onclose = (e) => { $("stats").textContent = "closed " + (e.reason || ""); stop(); };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") {
      const m = JSON.parse(e.data);
      if (m.type === "ready") {
        if (m.restarted) { sent = []; nextOut = 0; frameIndex = 0; inFlight = 0; }  // a new stream: frames in flight were dropped
        else if (m.prompt === $("prompt").value) $("stats").dataset.promptApplied = "1";
        if (!timer) timer = setInterval(sendFrame, 1000 / 16);
      }
      else if (m.type === "chunk") chunkMs = m.chunk_ms;
      else if (m.type === "error") $("err").textContent = m.error;
      return;
    }
    const rgb = new Uint8Array(e.data);
    const img = out.getContext("2d").createImageData(W, H);
    for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
      img.data[j] = rgb[i]; img.data[j + 1] = rgb[i + 1]; img.data[j + 2] = rgb[i + 2]; img.data[j + 3] = 255;
    }
    out.getContext("2d").putImageData(img, 0, 0);
    const now = performance.now();
    if (sent[nextOut] !== undefined) { lastLatency = now - sent[nextOut]; delete sent[nextOut]; }
    nextOut++; inFlight = Math.max(0, inFlight - 1); shown++;
    const fps = shown / ((now - shownT0) / 1000);
    const st = $("stats");
    st.textContent = "frames out " + shown + "   fps " + fps.toFixed(1) + "   latency " +
        lastLatency.toFixed(0) + " ms   chunk " + chunkMs.toFixed(0) + " ms";
    st.dataset.framesOut = shown; st.dataset.fps = fps.toFixed(2); st.dataset.latencyMs = lastLatency.toFixed(1);
    if (autoprompt && shown >= 8) { $("prompt").value = autoprompt; autoprompt = null; send(config()); }
  };
  $("start").disabled = true; $("stop").disabled = false;
}

let frameIndex = 0;
function sendFrame() {
  if (!ws || ws.readyState !== 1 || inFlight >= maxInFlight || ws.bufferedAmount > 4 * W * H * 4) return;
  const cam = $("cam");
  if (!cam.videoWidth) return;
  const g = $("grab").getContext("2d", { willReadFrequently: true });
  const s = Math.min(cam.videoWidth, cam.videoHeight);  // centre square crop
  g.drawImage(cam, (cam.videoWidth - s) / 2, (cam.videoHeight - s) / 2, s, s, 0, 0, W, H);
  const px = g.getImageData(0, 0, W, H).data;
  sent[frameIndex++] = performance.now();
  inFlight++;
  ws.send(px.buffer);
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
  if (ws && ws.readyState <= 1) ws.close();
  ws = null;
  const cam = $("cam");
  if (cam.srcObject) cam.srcObject.getTracks().forEach((t) => t.stop());
  cam.srcObject = null;
  $("start").disabled = false; $("stop").disabled = true;
}

$("start").onclick = start;
$("stop").onclick = stop;
$("apply").onclick = () => send(config());
$("strength").oninput = () => { $("sv").textContent = $("strength").value; };
$("strength").onchange = () => send(config());
$("steps").onchange = () => send(config());
if (params.get("autostart") === "1") start();
</script>
</body>
</html>
)HTML";
    return page;
}

}  // namespace wanrt::serve
