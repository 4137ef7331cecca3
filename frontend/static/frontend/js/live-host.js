// The host's recording: microphone → AudioWorklet (16 kHz PCM16, 80 ms frames) → WebSocket, with a level
// meter, pause/resume and stop. Frames that cannot be sent while reconnecting are kept and sent after.
//
// It runs in the recording window (live/recorder, `data-mode="recorder"`), which the host page opens at
// Start, so that reloading or leaving the host page never stops the audio; the host page then shows the
// window's state and passes Pause and Stop to it. Where the browser refuses to open the window, the host
// page records itself.
import { CaptionView, LiveSocket, MissedFinals } from "./live-common.js";
import { openMicrophone as openGraph, takeEarly } from "./live-microphone.js";
import { GONE_MS, RecorderLink, recorderBeating, recorderWindowName } from "./live-recorder.js";

const root = document.getElementById("live");
const isRecorder = root.dataset.mode === "recorder";
const meetingId = root.dataset.meeting;
const view = isRecorder ? null : new CaptionView(root); // the window has no caption pane: the host page shows them
const el = (id) => document.getElementById(id);
const [startButton, pauseButton, stopButton] = [el("start"), el("pause"), el("stop")];
const deviceSelect = el("device");
const FRAME_MS = 80;
const MAX_KEPT = (15 * 60 * 1000) / FRAME_MS; // frames kept unconfirmed: 15 minutes of audio, 29 MB
const WARN_KEPT = (12 * 60 * 1000) / FRAME_MS; // the host is warned three minutes before that
const MAX_IN_FLIGHT = 256 * 1024; // bytes handed to the socket but not yet on the wire

let audio = null; // {context, stream, node}
let streaming = false; // the server has started the session on the current socket
let paused = false;
let ending = false;
let overflowed = false;
// Every captured frame is numbered within this page's capture and kept until the server confirms it.
const capture = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
const frames = []; // {seq, pcm}, oldest first
let nextSeq = 1;
let sentUpTo = 0; // the last seq handed to the current socket
let pumpTimer = null;
let resumeOffered = false;
let resumed = false; // this capture has been started on the server before: a later start is a resume
// Read by monitoring and by the fault-injection tests: what this page captured and still keeps.
// openedAt and startedAt: when the socket last opened and the server last started the session;
// askedAt, micAt and graphAt: when the microphone was asked for and granted, and the audio graph ran
// (where a reload's lost time goes).
const stats = (root.liveStats = { captured: 0, kept: 0, firstAt: null, lastAt: null, maxKeptMs: MAX_KEPT * FRAME_MS, openedAt: null, startedAt: null,
  askedAt: null, micAt: null, graphAt: null });
// How long a meeting waits for its host to come back (SCRIBE_LIVE_HOST_GRACE_SECONDS), in minutes as the messages say it.
const GRACE_MINUTES = Math.round(Number(root.dataset.graceSeconds || 120) / 60);
// What the tab's previous page captured, up to its last moment (a reload's loss is counted from there).
const PREVIOUS_CAPTURE = "scribe-live-previous-capture";

// The recording window and the host pages of this meeting in this browser.
let done = false; // the meeting was stopped from here: nothing more to record
let opening = false; // the microphone is being opened
let heard = 0; // frames from the microphone, paused or not
const remote = { on: false, heardAt: 0, paused: false, capture: null }; // the host page's view of a recording window
const openedFor = new URLSearchParams(location.search).get("from") || ""; // in a recording window: the host page that opened it
const link = meetingId && globalThis.BroadcastChannel ? new RecorderLink(meetingId, isRecorder ? obey : mirror) : null;

function say(text) {
  // Written only when it changes: a status region is read out on every change.
  if (el("capture-status").textContent !== text) el("capture-status").textContent = text;
  publish();
}
function fail(text, kind = "") {
  const box = el("capture-error");
  box.hidden = !text;
  box.dataset.kind = text ? kind : "";
  if (box.textContent !== (text || "")) box.textContent = text || "";
  publish();
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
  if (isRecorder) return; // the host page chose the input
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  const chosen = deviceSelect.value;
  deviceSelect.replaceChildren(new Option("Default microphone", ""));
  devices.forEach((d, i) => deviceSelect.append(new Option(d.label || `Microphone ${i + 1}`, d.deviceId)));
  deviceSelect.value = chosen;
}

async function openMicrophone() {
  // A reloaded page may have opened it already, while the page loaded.
  const audio = (await takeEarly()) || (await openGraph(deviceSelect.value));
  Object.assign(stats, { askedAt: audio.askedAt, micAt: audio.micAt, graphAt: audio.graphAt });
  audio.stream.getAudioTracks()[0].addEventListener("ended", () => fail(MIC_ERRORS.AbortError));
  listDevices().catch(() => {}); // names become readable once allowed; frames must not wait for them
  return audio;
}

function frame({ pcm, level, at }) {
  el("level").value = Math.min(1, level * 4);
  // The recording window's beat, about twice a second, driven by the audio itself, paused or not: a
  // window behind others has its timers slowed, never its audio.
  if (++heard % 6 === 0) publish();
  if (paused || ending || !audio) return;
  if (frames.length >= MAX_KEPT) {
    overflowed = true; // keep the oldest: what is kept arrives whole, with its gap said in words
    return warnBacklog();
  }
  frames.push({ seq: nextSeq++, pcm });
  Object.assign(stats, { captured: nextSeq - 1, kept: frames.length, lastAt: at });
  stats.firstAt ??= stats.lastAt;
  if (frames.length === WARN_KEPT) warnBacklog();
  pump();
}

/** Send what the server has not got yet, oldest first, without piling more than a little into the socket. */
function pump() {
  clearTimeout(pumpTimer);
  pumpTimer = null;
  if (!streaming) return;
  let i = frames.findIndex((f) => f.seq > sentUpTo);
  if (i < 0) return;
  for (; i < frames.length; i++) {
    if (socket.buffered > MAX_IN_FLIGHT) {
      pumpTimer = setTimeout(pump, 50);
      return;
    }
    const f = frames[i];
    if (f.seq !== sentUpTo + 1) socket.send({ type: "frames", seq: f.seq, late: 0 }); // a gap the page could not keep
    if (!socket.sendBinary(f.pcm)) return;
    sentUpTo = f.seq;
  }
}

/** The server has these frames in the recording: they need not be kept any more. */
function acked(seq) {
  let n = 0;
  while (n < frames.length && frames[n].seq <= seq) n++;
  if (n) frames.splice(0, n);
  stats.kept = frames.length;
  if (frames.length < WARN_KEPT && !overflowed && el("capture-error").dataset.kind === "backlog") fail(null);
}

function keptSeconds() {
  return Math.round((frames.length * FRAME_MS) / 1000);
}

function warnBacklog() {
  const minutes = Math.round((MAX_KEPT * FRAME_MS) / 60000);
  const text = overflowed
    ? `The connection has been down for over ${minutes} minutes: this page is keeping the first ${minutes} minutes and no longer keeping newer audio. Check the network connection.`
    : `The connection has been down for ${Math.round(keptSeconds() / 60)} minutes. This page keeps up to ${minutes} minutes of audio; after that newer audio is not kept. Check the network connection.`;
  fail(text, "backlog");
}

function started(m) {
  streaming = true;
  stats.startedAt = Date.now();
  acked(m.acked || 0);
  sentUpTo = frames.length ? frames[0].seq - 1 : nextSeq - 1;
  // After a drop, everything kept now was captured while the page could not send: its captions are late.
  // (At the first start it is only the audio of the moments the engine took to open.)
  socket.send({ type: "frames", seq: sentUpTo + 1, late: resumed ? frames.length : 0 });
  resumed = true;
  if (ending) return sendStop();
  say(paused ? "Paused." : "Live: your audio is being captioned and recorded.");
  if (paused) socket.send({ type: "pause" });
  pump();
}

function sendStart() {
  // `ending`: Stop was pressed; if the server already ended the meeting it says so instead of starting again.
  socket.send({ type: "start", delay_ms: Number(el("delay").value), capture, ending });
}

/** Stop goes after the last kept frame, so the recording and the captions end with the last word. */
function sendStop() {
  if (!streaming) return; // sent again once reconnected
  if (frames.length && frames[frames.length - 1].seq > sentUpTo) {
    pump();
    return setTimeout(sendStop, 100);
  }
  socket.send({ type: "stop" });
}

const socket = new LiveSocket(root.dataset.socketPath, {
  open() {
    // A reconnect resumes the same session: the server appends to the same recording from the first frame it lacks.
    if (audio) sendStart();
    missed?.connected(); // the caption pane, like the follower's view, catches up on finals made while away
  },
  message(m) {
    if (m.type === "started") started(m);
    else if (m.type === "ack") acked(m.seq);
    else if (m.type === "caption") view?.caption(m, socket.offsetMs);
    else if (m.type === "replay") missed?.replay(m);
    else if (m.type === "status") {
      view?.hostStatus(m);
      missed?.status(m);
      showEngine(m.engine);
      offerResume(m);
    } else if (m.type === "error") fail(m.message);
    else if (m.type === "stopping") say("Finishing the last captions…");
    else if (m.type === "ended") finished();
  },
  close(event, final) {
    streaming = false;
    if (final) {
      fail(event.code === 4409 ? "This meeting is now streamed from another window; this one has stopped." : "You are signed out or no longer own this meeting. Sign in again.");
      release();
    } else if (audio || ending) {
      say("Connection to the server lost. Reconnecting by itself; your audio is kept and sent when the connection is back.");
    }
    view?.connection("reconnecting");
  },
  state(state) {
    if (state !== "open") return;
    stats.openedAt = Date.now();
    view?.connection("open");
  },
  silent() {
    say("The server stopped answering. Reconnecting by itself; your audio is kept and sent when the connection is back.");
  },
});

stats.connections = socket.history;
const missed = view && new MissedFinals(view, (message) => socket.send(message));

function showEngine(engine) {
  let text = "";
  if (engine?.stalled) text = "The speech engine has stalled: captions are not being made. Your audio is still recorded.";
  else if (engine?.message) text = engine.message;
  else if (engine?.ready) text = `Speech engine working; ${Math.round((engine.lag_ms || 0) / 100) / 10} s of audio waiting.`;
  if (el("engine-status").textContent !== text) el("engine-status").textContent = text;
  publish();
}

function release() {
  audio?.stream.getTracks().forEach((t) => t.stop());
  audio?.context.close();
  audio = null;
  startButton.disabled = el("live").dataset.modelReady !== "1"; // no speech model: nothing could caption
  pauseButton.disabled = stopButton.disabled = true;
  publish();
}

function finished() {
  release();
  frames.length = 0; // the server ended the meeting after the last frame: nothing is left to keep
  stats.kept = 0;
  done = true;
  say("Stopped. The recording is saved and the meeting will be transcribed again in full.");
  socket.stop();
  if (isRecorder) {
    link.quiet();
    setTimeout(() => window.close(), 3000); // its work is done; the host page says the same
  }
}

async function startCapture() {
  if (audio || opening) return;
  opening = true;
  fail(null);
  say("Opening the microphone…");
  try {
    audio = await openMicrophone();
    audio.listen(frame); // frames the graph made while this page loaded come first
  } catch (err) {
    opening = false;
    say("Not started.");
    return fail(MIC_ERRORS[err.name] || `The microphone could not be opened (${err.message}).`);
  }
  opening = false;
  startButton.disabled = true;
  pauseButton.disabled = stopButton.disabled = false;
  ending = false;
  say("Connecting…");
  sendStart(); // or, if not yet open, on open
}

/** A reloaded page finds its meeting waiting for it: continue at once where the browser allows it. */
async function offerResume(status) {
  if (isRecorder || remote.on || recorderBeating(meetingId)) return; // the recording window has it
  if (resumeOffered || audio || ending || !["reconnecting", "live", "paused"].includes(status.host)) return;
  resumeOffered = true;
  say(`This meeting is live and waiting for you. Press “Start live captions” within ${GRACE_MINUTES} minutes of leaving to continue the same session.`);
  const permission = await navigator.permissions?.query({ name: "microphone" }).catch(() => null);
  if (permission?.state !== "granted") return;
  await startCapture();
  // Without a click the browser may keep the audio graph suspended: give it a moment to allow it.
  if (audio?.context.state === "suspended") await Promise.race([audio.context.resume(), new Promise((done) => setTimeout(done, 500))]);
  if (audio?.context.state === "suspended") {
    release();
    say(`This meeting is live and waiting for you. Press “Start live captions” to continue the same session.`);
  }
}

function togglePause() {
  paused = !paused;
  pauseButton.textContent = paused ? "Resume" : "Pause";
  socket.send({ type: paused ? "pause" : "resume" });
  say(paused ? "Paused: nothing is sent or recorded until you resume." : "Live: your audio is being captioned and recorded.");
}

function stopCapture() {
  ending = true;
  sendStop();
  pauseButton.disabled = stopButton.disabled = true;
  say("Stopping: the last words are being captioned…");
}

function openedByHostPage() {
  try {
    return Boolean(window.opener) && window.opener.location.origin === location.origin;
  } catch {
    return false; // another site's window: reading its location is refused
  }
}

/** The recording window tells the host pages what it is doing: on changes, and twice a second while it records. */
function publish() {
  if (!isRecorder || !link) return;
  const box = el("capture-error");
  const recording = Boolean(audio) || opening || (ending && !done);
  if (recording) link.beat();
  link.post({ type: "state", capture, from: openedFor, recording, done, paused, ending, status: el("capture-status").textContent, error: box.hidden ? "" : box.textContent,
    errorKind: box.dataset.kind || "", engine: el("engine-status").textContent, level: Number(el("level").value), stats: { ...stats } });
}

/** In the recording window: what a host page asks of it. */
function obey(m) {
  if (m.type === "hello") return publish();
  if (m.type !== "command" || !audio || ending) return;
  if ((m.action === "pause" && !paused) || (m.action === "resume" && paused)) togglePause();
  else if (m.action === "stop") stopCapture();
}

/** On a host page: a recording window's state, shown as if this page were recording. */
function mirror(m) {
  if (m.type !== "state" || audio) return; // this page records itself: a stale window's word does not count
  // A window that records, or the one this page follows or opened (its failure is news); not one left
  // open without recording.
  if (!m.recording && m.capture !== remote.capture && m.from !== capture) return;
  Object.assign(remote, { on: m.recording, heardAt: Date.now(), paused: m.paused, capture: m.capture });
  if (el("capture-status").textContent !== m.status) el("capture-status").textContent = m.status;
  fail(m.error, m.errorKind);
  if (el("engine-status").textContent !== m.engine) el("engine-status").textContent = m.engine;
  el("level").value = m.level;
  el("recorder-note").hidden = !m.recording;
  startButton.disabled = m.recording || root.dataset.modelReady !== "1";
  pauseButton.disabled = !m.recording || m.ending;
  stopButton.disabled = !m.recording || m.ending;
  pauseButton.textContent = m.paused ? "Resume" : "Pause";
}

/** On a host page: a recording window that stopped beating is gone (closed, crashed): say so, and offer Start. */
function watchRecorder() {
  if (!remote.on || Date.now() - remote.heardAt < GONE_MS) return;
  remote.on = false;
  el("recorder-note").hidden = true;
  startButton.disabled = root.dataset.modelReady !== "1";
  pauseButton.disabled = stopButton.disabled = true;
  say(`The recording window was closed, so nothing is being recorded. Press “Start live captions” within ${GRACE_MINUTES} minutes to continue the same session.`);
}

const POPUP_REFUSED = "The browser did not open the recording window (pop-ups are blocked for this site), so this page records: keep it open, since reloading or leaving it loses a moment of audio. Allow pop-ups for this site to record in a window of its own.";

/** Start: the recording window records, so that this page can be reloaded or left; where the browser
 * refuses to open it, this page records itself. */
function start() {
  if (isRecorder || !link) return startCapture();
  const query = new URLSearchParams({ delay: el("delay").value, device: deviceSelect.value, from: capture });
  const win = window.open(`${root.dataset.recorderPath}?${query}`, recorderWindowName(meetingId), "popup,width=520,height=560");
  if (!win) {
    startCapture().then(() => audio && fail(POPUP_REFUSED, "popup"));
    return;
  }
  // Until the window's first word: it has a few seconds to load and open the microphone.
  Object.assign(remote, { on: true, heardAt: Date.now() + 13_000 });
  startButton.disabled = true;
  say("Opening the recording window…");
}

startButton.addEventListener("click", start);
pauseButton.addEventListener("click", () => (remote.on ? link.post({ type: "command", action: remote.paused ? "resume" : "pause" }) : togglePause()));
stopButton.addEventListener("click", () => {
  if (!remote.on) return stopCapture();
  link.post({ type: "command", action: "stop" });
  pauseButton.disabled = stopButton.disabled = true;
  say("Stopping: the last words are being captioned…");
});
el("show-recorder")?.addEventListener("click", () => window.open("", recorderWindowName(meetingId))?.focus());

// Leaving or reloading while live would cut the meeting's captions: the browser asks first.
window.addEventListener("beforeunload", (event) => {
  if (!audio && !frames.length) return;
  event.preventDefault();
  event.returnValue = "";
});

// The page is going (a reload, a navigation): whatever it captured and has not handed to the socket yet goes now.
window.addEventListener("pagehide", () => {
  pump();
  if (!stats.captured) return;
  try {
    sessionStorage.setItem(PREVIOUS_CAPTURE, JSON.stringify({ captured: stats.captured, lastAt: stats.lastAt }));
  } catch {
    // storage full or refused: only the figures are lost, never audio
  }
});

socket.connect();
if (isRecorder) {
  // Opened by the host page's Start, it records at once; opened any other way (a link from another
  // site, a bookmark) it waits for a press here: a page elsewhere must not start a recording.
  if (openedByHostPage()) startCapture();
  else {
    startButton.disabled = root.dataset.modelReady !== "1";
    say("Press “Start recording” to record this meeting's audio in this window.");
  }
  setInterval(publish, 1000); // also while the microphone is being opened or has failed
} else {
  link?.post({ type: "hello" }); // a recording window of this meeting answers at once
  setInterval(watchRecorder, 500);
  // A reloaded page of a live meeting that recorded itself opens the microphone at once, not after its
  // socket is up and the server's status is in: what it captures meanwhile is kept and sent when the
  // session resumes. The reload itself (no page is capturing) is the only time lost.
  if (root.dataset.live === "1") offerResume({ host: "live" });
  deviceSelect.addEventListener("focus", () => navigator.mediaDevices.enumerateDevices && listDevices().catch(() => {}), { once: true });
}
