// Upload page: Uppy dashboard (drag-and-drop files, folders, zips), one request per file for per-file progress,
// error and retry; when every file is in, "finish" starts the analyses and links to the studies.
(function () {
  "use strict";
  const el = document.getElementById("uploader");
  if (!el || !window.Uppy) return;
  const csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  const summary = document.getElementById("upload-summary");
  const tbody = document.querySelector("#upload-results tbody");
  const errorsBox = document.getElementById("upload-errors");
  const studiesBox = document.getElementById("upload-studies");
  const rows = new Map(); // uppy file id -> rows in the results table

  let sessionPromise = null;
  function ensureSession() {
    if (!sessionPromise) {
      sessionPromise = fetch(el.dataset.sessionUrl, {method: "POST", credentials: "same-origin",
                                                     headers: {"X-CSRFToken": csrf}})
        .then((r) => {
          if (!r.ok) throw new Error("Could not start the upload (HTTP " + r.status + "); reload the page and try again.");
          return r.json();
        })
        .then((data) => String(data.id))
        .catch((err) => { sessionPromise = null; throw err; });
    }
    return sessionPromise;
  }

  const statusText = {accepted: "Stored", duplicate: "Already uploaded", rejected: "Rejected"};
  function showResults(fileId, results, fallbackName, fallbackMessage) {
    summary.hidden = false;
    (rows.get(fileId) || []).forEach((tr) => tr.remove());
    const list = results && results.length ? results : [{name: fallbackName, status: "rejected", message: fallbackMessage}];
    const created = list.map((r) => {
      const tr = document.createElement("tr");
      tr.className = "result-" + r.status;
      const name = document.createElement("td");
      name.textContent = r.name;
      const status = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "badge " + (r.status === "accepted" ? "ok" : r.status === "rejected" ? "danger" : "");
      badge.textContent = statusText[r.status] || r.status;
      status.appendChild(badge);
      const details = document.createElement("td");
      details.textContent = r.message || (r.image_ids && r.image_ids.length > 1 ? r.image_ids.length + " frames" : "");
      tr.append(name, status, details);
      tbody.appendChild(tr);
      return tr;
    });
    rows.set(fileId, created);
  }

  const uppy = new Uppy.Uppy({
    id: "imaging-upload",
    autoProceed: false,
    restrictions: {maxFileSize: Number(el.dataset.maxMb || 1024) * 1024 * 1024},
  });
  uppy.use(Uppy.Dashboard, {
    target: el, inline: true, width: "100%", height: 430, fileManagerSelectionType: "both",
    proudlyDisplayPoweredByUppy: false, showProgressDetails: true, hideRetryButton: false,
    note: "PNG, JPEG, DICOM or .zip of a series; drop whole folders too",
    locale: {strings: {dropPasteFiles: "Drop scans here, %{browseFiles} or %{browseFolders}",
                       dropPasteBoth: "Drop scans, folders or .zip archives here, %{browseFiles} or %{browseFolders}"}},
  });
  uppy.use(Uppy.XHRUpload, {
    endpoint: el.dataset.fileUrl, fieldName: "file", formData: true, limit: Number(el.dataset.parallel || 3), timeout: 180000,
    headers: {"X-CSRFToken": csrf}, allowedMetaFields: ["session"],
    shouldRetry: (xhr) => xhr.status === 0 || xhr.status >= 502,
    async onAfterResponse(xhr) {
      if (xhr.status >= 400) {
        let message = "";
        try { message = JSON.parse(xhr.responseText).message || ""; } catch (e) { /* not JSON */ }
        throw new Error(message || "Upload failed (HTTP " + xhr.status + "); retry this file.");
      }
    },
  });
  uppy.addPreProcessor(async () => {
    const id = await ensureSession();
    uppy.setMeta({session: id});
  });
  ensureSession().then((id) => uppy.setMeta({session: id})).catch(() => {});

  uppy.on("upload-success", (file, response) => {
    showResults(file.id, (response.body || {}).files, file.name, "");
  });
  uppy.on("upload-error", (file, error, response) => {
    let results = null;
    const request = error && error.request;
    if (request && request.responseText) {
      try { results = JSON.parse(request.responseText).files; } catch (e) { /* not JSON */ }
    }
    showResults(file.id, results, file.name, error ? error.message : "Upload failed; retry this file.");
  });
  uppy.on("complete", async (result) => {
    if (!result.successful || !result.successful.length) return;
    const body = new FormData();
    body.append("session", await ensureSession());
    const response = await fetch(el.dataset.finishUrl, {method: "POST", body, credentials: "same-origin",
                                                        headers: {"X-CSRFToken": csrf}});
    summary.hidden = false;
    if (!response.ok) {
      errorsBox.innerHTML = "";
      const p = document.createElement("p");
      p.className = "message message-error";
      p.textContent = "The files are stored, but the analysis could not be started (HTTP " + response.status + "). Open the study and start it there.";
      errorsBox.appendChild(p);
      return;
    }
    const data = await response.json();
    errorsBox.innerHTML = "";
    (data.errors || []).forEach((e) => {
      const p = document.createElement("p");
      p.className = "message message-warning";
      p.textContent = e.message;
      errorsBox.appendChild(p);
    });
    studiesBox.innerHTML = "";
    (data.studies || []).forEach((s) => {
      const a = document.createElement("a");
      a.className = "button primary";
      a.href = s.url;
      a.textContent = "Open " + s.title + " (" + s.images + " image" + (s.images === 1 ? "" : "s") + ")";
      studiesBox.appendChild(a);
    });
    document.dispatchEvent(new CustomEvent("imaging:upload-finished", {detail: data}));
  });
  window.lumenUppy = uppy; // for people debugging in the console, and the browser tests
})();
