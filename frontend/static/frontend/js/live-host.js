// The host page: microphone → AudioWorklet (16 kHz PCM16, 80 ms frames) → WebSocket, with a level
// meter, pause/resume and stop. Frames that cannot be sent while reconnecting are kept and sent after.
import { CaptionView, LiveSocket } from "./live-common.js";

const root = document.getElementById("live");
const view = new CaptionView(root);
const el = (id) => document.getElementById(id);
const [startButton, pauseButton, stopButton] = [el("start"), el("pause"), el("stop")];
const deviceSelect = el("device");
const MAX_BACKLOG = 750; // frames kept while offline: 60 s of audio

let audio = null; // {context, stream, node}
let streaming = false; // the server has started the session
let paused = false;
let ending = false;
const backlog = [];

function say(text) {
  el("capture-status").textContent = text;
}
function fail(text) {
  const box = el("capture-error");
  box.hidden = !text;
  box.textContent = text || "";
}

const MIC_ERRORS = {
  NotAllowedError: "Microphone access was refused. Allow the microphone for this site (the icon in the address bar), then press Start again.",
  SecurityError: "The browser does not allow the microphone on this page. The site must be opened over HTTPS.",
  NotFoundError: "No microphone was found. Connect one, or choose another input, then press Start again.",
  NotReadableError: "The microphone could not be opened; another program may be using it. Close that program or choose another input.",
  OverconstrainedError: "The chosen input is no longer available. Choose another input, then press Start again.",
  AbortError: "The microphone stopped unexpectedly. Press Start again.",
};

async function listDevices() {
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  const chosen = deviceSelect.value;
  deviceSelect.replaceChildren(new Option("Default microphone", ""));
  devices.forEach((d, i) => deviceSelect.append(new Option(d.label || `Microphone ${i + 1}`, d.deviceId)));
  deviceSelect.value = chosen;
}

async function openMicrophone() {
  const deviceId = deviceSelect.value;
  const stream = await navigator.mediaDevices.getUserMedia({
    // The browser's call processing (echo cancelling, noise suppression, gain control) would reshape the
    // speech the model and the recording get; captions want the microphone as it is.
    audio: {
      deviceId: deviceId ? { exact: deviceId } : undefined,
      channelCount: 1,
      echoCancellation: false,
      noiseSuppression: false,
      autoGainControl: false,
    },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule(root.dataset.workletUrl);
  const node = new AudioWorkletNode(context, "capture-16k");
  const mute = context.createGain();
  mute.gain.value = 0; // pulled by the graph, never heard
  context.createMediaStreamSource(stream).connect(node).connect(mute).connect(context.destination);
  node.port.onmessage = (event) => frame(event.data);
  stream.getAudioTracks()[0].addEventListener("ended", () => fail(MIC_ERRORS.AbortError));
  await listDevices();
  return { context, stream, node };
}

function frame({ pcm, level }) {
  el("level").value = Math.min(1, level * 4);
  if (!streaming && !ending) return backlog.length < MAX_BACKLOG && !paused && audio && backlog.push(pcm);
  if (paused || ending) return;
  if (socket.open && backlog.length === 0) socket.ws.send(pcm);
  else if (backlog.length < MAX_BACKLOG) backlog.push(pcm);
}

function flush() {
  while (backlog.length && socket.open) socket.ws.send(backlog.shift());
}

const socket = new LiveSocket(root.dataset.socketPath, {
  open() {
    // A reconnect resumes the same session: the server appends to the same recording.
    if (audio && !ending) socket.send({ type: "start", delay_ms: Number(el("delay").value) });
  },
  message(m) {
    if (m.type === "started") {
      streaming = true;
      say(paused ? "Paused." : "Live: your audio is being captioned and recorded.");
      if (paused) socket.send({ type: "pause" });
      flush();
    } else if (m.type === "caption") view.caption(m, socket.offsetMs);
    else if (m.type === "status") {
      view.hostStatus(m);
      showEngine(m.engine);
    } else if (m.type === "error") fail(m.message);
    else if (m.type === "stopping") say("Finishing the last captions…");
    else if (m.type === "ended") finished();
  },
  close(event, final) {
    streaming = false;
    if (ending) return;
    if (final) {
      fail(event.code === 4409 ? "This meeting is now streamed from another window; this one has stopped." : "You are signed out or no longer own this meeting. Sign in again.");
      release();
    } else if (audio) say("Connection to the server lost. Reconnecting; your audio is kept and sent when the connection is back.");
  },
  silent() {
    say("The server stopped answering (the connection is half-open). Reconnecting…");
  },
});

function showEngine(engine) {
  let text = "";
  if (engine?.stalled) text = "The speech engine has stalled: captions are not being made. Your audio is still recorded.";
  else if (engine?.message) text = engine.message;
  else if (engine?.ready) text = `Speech engine working; ${Math.round((engine.lag_ms || 0) / 100) / 10} s of audio waiting.`;
  el("engine-status").textContent = text;
}

function release() {
  audio?.stream.getTracks().forEach((t) => t.stop());
  audio?.context.close();
  audio = null;
  startButton.disabled = false;
  pauseButton.disabled = stopButton.disabled = true;
}

function finished() {
  release();
  say("Stopped. The recording is saved and the meeting will be transcribed again in full.");
  socket.stop();
}

startButton.addEventListener("click", async () => {
  fail(null);
  say("Opening the microphone…");
  try {
    audio = await openMicrophone();
  } catch (err) {
    say("Not started.");
    return fail(MIC_ERRORS[err.name] || `The microphone could not be opened (${err.message}).`);
  }
  startButton.disabled = true;
  pauseButton.disabled = stopButton.disabled = false;
  ending = false;
  say("Connecting…");
  socket.send({ type: "start", delay_ms: Number(el("delay").value) }); // or, if not yet open, on open

});

pauseButton.addEventListener("click", () => {
  paused = !paused;
  pauseButton.textContent = paused ? "Resume" : "Pause";
  socket.send({ type: paused ? "pause" : "resume" });
  say(paused ? "Paused: nothing is sent or recorded until you resume." : "Live: your audio is being captioned and recorded.");
});

stopButton.addEventListener("click", () => {
  ending = true;
  flush();
  say("Stopping: the last words are being captioned…");
  socket.send({ type: "stop" });
  pauseButton.disabled = stopButton.disabled = true;
});

socket.connect();
deviceSelect.addEventListener("focus", () => navigator.mediaDevices.enumerateDevices && listDevices().catch(() => {}), { once: true });
