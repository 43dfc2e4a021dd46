// The live page served at `/`: one self-contained HTML file (no external scripts, fonts or styles,
// so it works offline and under the strict Content-Security-Policy the server sends).
//
// Protocol (/v1/stream, docs/serve.md): a {"type": "config"} text message (prompt, width, height,
// steps, strength, format), then one binary message per webcam frame; the server answers "ready",
// then restyled frames and a "chunk" stats message per chunk. Frames are JPEG both ways by default
// (canvas.toBlob → the server decodes with libjpeg-turbo and encodes its answer; ~10× smaller than
// raw), or raw with format=raw (RGBA in, RGB out). Output frame i belongs to input frame i, so the
// page measures each frame's latency (drawn − sent: network and model) and its glass-to-glass time
// (painted − the camera's own capture timestamp from requestVideoFrameCallback), and shows the
// FPS over the last 2 s and the median and p95 of the last 120 frames. At most max(12, (n − 1)·4 + 8)
// frames are kept in flight for n steps (the server runs chunks of 5 then 4 and a stream of n steps
// holds n − 1 chunks, so its first frames come back after (n − 1)·4 + 5 were sent: a fixed 12 stalled
// the page for 3 and 4 steps), so a slow model lowers the frame rate instead of growing a queue.
//
// URL parameters (for links and the headless-browser test): token, prompt, size, steps, strength, format;
// autostart=1 starts the camera at once; autoprompt=TEXT applies a second prompt once 8 frames came
// back. The stats element carries data-frames-out, -fps, -latency-ms, -latency-p50, -g2g-ms, -g2g-p50,
// -g2g-p95, -chunk-ms, -format, -bytes-in-per-frame, -bytes-out-per-frame, -capture-clock and
// -prompt-applied (set when the server confirmed the new prompt without restarting the stream),
// which the browser test reads.
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
  <label>frames <select id="format"><option value="jpeg" selected>JPEG</option><option value="raw">raw</option></select></label>
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
for (const k of ["prompt", "size", "steps", "strength", "format"]) if (params.get(k)) $(k).value = params.get(k);
let autoprompt = params.get("autoprompt");
let ws = null, timer = null, sent = [], nextOut = 0, inFlight = 0, fmt = "jpeg";
let shown = 0, lastLatency = 0, lastG2g = 0, chunkMs = 0, W = 256, H = 256;
let bytesIn = 0, framesIn = 0, bytesOut = 0, camMeta = null, clock = "send";
let sendChain = Promise.resolve(), drawChain = Promise.resolve();
const shownAt = [], g2gs = [], lats = [];
const quality = 0.8;
// Enough for the frames the stream holds before its first answer, plus most of a chunk.
const maxInFlight = () => Math.max(12, (parseInt($("steps").value) - 1) * 4 + 8);

function config() {
  return { type: "config", prompt: $("prompt").value, strength: parseFloat($("strength").value),
           steps: parseInt($("steps").value), width: W, height: H, format: fmt, quality: Math.round(quality * 100) };
}
function send(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }
function pct(a, q) {
  if (!a.length) return 0;
  const s = a.slice().sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
function keep(a, v) { a.push(v); if (a.length > 120) a.shift(); }

// The camera's own timestamp of each frame (requestVideoFrameCallback: captureTime where the
// browser has it, else presentationTime), on the performance.now() clock: glass-to-glass starts there.
function watchCamera(cam) {
  if (!("requestVideoFrameCallback" in cam)) return;
  const cb = (now, md) => { camMeta = md; if (cam.srcObject) cam.requestVideoFrameCallback(cb); };
  cam.requestVideoFrameCallback(cb);
}

async function start() {
  $("err").textContent = "";
  W = H = parseInt($("size").value);
  fmt = $("format").value;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) { $("err").textContent = "camera: " + e; return; }
  $("cam").srcObject = stream;
  watchCamera($("cam"));
  const out = $("out"), grab = $("grab");
  out.width = grab.width = W; out.height = grab.height = H;
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/stream" +
              (token ? "?token=" + encodeURIComponent(token) : "");
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  sent = []; nextOut = 0; inFlight = 0; shown = 0; shownAt.length = g2gs.length = lats.length = 0;
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
    // Frames are drawn in order: a JPEG decodes asynchronously, so each draw waits for the one before.
    const data = e.data, ctx = out.getContext("2d");
    bytesOut += data.byteLength;
    const jpeg = new Uint8Array(data, 0, 2);
    if (jpeg[0] === 0xff && jpeg[1] === 0xd8) {
      drawChain = drawChain.then(() => createImageBitmap(new Blob([data], { type: "image/jpeg" })))
        .then((bm) => { ctx.drawImage(bm, 0, 0); bm.close(); drawn(); })
        .catch((err) => { $("err").textContent = "JPEG frame: " + err; });
    } else {
      drawChain = drawChain.then(() => {
        const rgb = new Uint8Array(data), img = ctx.createImageData(W, H);
        for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
          img.data[j] = rgb[i]; img.data[j + 1] = rgb[i + 1]; img.data[j + 2] = rgb[i + 2]; img.data[j + 3] = 255;
        }
        ctx.putImageData(img, 0, 0);
        drawn();
      });
    }
  };
  $("start").disabled = true; $("stop").disabled = false;
}

// A restyled frame is on the canvas: latency = drawn − sent (network + model); glass-to-glass =
// painted (the next animation frame, when the compositor takes the canvas) − the camera's timestamp.
function drawn() {
  const now = performance.now(), s = sent[nextOut];
  if (s !== undefined) {
    lastLatency = now - s.t; keep(lats, lastLatency); delete sent[nextOut];
    requestAnimationFrame(() => { lastG2g = performance.now() - s.cap; keep(g2gs, lastG2g); });
  }
  nextOut++; inFlight = Math.max(0, inFlight - 1); shown++;
  shownAt.push(now);
  while (shownAt.length > 1 && now - shownAt[0] > 2000) shownAt.shift();  // FPS over the last 2 s
  const fps = shownAt.length > 1 ? (shownAt.length - 1) / ((now - shownAt[0]) / 1000) : 0;
  const st = $("stats"), kin = framesIn ? bytesIn / framesIn / 1024 : 0, kout = shown ? bytesOut / shown / 1024 : 0;
  st.textContent = "frames out " + shown + "   fps " + fps.toFixed(1) +
      "   glass-to-glass " + pct(g2gs, 0.5).toFixed(0) + " ms (p95 " + pct(g2gs, 0.95).toFixed(0) + ")" +
      "   network+model " + lastLatency.toFixed(0) + " ms   chunk " + chunkMs.toFixed(0) + " ms   " + fmt + " " +
      kin.toFixed(1) + " KiB in, " + kout.toFixed(1) + " KiB out per frame";
  Object.assign(st.dataset, {
    framesOut: shown, fps: fps.toFixed(2), latencyMs: lastLatency.toFixed(1), latencyP50: pct(lats, 0.5).toFixed(1),
    g2gMs: lastG2g.toFixed(1), g2gP50: pct(g2gs, 0.5).toFixed(1), g2gP95: pct(g2gs, 0.95).toFixed(1),
    chunkMs: chunkMs.toFixed(1), format: fmt, bytesInPerFrame: Math.round(kin * 1024),
    bytesOutPerFrame: Math.round(kout * 1024), captureClock: clock });
  if (autoprompt && shown >= 8) { $("prompt").value = autoprompt; autoprompt = null; send(config()); }
}

let frameIndex = 0;
function sendFrame() {
  if (!ws || ws.readyState !== 1 || inFlight >= maxInFlight() || ws.bufferedAmount > 4 * W * H * 4) return;
  const cam = $("cam");
  if (!cam.videoWidth) return;
  const now = performance.now();
  let cap = now;
  if (camMeta && camMeta.captureTime) { cap = camMeta.captureTime; clock = "captureTime"; }
  else if (camMeta && camMeta.presentationTime) { cap = camMeta.presentationTime; clock = "presentationTime"; }
  const grab = $("grab"), g = grab.getContext("2d", { willReadFrequently: true });
  const s = Math.min(cam.videoWidth, cam.videoHeight);  // centre square crop
  g.drawImage(cam, (cam.videoWidth - s) / 2, (cam.videoHeight - s) / 2, s, s, 0, 0, W, H);
  sent[frameIndex++] = { t: now, cap: cap };
  inFlight++; framesIn++;
  if (fmt === "jpeg") {
    // toBlob copies the canvas now and encodes later; the sends keep the frames' order.
    const blob = new Promise((res) => grab.toBlob(res, "image/jpeg", quality));
    sendChain = sendChain.then(() => blob).then((b) => {
      if (b && ws && ws.readyState === 1) { bytesIn += b.size; ws.send(b); }
    });
  } else {
    const px = g.getImageData(0, 0, W, H).data;
    bytesIn += px.byteLength;
    ws.send(px.buffer);
  }
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
