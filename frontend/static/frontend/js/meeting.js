// Meeting page: time stamps play the recording from that moment, the segment being spoken is
// highlighted, a link with ?t= opens at that time, and destructive forms ask first.
const root = document.getElementById("meeting");
const player = document.getElementById("player");
const segments = [...document.querySelectorAll(".segment")];

function seek(ms, { play = true } = {}) {
  if (!player) return;
  const go = () => {
    player.currentTime = ms / 1000;
    if (play) player.play().catch(() => {}); // autoplay may be refused; the position is still set
  };
  if (player.readyState >= 1) go();
  else player.addEventListener("loadedmetadata", go, { once: true });
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-seek]");
  if (button) return seek(Number(button.dataset.seek));
  // Clicking a segment's words plays from there too, unless the reader is selecting text or editing.
  const segment = event.target.closest(".segment");
  if (!segment || event.target.closest("details, a, button, textarea, input")) return;
  if (String(window.getSelection())) return;
  seek(Number(segment.dataset.startMs));
});

if (player) {
  let current = null;
  player.addEventListener("timeupdate", () => {
    const ms = player.currentTime * 1000;
    const seg = segments.find((s) => ms >= Number(s.dataset.startMs) && ms < Number(s.dataset.endMs));
    if (seg === current) return;
    current?.classList.remove("playing");
    seg?.classList.add("playing");
    current = seg;
  });
}

const startMs = root?.dataset.startMs;
if (startMs) {
  const target = location.hash ? document.querySelector(location.hash) : null;
  target?.classList.add("target");
  // Focusable (tabindex -1) so that the browser's own move to the fragment lands on the hit, not the body.
  target?.focus();
  seek(Number(startMs), { play: false });
}

for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
