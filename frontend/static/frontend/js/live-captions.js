// The caption view for followers: captions from the meeting's group, caught up by sequence number
// after every (re)connection, with display settings saved for the user.
import { CaptionView, LiveSocket, MissedFinals } from "./live-common.js";

const root = document.getElementById("live");
const view = new CaptionView(root);
const socket = new LiveSocket(root.dataset.socketPath, {
  open() {
    missed.connected();
  },
  message(m) {
    if (m.type === "caption") view.caption(m, socket.offsetMs);
    else if (m.type === "replay") missed.replay(m);
    else if (m.type === "status") {
      view.hostStatus(m);
      missed.status(m);
    } else if (m.type === "error") view.interrupt(m.message);
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
const missed = new MissedFinals(view, (message) => socket.send(message));

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
