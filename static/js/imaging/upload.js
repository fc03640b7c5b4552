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
  // Files that did not get through (no answer, 5xx, timeout) and can be retried, unlike files the server refused
  // (422 with its reasons, 400, 413). The analysis waits while any is pending, so a retried file joins the analysis
  // of the others instead of starting one of its own (the study page shows the latest analysis).
  const pending = new Map(); // uppy file id -> file name
  let unfinished = false; // files stored since the last finish
  let cancelling = false;

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

  const statusText = {accepted: "Stored", duplicate: "Already uploaded", rejected: "Rejected", failed: "Not uploaded"};
  function showResults(fileId, results, fallbackName, fallbackMessage, fallbackStatus) {
    summary.hidden = false;
    (rows.get(fileId) || []).forEach((tr) => tr.remove());
    const list = results && results.length ? results
      : [{name: fallbackName, status: fallbackStatus || "rejected", message: fallbackMessage}];
    const created = list.map((r) => {
      const tr = document.createElement("tr");
      tr.className = "result-" + r.status;
      const name = document.createElement("td");
      name.textContent = r.name;
      const status = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "badge " + (r.status === "accepted" ? "ok"
        : r.status === "rejected" || r.status === "failed" ? "danger" : "");
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

  function showPending() {
    summary.hidden = false;
    errorsBox.innerHTML = "";
    const p = document.createElement("p");
    p.className = "message message-warning";
    p.dataset.pending = String(pending.size);
    const names = [...pending.values()];
    p.textContent = (names.length === 1 ? names[0] + " did not upload" : names.length + " files did not upload: "
      + names.join(", ")) + ". Retry from the file's tile or with Retry below the files; the analysis starts when "
      + "every file is in. ";
    if (unfinished) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button small";
      button.dataset.action = "finish-without-failed";
      button.textContent = "Start the analysis without " + (names.length === 1 ? "it" : "them");
      button.addEventListener("click", () => finish());
      p.appendChild(button);
    }
    errorsBox.appendChild(p);
  }

  async function finish() {
    unfinished = false;
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
  }

  // A file from a dropped or picked folder is listed with its folder path, so two IM0001 of two series can be told
  // apart; the server only ever receives (and echoes) the file's own name.
  function shownName(file, name) {
    const path = (file.meta && file.meta.relativePath) || "";
    const folder = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
    return folder && !name.startsWith(folder) ? folder + name : name;
  }
  function shownResults(file, results) {
    return results && results.map((r) => ({...r, name: shownName(file, r.name)}));
  }

  uppy.on("upload-success", (file, response) => {
    pending.delete(file.id);
    showResults(file.id, shownResults(file, (response.body || {}).files), shownName(file, file.name), "");
  });
  uppy.on("upload-error", (file, error, response) => {
    if (!file) return;
    const request = response || (error && error.request);
    const status = request ? request.status : 0;
    let results = null;
    if (request && request.responseText) {
      try { results = JSON.parse(request.responseText).files; } catch (e) { /* not JSON */ }
    }
    const retryable = !(results && results.length)
      && (status === 0 || status === 408 || status === 429 || status >= 500);
    if (retryable) pending.set(file.id, shownName(file, file.name));
    const message = status === 0 ? "The server could not be reached; retry this file."
      : error ? error.message : "Upload failed; retry this file.";
    showResults(file.id, shownResults(file, results), shownName(file, file.name), message,
      retryable ? "failed" : "rejected");
    // The tile draws its retry button only once the file has reported upload progress: a request that failed before
    // sending anything (server unreachable) would leave the tile without one.
    const current = uppy.getFile(file.id);
    if (current && current.progress.percentage === undefined) {
      uppy.setFileState(file.id, {progress: {...current.progress, percentage: 0}});
    }
  });
  // The tile's retry button calls retryUpload, which (unlike upload and retryAll) emits no "complete" (as
  // transloadit/uppy#5929 reports for restore): without one a file retried from its tile would never be analysed.
  const retryOne = uppy.retryUpload.bind(uppy);
  uppy.retryUpload = (fileID) => retryOne(fileID).then((result) => { uppy.emit("complete", result); return result; });
  uppy.on("cancel-all", () => { cancelling = true; queueMicrotask(() => { cancelling = false; }); });
  uppy.on("file-removed", (file) => {
    // removing a failed file from the dashboard means going ahead without it
    if (!file || !pending.delete(file.id) || cancelling) return;
    (rows.get(file.id) || []).forEach((tr) => tr.remove());
    rows.delete(file.id);
    if (pending.size) showPending();
    else if (unfinished && !Object.keys(uppy.getState().currentUploads).length) finish();
  });
  uppy.on("complete", (result) => {
    if (result && result.successful && result.successful.length) unfinished = true;
    if (pending.size) {
      showPending();
      // a file retried from its tile clears the status bar's error while others still wait for a retry: put it back,
      // so the status bar says so and keeps its Retry button
      const failed = uppy.getFiles().find((f) => f.error);
      if (failed && !uppy.getState().error) uppy.setState({error: failed.error});
      return;
    }
    if (unfinished) finish();
  });
  window.lumenUppy = uppy; // for people debugging in the console, and the browser tests
})();
