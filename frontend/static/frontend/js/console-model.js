// Model version page: while an import or verification reads the folder, poll its progress and
// reload the page when it is done, so the buttons and checksums match the new status.
const box = document.getElementById("model-progress");
const bar = document.getElementById("model-progress-bar");
const text = document.getElementById("model-progress-text");
const POLL_MS = 1000;

function gigabytes(bytes) {
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

async function poll() {
  let data;
  try {
    const response = await fetch(box.dataset.progressUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`status ${response.status}`);
    data = await response.json();
  } catch (error) {
    text.textContent = "Progress cannot be read right now; trying again.";
    setTimeout(poll, POLL_MS * 3);
    return;
  }
  if (!data.checking) {
    window.location.reload();
    return;
  }
  bar.value = data.percent;
  bar.textContent = `${data.percent}%`;
  text.textContent = `${data.percent}% of ${gigabytes(data.total_bytes)} read.`;
  setTimeout(poll, POLL_MS);
}

if (box && !box.hidden) setTimeout(poll, POLL_MS);
