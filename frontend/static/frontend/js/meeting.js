// Meeting page: time stamps and words play the recording from that moment, the segment and the word
// being spoken are highlighted, a link with ?t= opens at that time (a search hit: at its word), and
// destructive forms ask first.
const root = document.getElementById("meeting");
const player = document.getElementById("player");
const segments = [...document.querySelectorAll(".segment")];
const words = [...document.querySelectorAll(".segment .word")]; // in time order, as the transcript is
const wordStarts = words.map((w) => Number(w.dataset.startMs));

// The last word starting at or before `ms`, if `ms` is still inside it; binary search (hours of words).
function wordAt(ms) {
  let lo = 0;
  let hi = wordStarts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (wordStarts[mid] <= ms) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found >= 0 && ms < Number(words[found].dataset.endMs) ? words[found] : null;
}

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
  const word = event.target.closest(".word");
  seek(Number((word || segment).dataset.startMs));
});

let currentSegment = null;
let currentWord = null;
function highlight(ms) {
  const seg = segments.find((s) => ms >= Number(s.dataset.startMs) && ms < Number(s.dataset.endMs)) || null;
  if (seg !== currentSegment) {
    currentSegment?.classList.remove("playing");
    seg?.classList.add("playing");
    currentSegment = seg;
  }
  const word = wordAt(ms);
  if (word !== currentWord) {
    currentWord?.classList.remove("current-word");
    word?.classList.add("current-word");
    currentWord = word;
  }
}

if (player) {
  // timeupdate fires about four times a second: too coarse for words, so frames drive it while playing.
  const follow = () => {
    highlight(player.currentTime * 1000);
    if (!player.paused) requestAnimationFrame(follow);
  };
  player.addEventListener("play", () => requestAnimationFrame(follow));
  player.addEventListener("seeked", () => highlight(player.currentTime * 1000));
  player.addEventListener("timeupdate", () => highlight(player.currentTime * 1000));
}

const startMs = root?.dataset.startMs;
if (startMs) {
  const target = location.hash ? document.querySelector(location.hash) : null;
  target?.classList.add("target");
  // Focusable (tabindex -1) so that the browser's own move to the fragment lands on the hit, not the body.
  target?.focus();
  seek(Number(startMs), { play: false });
  highlight(Number(startMs));
}

for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
