// Shared by the host page and the caption view: a socket that reconnects and notices silence,
// and the caption display (finals announced once, partials shown but never announced).
const FINAL_CODES = new Set([4401, 4403, 4409]); // signed out, not permitted, streamed elsewhere: do not retry
const PING_MS = 5000;
const SILENT_MS = 8000; // the server sends status every 2 s; this long without anything means the socket is dead

export class LiveSocket {
  constructor(path, handlers) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.handlers = handlers;
    this.offsetMs = 0; // server clock minus ours, from ping round trips
    this.lastHeard = Date.now();
    this.retryMs = 500;
    this.stopped = false;
    this.timer = setInterval(() => this.beat(), 1000);
  }

  connect() {
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.retryMs = 500;
      this.lastHeard = Date.now();
      this.handlers.open?.();
      this.ping();
    };
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      const message = JSON.parse(event.data);
      if (message.type === "pong") {
        const now = Date.now();
        this.offsetMs = message.server_time * 1000 - (message.t + now) / 2;
      }
      this.handlers.message?.(message);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      const final = FINAL_CODES.has(event.code) || this.stopped;
      this.handlers.close?.(event, final);
      if (!final) {
        setTimeout(() => this.connect(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 10000);
      }
    };
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  ping() {
    this.send({ type: "ping", t: Date.now() });
  }

  beat() {
    if (!this.open) return;
    if (Date.now() - this.lastHeard > SILENT_MS) {
      // Half-open: the network dropped without a close. Start again rather than wait for TCP to notice.
      this.handlers.silent?.();
      const ws = this.ws;
      this.ws = null;
      ws.close();
      ws.onclose({ code: 1006 });
      return;
    }
    if (Date.now() % PING_MS < 1000) this.ping();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    this.ws?.close(1000);
  }
}

const HOST_STATUS = {
  live: "The host is live.",
  paused: "The host has paused captions.",
  ended: "The meeting has ended. The full transcript will be on the meeting's page.",
  offline: "The host is not streaming right now.",
};

export class CaptionView {
  constructor(root) {
    this.root = root;
    this.log = root.querySelector("#caption-log");
    this.partial = root.querySelector("#caption-partial");
    this.status = root.querySelector("#host-status");
    this.lag = root.querySelector("#caption-lag");
    this.interrupted = root.querySelector("#interrupted");
    this.pauseButton = root.querySelector("#pause-scroll");
    this.jumpButton = root.querySelector("#jump-live");
    this.delayMs = Number(root.dataset.delayMs || 0);
    this.lastSeq = 0;
    this.host = "offline";
    this.lastEvent = Date.now();
    this.scrollPaused = false;
    this.apply({ fontSize: root.dataset.fontSize, lines: root.dataset.lines });
    this.pauseButton.addEventListener("click", () => this.setScrollPaused(!this.scrollPaused));
    this.jumpButton.addEventListener("click", () => this.setScrollPaused(false));
    this.log.addEventListener("scroll", () => {
      const atEnd = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 8;
      if (!atEnd && !this.scrollPaused && !this.autoScrolling) this.setScrollPaused(true);
    });
    setInterval(() => this.watch(), 1000);
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
    this.lastEvent = Date.now();
    if (event.final) {
      if (event.seq <= this.lastSeq) return; // already shown (a replay overlapping live captions)
      this.lastSeq = event.seq;
      const line = document.createElement("p");
      line.className = "caption-line";
      line.dir = "auto"; // a right-to-left language reads right to left, line by line
      line.dataset.seq = event.seq;
      line.textContent = event.text;
      this.log.append(line);
      this.partial.textContent = "";
    } else if (event.seq >= this.lastSeq) {
      this.partial.textContent = event.text;
    }
    if (event.sent_at) this.showLag(Date.now() + offsetMs - event.sent_at * 1000);
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
    this.lastEvent = Date.now();
    this.host = event.host;
    let text = HOST_STATUS[event.host] || "";
    if (event.engine?.message) text += ` ${event.engine.message}`;
    if (this.status.textContent !== text) this.status.textContent = text;
    this.status.dataset.host = event.host;
    if (event.engine?.stalled && event.host === "live") this.interrupt("Captions interrupted: the speech engine is not keeping up. They will resume by themselves.");
    else if (!this.interrupted.hidden) this.interrupt(null);
    if (event.host !== "live") this.partial.textContent = "";
  }

  interrupt(text) {
    this.interrupted.hidden = !text;
    if (text && this.interrupted.textContent !== text) this.interrupted.textContent = text;
  }

  watch() {
    // Announced once when it starts, not every second: the alert region repeats every change.
    if (this.host === "live" && Date.now() - this.lastEvent >= 7000 && this.interrupted.hidden) {
      this.interrupt("Captions interrupted: nothing has arrived for several seconds. Reconnecting…");
    }
  }
}
