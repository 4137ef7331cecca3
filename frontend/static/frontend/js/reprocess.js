// Meeting page: upload a recording in pieces with a progress bar (XHR upload events), resuming after
// a broken connection or a reload, then follow the reprocessing job's stage and percentage until it
// finishes, and reload to show the new transcript. The header's status follows the job; the upload's
// message is kept (per tab) until its job finishes, so the page's own reloads do not wipe it.
const section = document.getElementById("reprocess");
const form = document.getElementById("upload-form");
const MESSAGE_KEY = section ? `scribe-upload-message:${section.dataset.statusUrl}` : "";

function rememberMessage(jobId, text) {
  sessionStorage.setItem(MESSAGE_KEY, JSON.stringify({ jobId, text }));
}

function restoreMessage() {
  const box = document.getElementById("upload-message");
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(MESSAGE_KEY) || "null"); } catch { /* a damaged entry */ }
  if (!saved || String(saved.jobId) !== section.dataset.jobId || section.dataset.jobFinished === "1") {
    sessionStorage.removeItem(MESSAGE_KEY);
    return;
  }
  if (box) box.textContent = saved.text;
}
// Small enough to resend cheaply, large enough to keep the line busy; the server refuses larger pieces.
const PIECE_BYTES = Number(form?.dataset.pieceBytes) || 8 * 1024 * 1024;
const TOKEN = "00000000000000000000000000000000";

const headers = (extra = {}) => ({
  "X-CSRFToken": form.querySelector("input[name=csrfmiddlewaretoken]").value,
  Accept: "application/json",
  ...extra,
});
const pieceUrl = (token) => form.dataset.pieceUrl.replace(TOKEN, token);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function sendPiece(token, file, offset, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", pieceUrl(token));
    for (const [name, value] of Object.entries(headers({ "X-Upload-Offset": String(offset), "Content-Type": "application/octet-stream" }))) {
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener("progress", (e) => onProgress(offset + e.loaded));
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* a proxy's error page */ }
      if (xhr.status === 200 || (xhr.status === 409 && body.received != null)) resolve(body.received);
      else reject(new Error(body.error || `HTTP ${xhr.status}`));
    });
    xhr.addEventListener("error", () => reject(new Error("connection lost")));
    xhr.send(file.slice(offset, Math.min(file.size, offset + PIECE_BYTES)));
  });
}

async function received(token) {
  const response = await fetch(pieceUrl(token), { headers: headers() });
  return response.ok ? (await response.json()).received : null;
}

async function startOrResume(file, key) {
  const saved = localStorage.getItem(key);
  if (saved) {
    const have = await received(saved).catch(() => null);
    if (have != null) return [saved, have];
  }
  const data = new FormData();
  data.append("name", file.name);
  data.append("size", String(file.size));
  data.append("type", file.type);
  const response = await fetch(form.dataset.startUrl, { method: "POST", headers: headers(), body: data });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error);
  localStorage.setItem(key, body.token);
  return [body.token, 0];
}

async function upload(file, show) {
  const key = `scribe-upload:${form.dataset.startUrl}:${file.name}:${file.size}:${file.lastModified}`;
  let [token, offset] = await startOrResume(file, key);
  let failures = 0;
  while (offset < file.size) {
    try {
      offset = await sendPiece(token, file, offset, show);
      failures = 0;
    } catch (error) {
      if (++failures > 6) throw new Error(`${error.message}. Choose Upload again later to continue where it stopped.`);
      await sleep(1000 * 2 ** failures);
      offset = (await received(token).catch(() => null)) ?? offset;
    }
  }
  const response = await fetch(`${pieceUrl(token)}/finish`, { method: "POST", headers: headers() });
  const body = await response.json();
  localStorage.removeItem(key); // finished or refused: either way the pieces are gone on the server
  if (response.status !== 202) throw new Error(body.error || `HTTP ${response.status}`);
  return body.job;
}

async function onSubmit(event) {
  event.preventDefault();
  const file = form.querySelector("input[type=file]").files[0];
  const bar = document.getElementById("upload-progress");
  const message = document.getElementById("upload-message");
  const button = form.querySelector("button");
  if (!file) return;
  if (file.size > Number(form.dataset.maxBytes)) {
    message.textContent = "This file is larger than the site accepts. Split the recording or ask an administrator to raise the limit.";
    return;
  }
  bar.hidden = false;
  message.textContent = "Uploading…";
  button.disabled = true;
  const show = (bytes) => {
    bar.value = Math.floor((100 * bytes) / file.size);
    bar.setAttribute("aria-valuetext", `${bar.value} percent uploaded`);
  };
  try {
    const job = await upload(file, show);
    message.textContent = "Uploaded. Transcription has started.";
    if (job) rememberMessage(job.id, message.textContent);
    section.dataset.jobFinished = "";
    poll();
  } catch (error) {
    message.textContent = `The upload did not finish: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function show(job) {
  const box = document.getElementById("job");
  if (!job || !box) return false;
  document.getElementById("job-stage").textContent = job.stage_label + (job.cancel_requested && !job.finished ? " (stopping)" : "");
  const bar = document.getElementById("job-progress");
  bar.value = job.percent;
  bar.setAttribute("aria-valuetext", `${job.percent} percent`);
  document.getElementById("job-message").textContent = job.error || job.notice || "";
  if (job.notice) document.getElementById("no-diarization")?.remove(); // said once, by the job
  if (job.finished) {
    document.getElementById("job-cancel")?.remove();
    sessionStorage.removeItem(MESSAGE_KEY);
    const upload = document.getElementById("upload-message");
    if (upload && job.stage !== "done") upload.textContent = "";
  }
  return true;
}

function showMeeting(meeting) {
  const status = document.getElementById("meeting-status");
  if (!meeting || !status) return;
  status.textContent = meeting.status_label;
  status.className = `status status-${meeting.status}`;
}

async function poll() {
  const response = await fetch(section.dataset.statusUrl, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const { job, meeting } = await response.json();
  showMeeting(meeting);
  if (job && (!show(job) || Number(section.dataset.jobId) !== job.id)) return window.location.reload(); // a new job: render its panel
  if (job && job.finished) {
    if (section.dataset.jobFinished !== "1" && job.stage === "done") window.location.reload();
    return;
  }
  setTimeout(poll, 2000);
}

form?.addEventListener("submit", onSubmit);
if (section) restoreMessage();
if (section && section.dataset.jobFinished !== "1") poll();
