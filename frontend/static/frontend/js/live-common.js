// Shared by the host page and the caption view: one connection state machine that always comes back,
// and the caption display (finals announced once, partials shown but never announced).
//
// States: idle → connecting → open ⇄ reconnecting, and closed (stopped by the page, or refused for good).
// Every kind of loss (close, error, missed heartbeats, the browser going offline, a connection attempt that
// hangs) goes through `lose()`, the one place that schedules the next attempt; there is no attempt limit.
const FINAL_CODES = new Set([4401, 4403, 4409]); // signed out, not permitted, streamed elsewhere: do not retry
export const RETRY_FIRST_MS = 250;
// A page is back within this of its server returning (a restart): long enough that the jitter spreads a
// restarted server's pages over most of a second, short enough that captions resume within a breath.
export const RETRY_CAP_MS = 1500;
const PING_MS = 2000;
const SILENT_MS = 5000; // the server answers every ping: this long without a word means the socket is dead
const CONNECT_MS = 4000; // an attempt that neither opens nor fails by then (a black-holed network) is dropped
// While the browser says it has no network, attempts can only fail, and Chromium delays a renderer's new
// WebSocket connections by its recent failures (up to seconds, still felt once the network is back): the
// page waits for the `online` event instead, trying this rarely in case the browser's idea is wrong.
export const OFFLINE_RETRY_MS = 5000;

/** The wait before reconnect attempt `attempt` (0-based): exponential, capped, jittered over its upper half
 * so that every page of a restarted server does not knock at the same instant. */
export function retryDelay(attempt, random = Math.random) {
  const ceiling = Math.min(RETRY_CAP_MS, RETRY_FIRST_MS * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class LiveSocket {
  /** handlers: open(), message(m), close({code, reason}, final), silent(), state(state, reason).
   * options (for tests): WebSocket, random, target (what fires online/offline), online (whether the browser has a network). */
  constructor(path, handlers, { WebSocket: Socket = globalThis.WebSocket, random = Math.random, target = globalThis,
    online = () => globalThis.navigator?.onLine !== false } = {}) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.handlers = handlers;
    this.Socket = Socket;
    this.random = random;
    this.online = online;
    this.offsetMs = 0; // server clock minus ours, from ping round trips
    this.state = "idle";
    this.attempt = 0;
    this.ws = null;
    this.retryTimer = null;
    this.history = []; // the last connection events, [time, what]: how a reconnect went, for support and tests
    this.lastHeard = this.lastPing = Date.now();
    this.timer = setInterval(() => this.beat(), 500);
    target.addEventListener?.("offline", () => this.state !== "reconnecting" && this.lose("offline"));
    target.addEventListener?.("online", () => this.retryNow());
  }

  setState(state, reason) {
    if (this.state === state) return;
    this.state = state;
    this.handlers.state?.(state, reason);
  }

  connect() {
    if (this.state === "closed") return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.detach();
    this.note("attempt");
    const ws = new this.Socket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.lastHeard = Date.now();
    this.setState(this.state === "idle" || this.state === "connecting" ? "connecting" : "reconnecting");
    ws.onopen = () => {
      this.note("open");
      this.attempt = 0;
      this.lastHeard = Date.now();
      this.setState("open");
      this.handlers.open?.();
      this.ping();
    };
    ws.onmessage = (event) => this.receive(event);
    ws.onerror = () => this.lose("error");
    ws.onclose = (event) => this.lose("close", event.code);
  }

  receive(event) {
    this.lastHeard = Date.now();
    const message = JSON.parse(event.data);
    if (message.type === "pong" && typeof message.t === "number") {
      this.offsetMs = message.server_time * 1000 - (message.t + Date.now()) / 2;
    }
    this.handlers.message?.(message);
  }

  /** Forget the current socket: its late events must not reach us. */
  detach(code = undefined) {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    try {
      ws.close(code);
    } catch {
      // closing a socket that never opened may throw; it is gone either way
    }
  }

  /** The connection is lost, whatever the cause: tell the page, and try again unless refused for good. */
  lose(reason, code) {
    if (this.state === "closed") return;
    this.note(code ? `${reason} ${code}` : reason);
    this.detach();
    const final = FINAL_CODES.has(code);
    if (final) {
      this.finish();
      this.handlers.close?.({ code, reason }, true);
      return;
    }
    this.setState("reconnecting", reason);
    this.handlers.close?.({ code, reason }, false);
    if (this.retryTimer !== null) return; // an attempt is already due: the backoff moves on only when one is made
    const wait = this.online() ? retryDelay(this.attempt++, this.random) : OFFLINE_RETRY_MS;
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  /** The network is back: try at once rather than wait out the backoff. */
  retryNow() {
    this.note(`online (${this.state})`);
    if (this.state !== "reconnecting") return;
    this.attempt = 0;
    this.connect();
  }

  note(what) {
    this.history.push([Date.now(), what]);
    if (this.history.length > 40) this.history.shift();
  }

  get open() {
    return this.state === "open" && this.ws?.readyState === 1;
  }

  send(message) {
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  sendBinary(data) {
    if (!this.open) return false;
    this.ws.send(data);
    return true;
  }

  get buffered() {
    return this.open ? this.ws.bufferedAmount : 0;
  }

  ping() {
    this.lastPing = Date.now();
    this.send({ type: "ping", t: Date.now() });
  }

  beat() {
    const quiet = Date.now() - this.lastHeard;
    if (this.state === "open") {
      if (quiet > SILENT_MS) {
        // Half-open: the network dropped without a close. Start again rather than wait for TCP to notice.
        this.handlers.silent?.();
        this.lose("silent");
      } else if (Date.now() - this.lastPing >= PING_MS) this.ping();
    } else if (this.ws && quiet > CONNECT_MS) this.lose("timeout");
  }

  finish() {
    this.state = "closed";
    this.handlers.state?.("closed");
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
  }

  /** Closed by the page: never reconnects. */
  stop() {
    if (this.state === "closed") return;
    this.finish();
    this.detach(1000);
  }
}

const HOST_STATUS = {
  live: "The host is live.",
  paused: "The host has paused captions.",
  reconnecting: "The host is reconnecting… Captions will continue when the host is back.",
  silent: "No audio is arriving from the host right now. Captions will continue when it does.",
  ended: "The meeting has ended. The full transcript will be on the meeting's page.",
  offline: "The host is not streaming right now.",
  lost: "Connection to the server lost. Reconnecting by itself…",
};
// The host's server says at once when audio stops or starts (`audio` in a status), and beats every 2 s:
// a page that has heard no status for this long no longer trusts that audio arrives.
export const STATUS_STALE_MS = 5000;

export class CaptionView {
  constructor(root, { clock = () => Date.now() } = {}) {
    this.root = root;
    this.clock = clock;
    this.log = root.querySelector("#caption-log");
    this.partial = root.querySelector("#caption-partial");
    this.status = root.querySelector("#host-status");
    this.lag = root.querySelector("#caption-lag");
    this.interrupted = root.querySelector("#interrupted");
    this.pauseButton = root.querySelector("#pause-scroll");
    this.jumpButton = root.querySelector("#jump-live");
    this.delayMs = Number(root.dataset.delayMs || 0);
    this.lastSeq = 0;
    this.host = "offline"; // what the server last said
    this.audio = false; // the server's last word: the host's audio is arriving
    this.statusAt = 0;
    this.online = true; // this page's own connection
    this.scrollPaused = false;
    this.notice = null;
    this.pending = new Map(); // finals that arrived ahead of a missing one
    this.onGap = null; // set by a page that can ask the server for missed finals: onGap(lastSeq)
    this.apply({ fontSize: root.dataset.fontSize, lines: root.dataset.lines });
    this.pauseButton.addEventListener("click", () => this.setScrollPaused(!this.scrollPaused));
    this.jumpButton.addEventListener("click", () => {
      this.setScrollPaused(false);
      this.pauseButton.focus(); // the button pressed has gone: keep the keyboard next to it
    });
    this.log.addEventListener("scroll", () => {
      const atEnd = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 8;
      if (!atEnd && !this.scrollPaused && !this.autoScrolling) this.setScrollPaused(true);
    });
    setInterval(() => this.render(), 500);
  }

  apply({ fontSize, lines, theme }) {
    if (fontSize) this.root.style.setProperty("--caption-size", `${fontSize}px`);
    if (lines) this.root.style.setProperty("--caption-lines", String(lines));
    if (theme) document.body.className = document.body.className.replace(/theme-\S+/, `theme-${theme}`);
  }

  setScrollPaused(paused) {
    this.scrollPaused = paused;
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    this.pauseButton.textContent = paused ? "Resume scrolling" : "Pause scrolling";
    this.jumpButton.hidden = !paused;
    if (!paused) this.scrollToEnd();
  }

  scrollToEnd() {
    this.autoScrolling = true;
    this.log.scrollTop = this.log.scrollHeight;
    requestAnimationFrame(() => (this.autoScrolling = false));
  }

  caption(event, offsetMs = 0) {
    if (event.final) {
      if (event.seq <= this.lastSeq) return; // already shown (a replay overlapping live captions)
      if (event.seq > this.lastSeq + 1 && this.onGap) {
        // One was lost on its way (the server's Redis restarted under an open socket): ask for the
        // missing ones and show this one after them, so lines stay in the order they were spoken.
        this.pending.set(event.seq, event);
        return this.onGap(this.lastSeq);
      }
      this.lastSeq = event.seq;
      const line = document.createElement("p");
      line.className = "caption-line";
      line.dir = "auto"; // a right-to-left language reads right to left, line by line
      line.dataset.seq = event.seq;
      if (event.late) {
        // Spoken while the host's connection was down, captioned after it came back.
        line.classList.add("late");
        const mark = document.createElement("span");
        mark.className = "late-mark";
        mark.textContent = "Late: ";
        line.append(mark);
      }
      const text = document.createElement("span");
      text.className = "caption-text";
      text.textContent = event.text;
      line.append(text);
      this.log.append(line);
      this.partial.textContent = "";
      const next = this.pending.get(this.lastSeq + 1);
      if (next) {
        this.pending.delete(next.seq);
        return this.caption(next, offsetMs);
      }
    } else if (event.seq >= this.lastSeq) {
      this.partial.textContent = event.text;
    }
    // From the engine making the words (made_at), so the figure includes their way back through the site.
    const madeAt = event.made_at || event.sent_at;
    if (madeAt && !event.late && this.audioArriving()) this.showLag(this.clock() + offsetMs - madeAt * 1000);
    if (!this.scrollPaused) this.scrollToEnd();
  }

  replay(captions) {
    for (const c of captions) this.caption(c);
  }

  showLag(transitMs) {
    const total = (this.delayMs + Math.max(0, transitMs)) / 1000;
    this.lag.textContent = `Captions about ${total.toFixed(1)} s behind speech`;
  }

  hostStatus(event) {
    this.host = event.host;
    this.audio = Boolean(event.audio);
    this.statusAt = this.clock();
    this.engine = event.engine;
    this.render();
  }

  /** This page's own connection: "open" or "reconnecting". */
  connection(state) {
    this.online = state === "open";
    this.render();
  }

  audioArriving() {
    return this.audio && this.clock() - this.statusAt < STATUS_STALE_MS;
  }

  /** What the status line says now: never "live" (nor a lag figure) while no audio arrives. */
  shownState() {
    if (this.host === "ended") return "ended";
    if (!this.online) return "lost";
    if (this.host === "live" && !this.audioArriving()) return "silent";
    return this.host;
  }

  render() {
    const state = this.shownState();
    let text = HOST_STATUS[state] || "";
    if (state === "live" && this.engine?.message) text += ` ${this.engine.message}`;
    // Written only when it changes: a status region is read out on every change.
    if (this.status.textContent !== text) this.status.textContent = text;
    this.status.dataset.host = state;
    if (state !== "live") {
      this.lag.textContent = "";
      this.partial.textContent = "";
    }
    if (state === "ended") this.notice = null; // the end says it all; nothing stale stays on screen
    let alert = this.notice;
    if (!alert && state === "live" && this.engine?.stalled) alert = "Captions interrupted: the speech engine is not keeping up. They will resume by themselves.";
    this.interrupted.hidden = !alert;
    if (this.interrupted.textContent !== (alert || "")) this.interrupted.textContent = alert || "";
  }

  /** A message that stays until replaced (a refusal, an error from the server); null clears it. */
  interrupt(text) {
    this.notice = text || null;
    this.render();
  }
}

/** Asks the server again for finals a caption view missed: after every (re)connection, and when a final
 * was lost on its way (the server's Redis restarted while the socket stayed open), seen as a gap in seq
 * or as a status seq ahead of the view's. At most one question a second. Used by both live pages. */
export class MissedFinals {
  constructor(view, send, { clock = () => Date.now() } = {}) {
    this.view = view;
    this.send = send;
    this.clock = clock;
    this.askedAt = -Infinity;
    this.gapSeen = 0;
    view.onGap = (lastSeq) => this.ask(lastSeq);
  }

  /** The socket (re)opened: everything after the last final shown. */
  connected() {
    this.askedAt = this.clock();
    this.send({ type: "hello", last_seq: this.view.lastSeq });
  }

  ask(lastSeq) {
    if (this.clock() - this.askedAt < 1000) return;
    this.askedAt = this.clock();
    this.send({ type: "hello", last_seq: lastSeq });
  }

  replay(message) {
    this.view.replay(message.captions);
    if (message.more) this.send({ type: "hello", last_seq: this.view.lastSeq });
  }

  status(status) {
    if (!(status.seq > this.view.lastSeq)) return (this.gapSeen = 0);
    // A final and a status may cross; a gap that outlives one status (or the end) is real.
    if (status.host === "ended" || (this.gapSeen && this.view.lastSeq < this.gapSeen)) this.ask(this.view.lastSeq);
    this.gapSeen = status.seq;
  }
}
