// Meeting page: upload a recording with a progress bar (XHR upload events), then follow the
// reprocessing job's stage and percentage until it finishes, and reload to show the new transcript.
const section = document.getElementById("reprocess");
const form = document.getElementById("upload-form");

function csrfToken() {
  return form?.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}

function upload(event) {
  event.preventDefault();
  const file = form.querySelector("input[type=file]").files[0];
  const bar = document.getElementById("upload-progress");
  const message = document.getElementById("upload-message");
  if (!file) return;
  if (file.size > Number(form.dataset.maxBytes)) {
    message.textContent = "This file is larger than the site accepts. Split the recording or ask an administrator to raise the limit.";
    return;
  }
  const xhr = new XMLHttpRequest();
  xhr.open("POST", form.action);
  xhr.setRequestHeader("X-CSRFToken", csrfToken());
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    bar.value = Math.floor((100 * e.loaded) / e.total);
    bar.setAttribute("aria-valuetext", `${bar.value} percent uploaded`);
  });
  xhr.addEventListener("load", () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch { /* not JSON: a proxy's error page */ }
    if (xhr.status === 202) {
      message.textContent = "Uploaded. Transcription has started.";
      section.dataset.jobFinished = "";
      poll();
    } else {
      message.textContent = body.error || `The upload failed (HTTP ${xhr.status}). Try again.`;
    }
    form.querySelector("button").disabled = false;
  });
  xhr.addEventListener("error", () => {
    // Uploading the same file again is safe: the server recognises it by its checksum.
    message.textContent = "The connection broke during the upload. Choose Upload again to restart it.";
    form.querySelector("button").disabled = false;
  });
  bar.hidden = false;
  bar.value = 0;
  message.textContent = "Uploading…";
  form.querySelector("button").disabled = true;
  const data = new FormData();
  data.append("file", file);
  xhr.send(data);
}

function show(job) {
  const box = document.getElementById("job");
  if (!job || !box) return false;
  document.getElementById("job-stage").textContent = job.stage_label + (job.cancel_requested && !job.finished ? " (stopping)" : "");
  const bar = document.getElementById("job-progress");
  bar.value = job.percent;
  bar.setAttribute("aria-valuetext", `${job.percent} percent`);
  document.getElementById("job-message").textContent = job.error || job.notice || "";
  if (job.finished) document.getElementById("job-cancel")?.remove();
  return true;
}

async function poll() {
  const response = await fetch(section.dataset.statusUrl, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const { job } = await response.json();
  if (!show(job) && job) return window.location.reload(); // a job started elsewhere: render its panel
  if (job && job.finished) {
    if (section.dataset.jobFinished !== "1" && job.stage === "done") window.location.reload();
    return;
  }
  setTimeout(poll, 2000);
}

form?.addEventListener("submit", upload);
if (section && section.dataset.jobFinished !== "1") poll();
