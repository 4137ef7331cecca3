// The host page's microphone and audio graph: microphone → AudioWorklet (live-worklet.js) → 80 ms frames.
// A module of its own, loaded early (an async module in the page's head), so that a reloaded page of a
// live meeting opens the microphone while the rest of the page still loads: every millisecond before
// the first frame is audio that no page captured. live-host.js imports the same instance.
import { recorderBeating } from "./live-recorder.js";

const WORKLET_URL = new URL("./live-worklet.js", import.meta.url).href;

/** Open the microphone and start the graph. Frames are kept, with the time each arrived, until
 * `listen(handler)` is called: the page's own code may not have loaded yet. */
export async function openMicrophone(deviceId = "") {
  const askedAt = Date.now();
  // The audio graph is readied while the browser opens the microphone.
  const context = new AudioContext();
  const worklet = context.audioWorklet.addModule(WORKLET_URL);
  worklet.catch(() => {}); // a failure is thrown below, where it is awaited
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
  }).catch((err) => {
    context.close();
    throw err;
  });
  const micAt = Date.now();
  await worklet;
  const node = new AudioWorkletNode(context, "capture-16k");
  const mute = context.createGain();
  mute.gain.value = 0; // pulled by the graph, never heard
  context.createMediaStreamSource(stream).connect(node).connect(mute).connect(context.destination);
  const waiting = [];
  node.port.onmessage = (event) => waiting.push({ ...event.data, at: Date.now() });
  function listen(handler) {
    node.port.onmessage = (event) => handler({ ...event.data, at: Date.now() });
    waiting.splice(0).forEach(handler);
  }
  return { context, stream, node, listen, askedAt, micAt, graphAt: Date.now() };
}

/** A reloaded page of a live meeting that recorded itself (its head says so) opens the microphone at once where the browser
 * already allows it, without a click. Resolves to the graph, or null where it may not. */
function openEarly() {
  if (document.querySelector('meta[name="scribe-live-resume"]')?.content !== "1" || !navigator.permissions) return Promise.resolve(null);
  // A recording window of this meeting records it: this page only shows what it does.
  if (recorderBeating(document.querySelector('meta[name="scribe-meeting"]')?.content)) return Promise.resolve(null);
  return navigator.permissions
    .query({ name: "microphone" })
    .then((permission) => (permission.state === "granted" ? openMicrophone() : null))
    .catch(() => null);
}

let early = openEarly();

/** The graph opened early, once; null if there was none (or it was already taken). */
export async function takeEarly() {
  const taken = early;
  early = null;
  return taken && (await taken);
}
