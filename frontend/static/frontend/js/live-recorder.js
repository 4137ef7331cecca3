// The recording window and the host pages of its meeting, within one browser. The window holds the
// microphone and the host's connection, so reloading, leaving or reopening the host page never stops
// the audio; a host page of the same meeting (reloaded, in another tab) shows what the window is doing
// and passes Pause and Stop to it.
//
// Two ways to be found: a beat in localStorage, read synchronously while a reloaded host page loads (before
// it would open a microphone of its own and take the meeting over), and a BroadcastChannel for the rest.
export const GONE_MS = 2000; // a window that has not beaten for this long is closed, crashed or frozen

const name = (meeting) => `scribe-recorder-${meeting}`;

/** Whether a recording window of this meeting is beating in this browser. */
export function recorderBeating(meeting, now = Date.now(), storage = globalThis.localStorage) {
  try {
    return now - Number(storage.getItem(name(meeting)) || 0) < GONE_MS;
  } catch {
    return false; // storage refused: the channel still finds the window within a beat
  }
}

/** The window's name for `window.open`: opening it again finds the same window. */
export const recorderWindowName = name;

export class RecorderLink {
  /** onMessage(m): a recording window's state ({type: "state", ...}) or a host page's command ({type: "command", ...}). */
  constructor(meeting, onMessage, { storage = globalThis.localStorage, Channel = globalThis.BroadcastChannel } = {}) {
    this.meeting = meeting;
    this.storage = storage;
    this.channel = new Channel(name(meeting));
    this.channel.onmessage = (event) => onMessage(event.data);
  }

  post(message) {
    this.channel.postMessage(message);
  }

  /** The window is recording: said on every frame batch, not on a timer (a window behind others is throttled, its audio is not). */
  beat(now = Date.now()) {
    try {
      this.storage.setItem(name(this.meeting), String(now));
    } catch {
      // storage full or refused: the channel still carries the state
    }
  }

  /** The window has stopped recording for good. */
  quiet() {
    try {
      this.storage.removeItem(name(this.meeting));
    } catch {
      // as above
    }
  }
}
