// Unit tests of the live pages' connection state machine and status line, run in Chromium by
// tests/live/test_live_common_js.py. Time is a fake clock (timers run only when a test advances it)
// and sockets are fakes the test opens, closes and talks through.
const clock = {
  now: 1_000_000,
  timers: new Map(),
  nextId: 1,
  add(fn, ms, every) {
    const id = this.nextId++;
    this.timers.set(id, { fn, at: this.now + Math.max(0, ms || 0), every });
    return id;
  },
  /** Advance by `ms`, running every timer that falls due, in time order. */
  tick(ms) {
    const end = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
      if (!next) break;
      const [id, t] = next;
      this.now = t.at;
      if (t.every) t.at += t.every;
      else this.timers.delete(id);
      t.fn();
    }
    this.now = end;
  },
};
globalThis.setTimeout = (fn, ms) => clock.add(fn, ms, 0);
globalThis.setInterval = (fn, ms) => clock.add(fn, ms, Math.max(1, ms));
globalThis.clearTimeout = globalThis.clearInterval = (id) => clock.timers.delete(id);
Date.now = () => clock.now;

const { LiveSocket, CaptionView, MissedFinals, OFFLINE_RETRY_MS, RETRY_CAP_MS, STATUS_STALE_MS, retryDelay } = await import("/static/frontend/js/live-common.js");
const { GONE_MS, RecorderLink, recorderBeating } = await import("/static/frontend/js/live-recorder.js");

class FakeSocket {
  static all = [];
  constructor(url) {
    Object.assign(this, { url, readyState: 0, sent: [], closedWith: null, binaryType: "" });
    FakeSocket.all.push(this);
  }
  static get last() {
    return FakeSocket.all[FakeSocket.all.length - 1];
  }
  send(data) {
    this.sent.push(data);
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code ?? null;
  }
  accept() {
    this.readyState = 1;
    this.onopen?.();
  }
  say(message) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  fail() {
    this.onerror?.({});
    this.drop(1006);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function setUp(handlers = {}) {
  FakeSocket.all = [];
  clock.timers.clear();
  const net = new EventTarget();
  net.up = true; // what the browser says of its network (navigator.onLine)
  net.addEventListener("offline", () => (net.up = false));
  net.addEventListener("online", () => (net.up = true));
  const log = [];
  const socket = new LiveSocket("/ws/test", {
    ...handlers,
    state: (state, reason) => log.push(reason ? `${state}:${reason}` : state),
    close: (event, final) => log.push(`close:${final ? "final" : "retry"}:${event.reason}`),
  }, { WebSocket: FakeSocket, random: () => 0.5, target: net, online: () => net.up });
  socket.connect();
  return { socket, net, log };
}

/** Advance until a new socket is made (an attempt) or `limitMs` passes; returns the wait. */
function waitForAttempt(limitMs = 60_000) {
  const before = FakeSocket.all.length;
  let waited = 0;
  while (FakeSocket.all.length === before && waited < limitMs) {
    clock.tick(50);
    waited += 50;
  }
  assert(FakeSocket.all.length > before, `no reconnect attempt within ${limitMs} ms`);
  return waited;
}

const tests = {};
const test = (name, fn) => (tests[name] = fn);

test("it connects, opens and pings", () => {
  const { socket, log } = setUp();
  assert(socket.state === "connecting", socket.state);
  FakeSocket.last.accept();
  assert(socket.state === "open" && socket.open, socket.state);
  assert(JSON.parse(FakeSocket.last.sent[0]).type === "ping", "no ping on open");
  clock.tick(4000);
  assert(FakeSocket.last.sent.filter((m) => JSON.parse(m).type === "ping").length >= 2, "pings stop");
  assert(log.join() === "connecting,open", log.join());
});

test("a silence longer than the heartbeat reconnects and keeps trying", () => {
  // The old beat() forgot the socket before calling its close handler, which then skipped the retry.
  const { socket, log } = setUp();
  FakeSocket.last.accept();
  clock.tick(6000); // the server says nothing: a half-open socket
  assert(log.includes("reconnecting:silent"), log.join());
  const dead = FakeSocket.all[0];
  assert(dead.readyState === 3, "the half-open socket is not closed");
  assert(FakeSocket.all.length === 2, "no reconnect attempt after the silence");
  for (let i = 0; i < 30; i++) {
    FakeSocket.last.fail();
    assert(waitForAttempt(RETRY_CAP_MS + 100) <= RETRY_CAP_MS + 50, "a retry waited longer than the cap");
  }
  assert(socket.state === "reconnecting", socket.state);
  FakeSocket.last.accept();
  assert(socket.state === "open", "it did not come back after 30 failed attempts");
});

test("a dropped connection retries with backoff that grows to the cap and resets after success", () => {
  const { socket } = setUp();
  FakeSocket.last.accept();
  const waits = [];
  for (let i = 0; i < 8; i++) {
    FakeSocket.last.drop(1006);
    waits.push(waitForAttempt());
  }
  assert(waits[0] < waits[3], `no backoff: ${waits}`);
  assert(Math.max(...waits) <= RETRY_CAP_MS, `over the cap: ${waits}`);
  FakeSocket.last.accept();
  FakeSocket.last.drop(1006);
  assert(waitForAttempt() <= waits[0] + 50, "backoff not reset by a successful connection");
  assert(socket.state === "reconnecting");
});

test("an error followed by a close schedules one retry, not two", () => {
  setUp();
  FakeSocket.last.accept();
  FakeSocket.last.fail();
  clock.tick(RETRY_CAP_MS);
  assert(FakeSocket.all.length === 2, `${FakeSocket.all.length} sockets`);
});

test("an attempt that hangs is given up and retried", () => {
  const { log } = setUp();
  FakeSocket.last.accept();
  FakeSocket.last.drop();
  waitForAttempt();
  waitForAttempt(10_000); // the new attempt never opens nor fails: a black-holed network
  assert(log.includes("close:retry:timeout"), log.join());
});

test("refusals for good are not retried", () => {
  for (const code of [4401, 4403, 4409]) {
    const { socket, log } = setUp();
    FakeSocket.last.accept();
    FakeSocket.last.drop(code);
    clock.tick(60_000);
    assert(FakeSocket.all.length === 1 && socket.state === "closed", `code ${code} retried`);
    assert(log.includes("close:final:close"), log.join());
  }
});

test("a page that stops never reconnects, not even when the network returns", () => {
  const { socket, net } = setUp();
  FakeSocket.last.accept();
  socket.stop();
  assert(FakeSocket.last.closedWith === 1000, "not closed normally");
  net.dispatchEvent(new Event("offline"));
  net.dispatchEvent(new Event("online"));
  clock.tick(60_000);
  assert(FakeSocket.all.length === 1 && socket.state === "closed", socket.state);
});

test("going offline drops the socket at once and coming online retries at once", () => {
  const { socket, net, log } = setUp();
  FakeSocket.last.accept();
  for (let i = 0; i < 5; i++) {
    net.dispatchEvent(new Event("offline"));
    clock.tick(RETRY_CAP_MS); // attempts while offline fail
    FakeSocket.last.fail();
  }
  assert(log.includes("reconnecting:offline"), log.join());
  const before = FakeSocket.all.length;
  net.dispatchEvent(new Event("online"));
  assert(FakeSocket.all.length === before + 1, "no immediate attempt when the network came back");
  FakeSocket.last.accept();
  assert(socket.state === "open");
});

test("while the browser has no network the page tries rarely, and at once when it is back", () => {
  // Chromium delays a renderer's WebSocket connections by its recent failures: ninety seconds of
  // attempts every 1.5 s left the page 2-3 s behind the network's return.
  const { socket, net } = setUp();
  FakeSocket.last.accept();
  const before = FakeSocket.all.length;
  net.dispatchEvent(new Event("offline"));
  for (let t = 0; t < 90_000; t += 50) {
    clock.tick(50);
    if (FakeSocket.last.readyState === 0 && FakeSocket.last.onerror) FakeSocket.last.fail(); // no network: every attempt fails
  }
  const attempts = FakeSocket.all.length - before;
  assert(attempts <= 90_000 / OFFLINE_RETRY_MS + 1, `${attempts} attempts in 90 s offline`);
  net.dispatchEvent(new Event("online"));
  assert(FakeSocket.all.length === before + attempts + 1, "no immediate attempt when the network came back");
  FakeSocket.last.accept();
  assert(socket.state === "open");
});

test("a server that comes back after a long outage is reached within the cap, at most two seconds", () => {
  setUp();
  FakeSocket.last.accept();
  FakeSocket.last.drop(1006); // the server died: every attempt for a minute is refused
  const down = Date.now();
  while (Date.now() - down < 60_000) {
    waitForAttempt();
    FakeSocket.last.fail();
  }
  const back = Date.now(); // listening again: the next attempt is the one that opens
  waitForAttempt();
  assert(Date.now() - back <= RETRY_CAP_MS && RETRY_CAP_MS <= 2000, `${Date.now() - back} ms after the server was back`);
});

test("retry waits are jittered within the upper half of a capped exponential", () => {
  assert(retryDelay(0, () => 0) === 125 && retryDelay(0, () => 1) === 250, `${retryDelay(0, () => 0)}`);
  assert(retryDelay(30, () => 0) === RETRY_CAP_MS / 2 && retryDelay(30, () => 1) === RETRY_CAP_MS, "cap");
});

function statusView() {
  const root = document.getElementById("live");
  root.querySelector("#caption-log").replaceChildren();
  clock.timers.clear();
  const view = new CaptionView(root);
  const changes = [];
  new MutationObserver((records) => records.forEach(() => changes.push(view.status.textContent))).observe(view.status, { childList: true, characterData: true, subtree: true });
  return { view, changes, flush: () => new Promise((resolve) => queueMicrotask(resolve)) };
}

test("the status is never live without audio, and says so once", async () => {
  const { view, changes, flush } = statusView();
  view.hostStatus({ host: "live", audio: true, engine: { ready: true } });
  view.caption({ final: false, seq: 0, text: "good mor", sent_at: clock.now / 1000 - 0.1 });
  assert(view.status.textContent === "The host is live." && view.lag.textContent, "not live with audio");
  view.hostStatus({ host: "live", audio: false, engine: { ready: true } });
  assert(view.status.textContent.startsWith("No audio is arriving"), view.status.textContent);
  assert(!view.lag.textContent && !view.partial.textContent, "a lag figure or partial line stays while no audio arrives");
  clock.tick(10_000);
  await flush();
  assert(changes.length === 2, `status written ${changes.length} times: ${changes}`);
  view.hostStatus({ host: "live", audio: true, engine: { ready: true } });
  clock.tick(STATUS_STALE_MS + 500); // no word from the server since: it is not trusted to be live
  assert(view.status.dataset.host === "silent", view.status.dataset.host);
});

test("the follower's own lost connection and the host's reconnecting are said in words", () => {
  const { view } = statusView();
  view.hostStatus({ host: "live", audio: true });
  view.connection("reconnecting");
  assert(view.status.textContent.startsWith("Connection to the server lost"), view.status.textContent);
  view.connection("open");
  view.hostStatus({ host: "reconnecting", audio: false });
  assert(view.status.textContent.startsWith("The host is reconnecting"), view.status.textContent);
});

test("the end clears stale lines and late captions are marked", () => {
  const { view } = statusView();
  view.hostStatus({ host: "live", audio: true, engine: { ready: true, stalled: true } });
  view.caption({ final: true, seq: 1, text: "spoken in the outage", late: true, sent_at: 0 });
  view.caption({ final: false, seq: 1, text: "and aft", sent_at: clock.now / 1000 });
  assert(!view.interrupted.hidden, "a stalled engine is not said");
  assert(view.log.querySelector(".late .late-mark")?.textContent === "Late: ", view.log.innerHTML);
  view.hostStatus({ host: "ended", audio: false });
  assert(view.interrupted.hidden && !view.lag.textContent && !view.partial.textContent, "stale lines stay after the end");
  assert(view.status.textContent.startsWith("The meeting has ended"), view.status.textContent);
});

test("a final lost on its way is asked for and lines stay in spoken order", () => {
  const { view } = statusView();
  const asked = [];
  view.onGap = (lastSeq) => asked.push(lastSeq);
  const final = (seq) => ({ final: true, seq, text: `line ${seq}`, sent_at: 0 });
  view.caption(final(1));
  view.caption(final(3)); // 2 was lost
  view.caption(final(4));
  assert(asked[0] === 1, `asked ${asked}`);
  view.replay([final(2), final(3)]);
  const shown = [...view.log.querySelectorAll(".caption-line")].map((l) => Number(l.dataset.seq));
  assert(shown.join() === "1,2,3,4", shown.join());
});

test("a page asks again for finals it missed: on connecting, for a gap, for a status ahead of it, once a second", () => {
  const { view } = statusView();
  const sent = [];
  const missed = new MissedFinals(view, (m) => sent.push(m.last_seq));
  const final = (seq) => ({ final: true, seq, text: `line ${seq}`, sent_at: 0 });
  missed.connected();
  missed.replay({ captions: [final(1)], more: false });
  assert(sent.join() === "0" && view.lastSeq === 1, `asked ${sent}`);
  clock.tick(1000);
  view.caption(final(3)); // 2 was lost under an open socket
  view.caption(final(4)); // asked once, not twice within the second
  assert(sent.join() === "0,1", `asked ${sent}`);
  missed.replay({ captions: [final(2), final(3)], more: false });
  assert(view.lastSeq === 4, view.lastSeq);
  clock.tick(1000);
  missed.status({ host: "live", seq: 5 }); // the last final was lost and nothing follows it
  assert(sent.join() === "0,1", "a status crossing a final is not yet a gap");
  missed.status({ host: "live", seq: 5 });
  assert(sent.join() === "0,1,4", `asked ${sent}`);
  missed.replay({ captions: [final(5)], more: false });
  missed.status({ host: "live", seq: 5 });
  clock.tick(1000);
  missed.status({ host: "live", seq: 5 });
  assert(sent.join() === "0,1,4" && view.lastSeq === 5, `asked ${sent}`);
});

test("jump to live keeps keyboard focus on the controls", () => {
  const { view } = statusView();
  view.setScrollPaused(true);
  view.jumpButton.focus();
  view.jumpButton.click();
  assert(view.jumpButton.hidden && document.activeElement === view.pauseButton, document.activeElement?.id);
});

test("a recording window is found while it beats, and taken for gone soon after it stops", () => {
  const storage = new Map();
  const store = { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, v), removeItem: (k) => storage.delete(k) };
  const link = new RecorderLink("7", () => {}, { storage: store });
  assert(!recorderBeating("7", clock.now, store), "found before any beat");
  link.beat(clock.now);
  assert(recorderBeating("7", clock.now + GONE_MS - 1, store), "lost within a beat");
  assert(!recorderBeating("8", clock.now, store), "another meeting's window taken for this one's");
  assert(!recorderBeating("7", clock.now + GONE_MS, store), "a window that stopped beating still counted");
  link.beat(clock.now);
  link.quiet();
  assert(!recorderBeating("7", clock.now, store), "a window that finished still counted");
  const broken = { getItem: () => { throw new Error("refused"); }, setItem: () => { throw new Error("refused"); }, removeItem() {} };
  link.storage = broken;
  link.beat();
  assert(!recorderBeating("7", clock.now, broken), "refused storage");
});

test("a recording window and the host pages of its meeting, and only its meeting, hear each other", async () => {
  const heard = { window: [], page: [], other: [] };
  const recorder = new RecorderLink("41", (m) => heard.window.push(m.type));
  const page = new RecorderLink("41", (m) => heard.page.push(m.type));
  const other = new RecorderLink("42", (m) => heard.other.push(m.type));
  page.post({ type: "hello" });
  recorder.post({ type: "state", recording: true });
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  await new Promise((done) => queueMicrotask(done));
  for (let i = 0; i < 20 && !(heard.window.length && heard.page.length); i++) await new Promise((done) => requestAnimationFrame(done));
  assert(heard.window.join() === "hello" && heard.page.join() === "state" && !heard.other.length, JSON.stringify(heard));
  [recorder, page, other].forEach((l) => l.channel.close());
});

window.liveTests = Object.keys(tests);
window.runLiveTest = async (name) => {
  try {
    await tests[name]();
    return "ok";
  } catch (err) {
    return `${err.message}\n${err.stack}`;
  }
};
window.liveTestsReady = true;
