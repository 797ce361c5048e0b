// roomscan's pages: a little plain JavaScript on top of forms that work without it.
// - forms with data-confirm ask first (deleting);
// - a listing page refreshes its live parts (processing state, amenities, photos) while photos are processing,
//   without touching the forms, so nothing typed is lost;
// - uploads go one file per request, each with its own progress bar and outcome;
// - the photo view's score slider hides weak boxes, and a detection row highlights its box.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// ---- live parts of a listing page ----
async function refreshLive() {
  const response = await fetch(window.location.pathname, { headers: { "X-Roomscan-Live": "1" } });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const part of document.querySelectorAll("[data-live]")) {
    const replacement = fresh.getElementById(part.id);
    if (replacement) part.replaceWith(document.importNode(replacement, true));
  }
  schedulePoll();
}

let pollTimer = null;
function schedulePoll() {
  const state = document.getElementById("processing");
  if (pollTimer || !state || state.dataset.state !== "processing") return;
  pollTimer = window.setTimeout(() => { pollTimer = null; refreshLive(); }, 2000);
}
schedulePoll();

// ---- upload: drag-and-drop or picker, one request per file ----
function setupUpload(form) {
  const input = form.querySelector("input[type=file]");
  const zone = form.querySelector(".dropzone");
  const list = document.getElementById("upload-files");
  const summary = document.getElementById("upload-summary");
  let chosen = [];

  function show(files) {
    chosen = Array.from(files);
    list.replaceChildren(...chosen.map((file) => {
      const row = document.createElement("li");
      const name = document.createElement("span");
      name.className = "file-name";
      name.textContent = `${file.name} (${Math.max(1, Math.round(file.size / 1024))} KB)`;
      const bar = document.createElement("progress");
      bar.max = 100; bar.value = 0;
      const result = document.createElement("span");
      result.className = "file-result";
      row.append(name, bar, result);
      return row;
    }));
    summary.textContent = chosen.length ? `${chosen.length} photo(s) ready to upload.` : "";
  }

  input.addEventListener("change", () => show(input.files));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    show(event.dataTransfer.files);
  });

  function send(file, row, csrf) {
    return new Promise((resolve) => {
      const body = new FormData();
      body.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.fileAction);
      xhr.setRequestHeader("X-CSRF-Token", csrf);  // the session's token: a cookie alone changes nothing
      xhr.responseType = "json";
      const bar = row.querySelector("progress");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) bar.value = Math.round((100 * event.loaded) / event.total);
      });
      xhr.addEventListener("load", () => {
        bar.value = 100;
        const answer = xhr.response || { detail: `the server answered ${xhr.status}` };
        resolve({ status: xhr.status, outcome: answer.outcome || "refused", detail: answer.detail || "" });
      });
      xhr.addEventListener("error", () => resolve({ status: 0, outcome: "refused", detail: "the connection failed" }));
      xhr.send(body);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chosen.length) { summary.textContent = "Choose or drop one or more photos first."; return; }
    const csrfField = form.querySelector("input[name=csrf_token]");
    const csrf = csrfField ? csrfField.value : "";
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const counts = { stored: 0, already_on_listing: 0, refused: 0 };
    const rows = list.querySelectorAll("li");
    for (let i = 0; i < chosen.length; i += 1) {
      const result = await send(chosen[i], rows[i], csrf);
      if (result.status === 401 || result.status === 403) {
        // Signed out, or not allowed: keep every chosen file so they can be sent after signing in again.
        summary.textContent = `${String(result.detail).replace(/\.$/, "")}. Nothing more was sent.`;
        summary.className = "outcome-refused";
        button.disabled = false;
        return;
      }
      counts[result.outcome] += 1;
      const line = rows[i].querySelector(".file-result");
      line.className = `file-result outcome-${result.outcome}`;
      line.textContent = { stored: "stored", already_on_listing: "already on this listing", refused: "refused" }[result.outcome]
        + (result.detail ? `: ${result.detail}` : "");
      rows[i].dataset.outcome = result.outcome;
    }
    summary.className = counts.refused ? "outcome-refused" : "outcome-stored";
    summary.textContent = `Upload: ${counts.stored} stored`
      + (counts.already_on_listing ? `, ${counts.already_on_listing} already on this listing` : "")
      + (counts.refused ? `, ${counts.refused} refused (see above)` : "") + ".";
    chosen = [];
    input.value = "";
    button.disabled = false;
    refreshLive();
  });
}
const uploadForm = document.getElementById("upload-form");
if (uploadForm) setupUpload(uploadForm);

// ---- photo view: score slider and row <-> box highlighting ----
const slider = document.getElementById("min-score");
if (slider) {
  const shown = document.getElementById("min-score-value");
  const apply = () => {
    const minimum = Number(slider.value);
    shown.textContent = minimum.toFixed(2);
    let visible = 0;
    for (const item of document.querySelectorAll("[data-score]")) {
      item.hidden = Number(item.dataset.score) < minimum;
      if (!item.hidden && item.classList.contains("box")) visible += 1;
    }
    document.getElementById("boxes-shown").textContent = visible;
  };
  slider.addEventListener("input", apply);
  apply();
  for (const row of document.querySelectorAll("#detections tr[data-box]")) {
    const box = document.getElementById(row.dataset.box);
    row.addEventListener("mouseenter", () => box.classList.add("active"));
    row.addEventListener("mouseleave", () => box.classList.remove("active"));
  }
}
