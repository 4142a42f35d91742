/* tfsonify explore: the page. Plain JS, no dependencies; everything it shows comes from /api (see app.py). */
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = {
  info: null, clips: [], clip: null, panels: [], focused: 0,
  source: {kind: "input", panel: 0}, urls: new Map(), duration: 0,
};

/* ------------------------------------------------------------------ network */
class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function request(url, options = {}, attempts = 10) {
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      throw new ApiError("the explorer server cannot be reached (is it still running?)", 0);
    }
    if (response.status === 503 && attempt < attempts) {       // backpressure: the worker queue is full
      await new Promise(r => setTimeout(r, 250 * (attempt + 1)));
      continue;
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
      throw new ApiError(message, response.status);
    }
    return response;
  }
}
const getJSON = async (url, options) => (await request(url, options)).json();

/* Blob URLs of fetched media, so that switching sources and re-selecting maps is instant. */
async function blobURL(url) {
  if (!state.urls.has(url)) {
    const promise = request(url).then(r => r.blob()).then(b => URL.createObjectURL(b));
    state.urls.set(url, promise);
    promise.catch(() => state.urls.delete(url));
  }
  return state.urls.get(url);
}

function forgetMedia() {
  for (const promise of state.urls.values()) promise.then(u => URL.revokeObjectURL(u), () => {});
  state.urls.clear();
}

async function setImage(img, url) {
  const src = await blobURL(url);
  if (img.dataset.want !== url) return;        // a newer request replaced this one
  img.src = src;
  await img.decode().catch(() => {});
}

function showError(element, error) {
  if (!error) { element.hidden = true; element.textContent = ""; return; }
  element.hidden = false;
  element.textContent = error.message || String(error);
}

const fmt = seconds => (seconds == null ? "?" : seconds.toFixed(2));

/* ------------------------------------------------------------------ clips */
async function loadClips(selectId) {
  const {clips} = await getJSON("/api/clips");
  state.clips = clips;
  renderClips();
  predictAll();
  if (selectId) openClip(selectId);
}

function predictionText(clip) {
  if (clip.error) return clip.error;
  const parts = [];
  (clip.predictions || []).forEach((p, i) => {
    if (p === undefined) return;
    const tag = state.info.models.length > 1 ? `${"AB"[i]}: ` : "";
    if (p === null) parts.push(`${tag}…`);
    else if (p.error) parts.push(`${tag}${p.error}`);
    else if (p.prediction) parts.push(`${tag}${p.prediction[0].label} ${(100 * p.prediction[0].score).toFixed(0)} %`);
  });
  return parts.join(" · ");
}

function renderClips() {
  const list = $("#clips");
  const words = $("#filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  list.textContent = "";
  let shown = 0;
  for (const clip of state.clips) {
    const haystack = `${clip.name} ${predictionText(clip)}`.toLowerCase();
    if (!words.every(w => haystack.includes(w))) continue;
    shown++;
    const li = document.createElement("li");
    li.tabIndex = 0;
    li.dataset.id = clip.id;
    li.className = (clip.error ? "bad " : "") + (state.clip && state.clip.id === clip.id ? "active" : "");
    li.setAttribute("role", "button");
    const name = document.createElement("span");
    name.className = "name"; name.textContent = clip.name; name.title = clip.name;
    if (clip.source === "upload") {
      const tag = document.createElement("span"); tag.className = "upload-tag"; tag.textContent = "upload"; name.append(tag);
    }
    const duration = document.createElement("span");
    duration.className = "dur"; duration.textContent = clip.duration == null ? "" : `${clip.duration.toFixed(2)} s`;
    const pred = document.createElement("span");
    pred.className = "pred"; pred.textContent = predictionText(clip);
    li.append(name, duration, pred);
    li.addEventListener("click", () => openClip(clip.id));
    li.addEventListener("keydown", e => { if (e.key === "Enter") openClip(clip.id); });
    list.append(li);
  }
  $("#clips-count").textContent = `${shown} of ${state.clips.length} clip${state.clips.length === 1 ? "" : "s"}`;
}

let predicting = false;
async function predictAll() {            // the heads' predictions, two requests at a time, filled in as they come
  if (predicting) return;
  predicting = true;
  try {
    const heads = state.info.models.map((m, i) => (m.head ? i : -1)).filter(i => i >= 0);
    const todo = [];
    for (const clip of state.clips) {
      clip.predictions = clip.predictions || [];
      for (const m of heads) if (!clip.error && clip.predictions[m] === undefined) { clip.predictions[m] = null; todo.push([clip, m]); }
    }
    if (todo.length) renderClips();
    let redraw = 0;
    const next = async () => {
      while (todo.length) {
        const [clip, m] = todo.shift();
        try { clip.predictions[m] = await getJSON(`/api/models/${m}/clips/${clip.id}/prediction`); }
        catch (error) { clip.predictions[m] = {error: error.message}; }
        if (++redraw % 4 === 0 || !todo.length) renderClips();
      }
    };
    await Promise.all([next(), next()]);
    renderClips();
  } finally { predicting = false; }
}

/* --------------------------------------------------------------- uploads */
async function uploadBlob(blob, name) {
  const status = $("#add-status");
  const limit = state.info.limits.max_upload_bytes;
  if (blob.size > limit) {
    status.textContent = `${name} is ${(blob.size / 2 ** 20).toFixed(1)} MiB; the limit is ${(limit / 2 ** 20).toFixed(0)} MiB`;
    status.className = "note error"; return;
  }
  status.className = "note"; status.textContent = `uploading ${name}…`;
  try {
    const clip = await getJSON(`/api/upload?name=${encodeURIComponent(name)}`,
      {method: "POST", body: blob, headers: {"Content-Type": "application/octet-stream"}});
    status.textContent = `added ${clip.name} (${clip.duration.toFixed(2)} s)`;
    await loadClips(clip.id);
  } catch (error) {
    status.className = "note error"; status.textContent = error.message;
  }
}

/* Record to WAV inside the page (AudioWorklet), so the server needs no codec for browser formats. */
const recorder = {active: false};
async function toggleRecording() {
  const button = $("#record"), status = $("#add-status");
  if (recorder.active) { stopRecording(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
    const context = new AudioContext();
    await context.audioWorklet.addModule("/static/recorder-worklet.js");
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "tfsonify-recorder");
    const chunks = [];
    node.port.onmessage = e => chunks.push(e.data);
    source.connect(node);
    Object.assign(recorder, {active: true, stream, context, node, chunks, started: performance.now()});
    button.classList.add("recording"); button.textContent = "■ Stop";
    status.className = "note";
    const limit = Math.min(state.info.limits.max_seconds, 60);
    recorder.timer = setInterval(() => {
      const seconds = (performance.now() - recorder.started) / 1000;
      status.textContent = `recording… ${seconds.toFixed(1)} s (stops at ${limit} s)`;
      if (seconds >= limit) stopRecording();
    }, 200);
  } catch (error) {
    status.className = "note error";
    status.textContent = `cannot record: ${error.message || error.name} (the page needs microphone permission)`;
  }
}

function stopRecording() {
  const {stream, context, node, chunks} = recorder;
  clearInterval(recorder.timer);
  recorder.active = false;
  node.disconnect();
  stream.getTracks().forEach(t => t.stop());
  const rate = context.sampleRate;
  context.close();
  $("#record").classList.remove("recording"); $("#record").textContent = "● Record";
  const length = chunks.reduce((n, c) => n + c.length, 0);
  if (!length) { $("#add-status").textContent = "nothing was recorded"; return; }
  const samples = new Float32Array(length);
  let offset = 0;
  for (const c of chunks) { samples.set(c, offset); offset += c.length; }
  const stamp = new Date().toTimeString().slice(0, 8).replace(/:/g, "");
  uploadBlob(wavBlob(samples, rate), `recording-${stamp}.wav`);
}

function wavBlob(samples, rate) {          // mono 16-bit PCM WAV
  const buffer = new ArrayBuffer(44 + samples.length * 2), view = new DataView(buffer);
  const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) view.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, samples[i])) * 32767, true);
  return new Blob([buffer], {type: "audio/wav"});
}

/* ------------------------------------------------------------------ a clip */
async function openClip(id) {
  const clip = state.clips.find(c => c.id === id);
  if (!clip) return;
  const player = $("#player");
  player.pause();
  player.removeAttribute("src"); player.dataset.src = ""; player.load();
  forgetMedia();
  state.clip = clip;
  state.source = {kind: "input", panel: 0};
  renderClips();
  $("#empty").hidden = true; $("#clip").hidden = false;
  $("#clip-name").textContent = clip.name;
  $("#clip-meta").textContent = clip.duration == null ? "" : `${clip.duration.toFixed(2)} s` + (clip.source === "upload" ? " · uploaded" : "");
  $("#input-download").href = `/api/clips/${id}/audio.wav?float=1`;
  $("#coherence").hidden = true;
  showError($("#clip-error"), null);
  buildPanels();
  if (clip.error) { showError($("#clip-error"), {message: clip.error}); setPanelsDisabled(true); return; }
  try {
    const env = await getJSON(`/api/clips/${id}/waveform`);
    if (state.clip !== clip) return;
    state.duration = env.duration;
    state.envelope = env;
    drawWaveform();
    const inputSpec = `/api/clips/${id}/spectrogram.png`;
    for (const panel of state.panels) {
      panel.inputImg.dataset.want = inputSpec;
      setImage(panel.inputImg, inputSpec).catch(error => showError(panel.error, error));
    }
    renderSources();
    await setSource("input", 0, false);
    const predictions = (clip.predictions || []).map((p, i) => p && p.prediction ? `${state.info.models.length > 1 ? "AB"[i] + ": " : ""}` +
      p.prediction.slice(0, 3).map(x => `${x.label} ${(100 * x.score).toFixed(0)} %`).join(", ") : null).filter(Boolean);
    if (predictions.length) $("#clip-meta").textContent += ` · ${predictions.join(" · ")}`;
    await Promise.all(state.panels.map(panel => openLayer(panel, panel.layer)));
  } catch (error) {
    if (state.clip === clip) { showError($("#clip-error"), error); setPanelsDisabled(true); }
  }
}

function setPanelsDisabled(disabled) {
  for (const p of state.panels) p.root.querySelectorAll("select, input, button").forEach(e => { e.disabled = disabled; });
  $("#coherence-button").disabled = disabled;
}

function buildPanels() {
  const box = $("#panels");
  const previous = state.panels.map(p => p.layer);
  box.textContent = "";
  state.panels = state.info.models.map((model, index) => {
    const root = $("#panel-template").content.firstElementChild.cloneNode(true);
    const panel = {
      index, model, root, layer: previous[index] || defaultLayer(model), feature: null, overview: null, token: 0, layerToken: 0,
      method: "sonification",
      inputImg: $(".input-spec", root), soundImg: $(".sound-spec", root), overviewImg: $(".overview-img", root),
      activation: $(".activation", root), error: $(".panel-error", root), summary: null, top: [],
    };
    $(".model-name", root).textContent = (state.info.models.length > 1 ? `${"AB"[index]} · ` : "") + model.name;
    $(".model-name", root).title = model.name;
    const select = $(".layer", root);
    for (const layer of model.layers) {
      const option = document.createElement("option");
      option.value = layer.id; option.textContent = `${layer.label} (${layer.maps} maps)`;
      select.append(option);
    }
    select.value = panel.layer;
    select.addEventListener("change", () => changeLayer(panel, select.value));
    const picker = $(".method", root);
    for (const method of state.info.methods || ["sonification"]) {
      const option = document.createElement("option");
      option.value = method; option.textContent = method.replace(/_/g, " ");
      picker.append(option);
    }
    picker.value = panel.method;
    picker.addEventListener("change", () => changeMethod(panel, picker.value));
    $(".k", root).max = state.info.limits.max_top_k;
    $(".top-button", root).addEventListener("click", () => sonifyTop(panel));
    $(".scale", root).textContent = `0–${(model.sample_rate / 2000).toFixed(0)} kHz; both spectrograms on the input's dB scale (peak − 80 dB … peak)`;
    const overview = $(".overview", root);
    overview.addEventListener("click", e => { const r = rowAt(panel, e); if (r != null) selectMap(panel, panel.overview.order[r], true); });
    overview.addEventListener("mousemove", e => {
      const r = rowAt(panel, e);
      $(".hover-info", root).textContent = r == null ? "" : `rank ${r + 1}: map ${panel.overview.order[r]}, max ${panel.overview.maxima[r].toPrecision(3)}`;
    });
    overview.addEventListener("mouseleave", () => { $(".hover-info", root).textContent = ""; });
    root.addEventListener("focusin", () => focusPanel(index));
    root.addEventListener("click", () => focusPanel(index));
    box.append(root);
    return panel;
  });
  focusPanel(Math.min(state.focused, state.panels.length - 1));
}

function defaultLayer(model) {
  const ids = model.layers.map(l => l.id);
  return ids.includes("8") ? "8" : ids[Math.floor(ids.length * 0.7)];
}

function focusPanel(index) {
  state.focused = index;
  state.panels.forEach((p, i) => p.root.classList.toggle("focused", i === index && state.panels.length > 1));
}

function rowAt(panel, event) {
  if (!panel.overview) return null;
  const rect = panel.overviewImg.getBoundingClientRect();
  const row = Math.floor((event.clientY - rect.top) / rect.height * panel.overview.maps);
  return row >= 0 && row < panel.overview.maps ? row : null;
}

async function changeLayer(panel, layer) {
  await openLayer(panel, layer);
  for (const other of state.panels) {     // keep both models on the same layer when they have it
    if (other !== panel && other.layer !== layer && other.model.layers.some(l => l.id === layer)) {
      $(".layer", other.root).value = layer;
      await openLayer(other, layer);
    }
  }
}

function layerURL(panel) { return `/api/models/${panel.index}/clips/${state.clip.id}/layers/${panel.layer}`; }

async function openLayer(panel, layer) {
  panel.layer = layer;
  panel.feature = null; panel.summary = null; panel.overview = null; panel.top = [];
  const token = ++panel.layerToken, clip = state.clip;
  panel.token++;
  showError(panel.error, null);
  $(".topk", panel.root).hidden = true;
  $(".map-label", panel.root).textContent = "–";
  $(".map-stats", panel.root).textContent = "";
  $(".downloads", panel.root).textContent = "";
  $(".row-mark", panel.root).style.display = "none";
  panel.soundImg.removeAttribute("src"); panel.soundImg.dataset.want = "";
  panel.overviewImg.removeAttribute("src");
  drawActivation(panel);
  panel.root.classList.add("loading");
  try {
    const overview = await getJSON(`${layerURL(panel)}/overview`);
    if (token !== panel.layerToken || clip !== state.clip) return;
    panel.overview = overview;
    const rows = overview.maps, boxHeight = window.innerWidth >= 1800 ? 340 : 260;
    const rowHeight = Math.max(3, Math.min(24, boxHeight / rows));
    panel.overviewImg.style.height = `${Math.round(rows * rowHeight)}px`;
    panel.overviewImg.dataset.want = overview.image;
    const image = setImage(panel.overviewImg, overview.image).catch(error => showError(panel.error, error));
    const steps = overview.pooled ? `${overview.layer_steps} steps (max-pooled to ${overview.steps} columns)` : `${overview.steps} steps`;
    $(".overview-label", panel.root).textContent = `activation overview: ${overview.maps} maps × ${steps}, most active on top (click a row)`;
    panel.root.classList.remove("loading");
    await selectMap(panel, overview.order[0], false);
    await image;
  } catch (error) {
    if (token === panel.layerToken) showError(panel.error, error);
  } finally {
    if (token === panel.layerToken) panel.root.classList.remove("loading");
  }
}

async function sonifyTop(panel) {
  const k = parseInt($(".k", panel.root).value, 10);
  const token = panel.layerToken, button = $(".top-button", panel.root);
  button.disabled = true;
  showError(panel.error, null);
  try {
    const {maps} = await getJSON(`${layerURL(panel)}/top?k=${encodeURIComponent(isNaN(k) ? "" : k)}`);
    if (token !== panel.layerToken) return;
    panel.top = maps;
    renderTop(panel);
    await selectMap(panel, maps[0].feature, true);
  } catch (error) {
    showError(panel.error, error);
  } finally { button.disabled = false; }
}

function renderTop(panel) {
  const box = $(".topk", panel.root);
  box.textContent = "";
  box.hidden = !panel.top.length;
  for (const m of panel.top) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `#${m.rank + 1} map ${m.feature} · ${m.max.toPrecision(3)}`;
    b.title = `coherence ${m.coherence.toFixed(2)}`;
    b.classList.toggle("active", m.feature === panel.feature);
    b.addEventListener("click", () => selectMap(panel, m.feature, true));
    box.append(b);
  }
}

async function selectMap(panel, feature, play) {
  panel.feature = feature;
  const token = ++panel.token, clip = state.clip;
  const rank = panel.overview.order.indexOf(feature);
  const mark = $(".row-mark", panel.root);
  mark.style.display = "block";
  mark.style.top = `${rank / panel.overview.maps * 100}%`;
  mark.style.height = `max(3px, ${100 / panel.overview.maps}%)`;
  $(".map-label", panel.root).textContent = `${panel.overview.label}, map ${feature}`;
  $(".map-stats", panel.root).textContent = "sonifying…";
  renderTop(panel);
  try {
    const summary = await getJSON(`${layerURL(panel)}/maps/${feature}`);
    if (token !== panel.token || clip !== state.clip) return;
    panel.summary = summary;
    $(".map-stats", panel.root).textContent =
      `rank ${summary.rank + 1} of ${panel.overview.maps} · max activation ${summary.max.toPrecision(3)}` +
      ` · coherence ${summary.coherence.toFixed(2)}${summary.silent ? " · silent (dead map)" : ""}`;
    const downloads = $(".downloads", panel.root);
    downloads.textContent = "";
    for (const kind of ["sonification", "residual"]) {
      const a = document.createElement("a");
      a.className = "button ghost"; a.href = `${summary.urls[kind + ".wav"]}?float=1`; a.download = "";
      a.textContent = `${kind} WAV`; downloads.append(a);
    }
    drawActivation(panel);
    renderSources();
    const shown = state.source.panel === panel.index && state.source.kind === "residual" ? "residual" : "sonification";
    showSpectrogram(panel, shown);
    if (play) await setSource("sonification", panel.index, true);
    else if (state.source.panel === panel.index && state.source.kind !== "input") await setSource(state.source.kind, panel.index, null);
  } catch (error) {
    if (token === panel.token) { showError(panel.error, error); $(".map-stats", panel.root).textContent = ""; }
  }
}

/* The URL of what the "sonification" source plays (ext "wav") or shows (ext "png"): the map's sonification, or
   the method picked in the panel (/api/explain). */
function soundURL(panel, ext) {
  const s = panel.summary;
  if (panel.method === "sonification") return s.urls[`sonification.${ext}`];
  const query = new URLSearchParams({model: panel.index, clip: s.clip, layer: s.layer, feature: s.feature, method: panel.method});
  if (ext === "png") query.set("format", "png");
  return `/api/explain?${query}`;
}

const soundLabel = panel => (panel.method === "sonification" ? "sonification" : panel.method.replace(/_/g, " "));

/* Play the picked method's explanation of the same map (the position is kept). */
async function changeMethod(panel, method) {
  panel.method = method;
  showError(panel.error, null);
  if (!panel.summary) return;
  renderSources();
  try {
    await setSource("sonification", panel.index, true);
  } catch (error) {
    showError(panel.error, error);           // e.g. a clip too long for methods other than the sonification
  }
}

function showSpectrogram(panel, kind) {
  if (!panel.summary) return;
  $(".sound-tag", panel.root).textContent = kind === "sonification" ? soundLabel(panel) : kind;
  const url = kind === "sonification" ? soundURL(panel, "png") : panel.summary.urls[`${kind}.png`];
  panel.soundImg.dataset.want = url;
  panel.soundImg.alt = `log spectrogram of the ${kind}`;
  setImage(panel.soundImg, url).catch(error => showError(panel.error, error));
}

function stepMap(delta) {
  const panel = state.panels[state.focused];
  if (!panel || !panel.overview) return;
  const rank = Math.max(0, panel.overview.order.indexOf(panel.feature));
  const next = Math.min(panel.overview.maps - 1, Math.max(0, rank + delta));
  if (next !== rank) selectMap(panel, panel.overview.order[next], true);
}

/* -------------------------------------------------------------- playback */
function renderSources() {
  const box = $("#sources");
  box.textContent = "";
  const options = [["input", 0, "Input"]];
  for (const p of state.panels) {
    const tag = state.panels.length > 1 ? `${"AB"[p.index]}: ` : "";
    const sound = p.method === "sonification" ? "Sonification" : soundLabel(p);
    options.push(["sonification", p.index, `${tag}${sound}`], ["residual", p.index, `${tag}Residual`]);
  }
  for (const [kind, index, label] of options) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = label; b.setAttribute("role", "radio");
    b.dataset.kind = kind; b.dataset.panel = index;
    const current = state.source.kind === kind && (kind === "input" || state.source.panel === index);
    b.setAttribute("aria-checked", current ? "true" : "false");
    b.disabled = kind !== "input" && !state.panels[index].summary;
    b.addEventListener("click", () => setSource(kind, index, null));
    box.append(b);
  }
}

/* Play ``kind`` ("input", "sonification", "residual") of panel ``index``, keeping the position;
   ``play`` true/false starts/pauses, null keeps the current play state. */
async function setSource(kind, index, play) {
  const player = $("#player");
  let url;
  if (kind === "input") url = `/api/clips/${state.clip.id}/audio.wav`;
  else {
    const summary = state.panels[index] && state.panels[index].summary;
    if (!summary) return;
    url = kind === "sonification" ? soundURL(state.panels[index], "wav") : summary.urls[`${kind}.wav`];
    showSpectrogram(state.panels[index], kind);
  }
  state.source = {kind, panel: index};
  renderSources();
  const wasPlaying = !player.paused, position = player.currentTime || 0;
  const src = await blobURL(url);
  if (state.source.kind !== kind || state.source.panel !== index) return;
  if (player.dataset.src !== url) {
    player.dataset.src = url;
    player.src = src;
    await new Promise(resolve => {
      player.addEventListener("loadedmetadata", resolve, {once: true});
      player.addEventListener("error", resolve, {once: true});
    });
    if (player.error) { showError($("#clip-error"), {message: `the browser cannot play ${kind}`}); return; }
    if (position < player.duration) player.currentTime = position;
  }
  const start = play === null ? wasPlaying : play;
  if (start) await player.play().catch(error => showError($("#clip-error"), {message: `playback blocked: ${error.message}`}));
  else if (play === false) player.pause();
}

function togglePlay() {
  const player = $("#player");
  if (!player.src) return;
  if (player.paused) player.play().catch(() => {}); else player.pause();
}

function tick() {
  const player = $("#player");
  const duration = player.duration || state.duration || 0;
  const t = player.currentTime || 0;
  $("#time").textContent = `${fmt(t)} / ${fmt(duration)} s`;
  $("#play").textContent = player.paused ? "▶" : "❚❚";
  $("#play").setAttribute("aria-label", player.paused ? "play" : "pause");
  const x = duration > 0 ? `${(t / duration) * 100}%` : "0";
  document.querySelectorAll("[data-timeline]").forEach(el => {
    el.classList.toggle("playing", !player.paused || t > 0);
    $(".playhead", el).style.left = x;
  });
  requestAnimationFrame(tick);
}

function seekFromEvent(event, element) {
  const player = $("#player");
  const rect = element.getBoundingClientRect();
  const duration = player.duration || state.duration;
  if (duration > 0) player.currentTime = Math.max(0, Math.min(1, (event.clientX - rect.left) / rect.width)) * duration;
}

/* -------------------------------------------------------------- drawing */
function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1, width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = Math.max(1, Math.round(width * ratio)); canvas.height = Math.max(1, Math.round(height * ratio));
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [context, width, height];
}

function drawWaveform() {
  const env = state.envelope;
  const [g, w, h] = fitCanvas($("#waveform"));
  g.clearRect(0, 0, w, h);
  if (!env) return;
  const scale = env.peak > 0 ? (h / 2 - 3) / env.peak : 0, n = env.min.length;
  g.fillStyle = "#3658d4";
  for (let x = 0; x < w; x++) {
    const i = Math.min(n - 1, Math.floor(x / w * n)), j = Math.min(n, Math.max(i + 1, Math.floor((x + 1) / w * n)));
    let low = Infinity, high = -Infinity;
    for (let k = i; k < j; k++) { low = Math.min(low, env.min[k]); high = Math.max(high, env.max[k]); }
    g.fillRect(x, h / 2 - high * scale, 1, Math.max(1, (high - low) * scale));
  }
}

function drawActivation(panel) {
  const [g, w, h] = fitCanvas(panel.activation);
  g.clearRect(0, 0, w, h);
  const s = panel.summary;
  if (!s || !state.duration) return;
  const values = s.activation, top = s.layer_max > 0 ? s.layer_max : 1;
  const [t0, dt] = s.times;
  g.strokeStyle = "#dfe3ea"; g.beginPath(); g.moveTo(0, h - 2.5); g.lineTo(w, h - 2.5); g.stroke();
  g.fillStyle = "rgba(54, 88, 212, .18)"; g.strokeStyle = "#3658d4"; g.lineWidth = 1.4;
  const xy = i => [(t0 + i * dt) / state.duration * w, h - 3 - values[i] / top * (h - 8)];
  g.beginPath(); g.moveTo(xy(0)[0], h - 3);
  values.forEach((_, i) => g.lineTo(...xy(i)));
  g.lineTo(xy(values.length - 1)[0], h - 3); g.closePath(); g.fill();
  g.beginPath(); values.forEach((_, i) => (i ? g.lineTo(...xy(i)) : g.moveTo(...xy(i)))); g.stroke();
  g.fillStyle = "#5d6677"; g.font = "11px system-ui, sans-serif"; g.textAlign = "right";
  g.fillText(`max ${s.max.toPrecision(3)} (layer max ${s.layer_max.toPrecision(3)})`, w - 6, 12);
}

async function showCoherence() {
  const button = $("#coherence-button"), clip = state.clip;
  button.disabled = true; button.textContent = "Computing coherence…";
  try {
    const curves = await Promise.all(state.panels.map(p => getJSON(`/api/models/${p.index}/clips/${clip.id}/coherence`)));
    if (clip !== state.clip) return;
    $("#coherence").hidden = false;
    drawCoherence(curves);
    const part = curves[0].of_seconds > curves[0].seconds + 0.01 ? ` (of the first ${curves[0].seconds.toFixed(0)} s of ${curves[0].of_seconds.toFixed(0)} s)` : "";
    button.title = part ? `coherence measured${part}` : "";
  } catch (error) {
    showError($("#clip-error"), error);
  } finally { button.disabled = false; button.textContent = "Coherence per layer"; }
}

function drawCoherence(curves) {
  state.coherence = curves;
  const [g, w, h] = fitCanvas($("#coherence-chart"));
  const left = 44, right = 16, top = 14 + 14 * curves.length, bottom = 26, colors = ["#3658d4", "#e0663a"];
  g.clearRect(0, 0, w, h);
  g.font = "11px system-ui, sans-serif"; g.fillStyle = "#5d6677"; g.strokeStyle = "#e8ebf0";
  const n = curves[0].layers.length;
  const X = i => left + (n > 1 ? i / (n - 1) : 0.5) * (w - left - right), Y = v => top + (1 - v) * (h - top - bottom);
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    g.beginPath(); g.moveTo(left, Y(v)); g.lineTo(w - right, Y(v)); g.stroke();
    g.textAlign = "right"; g.fillText(v.toFixed(2), left - 6, Y(v) + 4);
  }
  g.textAlign = "center";
  curves[0].layers.forEach((id, i) => g.fillText(id, X(i), h - 8));
  curves.forEach((curve, m) => {
    g.strokeStyle = g.fillStyle = colors[m]; g.lineWidth = 2; g.beginPath();
    let started = false;
    curve.coherence.forEach((v, i) => {
      if (v == null) { started = false; return; }
      if (started) g.lineTo(X(i), Y(v)); else { g.moveTo(X(i), Y(v)); started = true; }
    });
    g.stroke();
    curve.coherence.forEach((v, i) => { if (v != null) { g.beginPath(); g.arc(X(i), Y(v), 3, 0, 7); g.fill(); } });
    g.textAlign = "right";
    const label = `${curves.length > 1 ? "AB"[m] + ": " : ""}${state.info.models[m].name}`;
    g.fillText(label, w - right, 10 + 14 * m);
  });
  g.fillStyle = "#5d6677"; g.textAlign = "left";
  g.fillText(`mean top-${curves[0].k} coherence, input vs. most active map, per layer`, left, 10);
}

/* ------------------------------------------------------------------ start */
function onKey(event) {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName) && event.target.type !== "file";
  if (event.key === "/" && !typing) { event.preventDefault(); $("#filter").focus(); return; }
  if (typing || event.ctrlKey || event.metaKey || event.altKey || !state.clip) return;
  const panel = state.panels[state.focused];
  switch (event.key) {
    case " ": event.preventDefault(); togglePlay(); break;
    case "ArrowRight": case "ArrowDown": event.preventDefault(); stepMap(1); break;
    case "ArrowLeft": case "ArrowUp": event.preventDefault(); stepMap(-1); break;
    case "i": case "I": setSource("input", 0, null); break;
    case "s": case "S": if (panel) setSource("sonification", panel.index, null); break;
    case "r": case "R": if (panel) setSource("residual", panel.index, null); break;
    default: break;
  }
}

async function start() {
  try {
    state.info = await getJSON("/api/info");
  } catch (error) {
    $("#empty").textContent = `The explorer server did not answer: ${error.message}`;
    return;
  }
  const models = $("#models");
  state.info.models.forEach((m, i) => {
    const span = document.createElement("span");
    const b = document.createElement("b"); b.textContent = m.name;
    span.append(state.info.models.length > 1 ? `${"AB"[i]}: ` : "", b,
      ` · ${m.parameters.toLocaleString("en")} parameters · ${m.head ? `${m.classes}-class head` : "no head"} · ${m.sample_rate} Hz`);
    models.append(span);
  });
  $("#filter").addEventListener("input", renderClips);
  $("#upload").addEventListener("change", e => { const f = e.target.files[0]; if (f) uploadBlob(f, f.name); e.target.value = ""; });
  $("#record").addEventListener("click", toggleRecording);
  $("#play").addEventListener("click", togglePlay);
  $("#coherence-button").addEventListener("click", showCoherence);
  $("#help-button").addEventListener("click", () => {
    const help = $("#help"); help.hidden = !help.hidden; $("#help-button").setAttribute("aria-expanded", String(!help.hidden));
  });
  const wave = $(".wave");
  wave.addEventListener("click", e => seekFromEvent(e, wave));
  document.addEventListener("keydown", onKey);
  let resize;
  window.addEventListener("resize", () => {
    clearTimeout(resize);
    resize = setTimeout(() => { drawWaveform(); state.panels.forEach(drawActivation); if (state.coherence && !$("#coherence").hidden) drawCoherence(state.coherence); }, 120);
  });
  requestAnimationFrame(tick);
  await loadClips(new URLSearchParams(location.search).get("clip"));
}

start();
