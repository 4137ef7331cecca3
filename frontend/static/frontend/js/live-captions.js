// The caption view for followers: captions from the meeting's group, caught up by sequence number
// after every (re)connection, with display settings saved for the user.
import { CaptionView, LiveSocket } from "./live-common.js";

const root = document.getElementById("live");
const view = new CaptionView(root);
const socket = new LiveSocket(root.dataset.socketPath, {
  open() {
    socket.send({ type: "hello", last_seq: view.lastSeq });
  },
  message(m) {
    if (m.type === "caption") view.caption(m, socket.offsetMs);
    else if (m.type === "replay") {
      view.replay(m.captions);
      if (m.more) socket.send({ type: "hello", last_seq: view.lastSeq });
    } else if (m.type === "status") {
      view.hostStatus(m);
      checkSeq(m);
    }
    else if (m.type === "error") view.interrupt(m.message);
  },
  close(event, final) {
    if (final) view.interrupt(event.code === 4401 ? "You are signed out. Sign in again to follow captions." : "You can no longer follow this meeting's captions.");
    else view.connection("reconnecting");
  },
  state(state) {
    if (state !== "open") return;
    view.interrupt(null); // a refusal after this still arrives, as an error and a final close
    view.connection("open");
  },
});
// A final lost on its way (the server's Redis restarted while this socket stayed open) shows as a gap
// in seq, or as a status seq ahead of ours; the server is asked again, at most once a second.
let askedAt = 0;
function askForMissed(lastSeq) {
  if (Date.now() - askedAt < 1000) return;
  askedAt = Date.now();
  socket.send({ type: "hello", last_seq: lastSeq });
}
let gapSeen = 0;
function checkSeq(status) {
  if (!(status.seq > view.lastSeq)) return (gapSeen = 0);
  // A final and a status may cross; a gap that outlives one status (or the end) is real.
  if (status.host === "ended" || (gapSeen && view.lastSeq < gapSeen)) askForMissed(view.lastSeq);
  gapSeen = status.seq;
}
view.onGap = askForMissed;

socket.connect();

// Display settings apply at once and are saved for next time.
const form = document.getElementById("caption-prefs");
const saved = document.getElementById("prefs-saved");
const field = (name) => form.elements[name].value;
form.addEventListener("input", () => view.apply({ fontSize: field("font_size"), lines: field("lines"), theme: field("theme") }));
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch(form.action, { method: "POST", body: new FormData(form), headers: { Accept: "application/json" } });
  if (response.ok) saved.textContent = "Saved.";
  else saved.textContent = Object.values((await response.json()).errors || {}).join(" ") || "Could not save; try again.";
});
