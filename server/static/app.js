// Browser demo of the speech server: the microphone streams to /asr with live
// partial results; typed text is spoken through streaming /tts.
//
// Every message received is kept in window.speechLog, and counters are kept on
// <body> (data-asr-partials, data-asr-finals, data-tts-chunks,
// data-tts-samples, data-tts-done) so that a test can check what was rendered.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
window.speechLog = [];

function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? "?token=" + encodeURIComponent(token) : "";
  return scheme + "//" + location.host + path + query;
}

function count(name, by = 1) {
  const key = name;
  document.body.dataset[key] = String(Number(document.body.dataset[key] || 0) + by);
}

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// ------------------------------------------------------------------ ASR

const asr = {
  socket: null,
  context: null,
  stream: null,
  node: null,
  status: document.getElementById("asr-status"),
  finals: document.getElementById("finals"),
  partial: document.getElementById("partial"),
  startButton: document.getElementById("mic-start"),
  stopButton: document.getElementById("mic-stop"),
};

function onAsrMessage(event) {
  const message = JSON.parse(event.data);
  window.speechLog.push(message);
  if (message.type === "started") {
    setStatus(asr.status, "Listening (" + message.sample_rate + " Hz).");
  } else if (message.type === "partial") {
    count("asrPartials");
    asr.partial.textContent = message.text;
  } else if (message.type === "final") {
    count("asrFinals");
    asr.partial.textContent = "";
    if (message.text) {
      const line = document.createElement("p");
      line.dataset.segment = String(message.segment);
      line.textContent = message.text;
      asr.finals.appendChild(line);
    }
    if (message.last) setStatus(asr.status, "Done.");
  } else if (message.type === "error") {
    setStatus(asr.status, "Error: " + message.code + ": " + message.message, true);
  }
}

async function startMicrophone() {
  asr.startButton.disabled = true;
  try {
    asr.stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: false,
        noiseSuppression: false,
        autoGainControl: false,
      },
    });
    asr.context = new AudioContext();
    await asr.context.audioWorklet.addModule("/static/capture-worklet.js");
    const source = asr.context.createMediaStreamSource(asr.stream);
    asr.node = new AudioWorkletNode(asr.context, "capture");
    asr.socket = new WebSocket(wsUrl("/asr"));
    asr.socket.binaryType = "arraybuffer";
    asr.socket.onmessage = onAsrMessage;
    asr.socket.onclose = (event) => {
      if (event.code !== 1000 && !asr.status.classList.contains("error")) {
        setStatus(asr.status, "Closed (" + event.code + ").", true);
      }
      stopCapture();
      asr.startButton.disabled = false;
      asr.stopButton.disabled = true;
    };
    await new Promise((resolve, reject) => {
      asr.socket.onopen = resolve;
      asr.socket.onerror = () => reject(new Error("cannot connect to /asr"));
    });
    asr.socket.send(JSON.stringify({
      type: "start", sample_rate: asr.context.sampleRate, format: "f32le",
    }));
    asr.node.port.onmessage = (event) => {
      if (asr.socket && asr.socket.readyState === WebSocket.OPEN) {
        asr.socket.send(event.data.buffer);
      }
    };
    source.connect(asr.node);
    asr.stopButton.disabled = false;
    await asr.context.resume();
  } catch (error) {
    setStatus(asr.status, "Error: " + error.message, true);
    stopCapture();
    asr.startButton.disabled = false;
  }
}

function stopCapture() {
  if (asr.node) { asr.node.port.onmessage = null; asr.node.disconnect(); asr.node = null; }
  if (asr.stream) { asr.stream.getTracks().forEach((t) => t.stop()); asr.stream = null; }
  if (asr.context) { asr.context.close(); asr.context = null; }
}

function stopMicrophone() {
  asr.stopButton.disabled = true;
  stopCapture();
  if (asr.socket && asr.socket.readyState === WebSocket.OPEN) {
    setStatus(asr.status, "Finishing...");
    asr.socket.send(JSON.stringify({ type: "end" }));  // the server closes
  }
}

asr.startButton.onclick = startMicrophone;
asr.stopButton.onclick = stopMicrophone;

// ------------------------------------------------------------------ TTS

const tts = {
  socket: null,
  context: null,
  sampleRate: 16000,
  playAt: 0,
  sources: [],
  pendingChunk: null,
  status: document.getElementById("tts-status"),
  speakButton: document.getElementById("tts-speak"),
  stopButton: document.getElementById("tts-stop"),
};

function ttsSocket() {
  if (tts.socket && tts.socket.readyState <= WebSocket.OPEN) return tts.socket;
  const socket = new WebSocket(wsUrl("/tts"));
  socket.binaryType = "arraybuffer";
  socket.onmessage = onTtsMessage;
  socket.onclose = (event) => {
    if (event.code !== 1000 && event.code !== 1005) {
      setStatus(tts.status, "Closed (" + event.code + ").", true);
    }
    tts.socket = null;
  };
  tts.socket = socket;
  return socket;
}

function playChunk(samples) {
  const buffer = tts.context.createBuffer(1, samples.length, tts.sampleRate);
  buffer.copyToChannel(samples, 0);
  const source = tts.context.createBufferSource();
  source.buffer = buffer;
  source.connect(tts.context.destination);
  tts.playAt = Math.max(tts.playAt, tts.context.currentTime + 0.05);
  source.start(tts.playAt);
  tts.playAt += buffer.duration;
  tts.sources.push(source);
  source.onended = () => { tts.sources = tts.sources.filter((s) => s !== source); };
}

function onTtsMessage(event) {
  if (event.data instanceof ArrayBuffer) {
    const samples = new Float32Array(event.data);
    count("ttsChunks");
    count("ttsSamples", samples.length);
    playChunk(samples);
    return;
  }
  const message = JSON.parse(event.data);
  window.speechLog.push(message);
  if (message.type === "start") {
    tts.sampleRate = message.sample_rate;
    setStatus(tts.status, "Speaking...");
  } else if (message.type === "done") {
    count("ttsDone");
    tts.stopButton.disabled = true;
    setStatus(tts.status, (message.cancelled ? "Stopped" : "Done") + " (" +
      message.duration.toFixed(2) + " s of audio).");
  } else if (message.type === "error") {
    setStatus(tts.status, "Error: " + message.code + ": " + message.message, true);
  }
}

async function speak() {
  const text = document.getElementById("tts-text").value;
  const pace = Number(document.getElementById("tts-pace").value) || 1;
  if (!tts.context) tts.context = new AudioContext();
  await tts.context.resume();
  const socket = ttsSocket();
  const request = JSON.stringify({ type: "synthesize", text, pace, format: "f32le" });
  if (socket.readyState === WebSocket.OPEN) socket.send(request);
  else socket.addEventListener("open", () => socket.send(request), { once: true });
  tts.stopButton.disabled = false;
  setStatus(tts.status, "Requested...");
}

function stopSpeaking() {
  if (tts.socket && tts.socket.readyState === WebSocket.OPEN) {
    tts.socket.send(JSON.stringify({ type: "cancel", all: true }));
  }
  tts.sources.forEach((s) => { try { s.stop(); } catch (e) { /* ended */ } });
  tts.sources = [];
  tts.playAt = 0;
}

tts.speakButton.onclick = speak;
tts.stopButton.onclick = stopSpeaking;
