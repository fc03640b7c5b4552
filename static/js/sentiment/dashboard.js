/* Sentiment dashboard: Chart.js line (index) + stacked bars (volume) on a linear epoch-ms axis, filters kept in
   the URL, live refresh while documents are scored, click a point -> its documents (server-rendered partial). */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("dash-config").textContent);
  var form = document.getElementById("dash-filters");
  var palette = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626"];
  var state = { bucket: "day", bucketMs: 86400000, start: 0, end: 0 };
  var indexChart = null, volumeChart = null, timer = null;
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function tick(ms) {
    var d = new Date(ms);
    if (state.bucket === "hour") { return d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] + " " + pad(d.getUTCHours()) + ":00"; }
    var label = d.getUTCDate() + " " + MONTHS[d.getUTCMonth()];
    return (state.end - state.start > 200 * 86400000) ? label + " " + String(d.getUTCFullYear()).slice(2) : label;
  }
  function full(ms) {
    var d = new Date(ms);
    var day = d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear();
    if (state.bucket === "hour") { return day + " " + pad(d.getUTCHours()) + ":00 UTC"; }
    return (state.bucket === "week" ? "week of " : "") + day;
  }

  function params() {
    var p = new URLSearchParams();
    var keys = Array.prototype.map.call(form.querySelectorAll("input[name=entity]:checked"), function (el) { return el.value; });
    if (keys.length) { p.set("entities", keys.join(",")); }
    p.set("bucket", form.querySelector("[name=bucket]").value);
    var start = form.querySelector("[name=start]").value, end = form.querySelector("[name=end]").value;
    if (start) { p.set("start", start); }
    if (end) { p.set("end", end); }
    Array.prototype.forEach.call(form.querySelectorAll("input[name=source]:checked"), function (el) { p.append("source", el.value); });
    return p;
  }

  function baseOptions(yTitle, extra) {
    return Object.assign({
      animation: false, maintainAspectRatio: false, responsive: true,
      interaction: { mode: "nearest", intersect: false },
      scales: {
        x: { type: "linear", min: state.start, max: state.end, ticks: { maxTicksLimit: 8, callback: function (v) { return tick(v); } }, grid: { color: "#eef1f5" } },
        // A fixed axis width keeps the two charts' time axes exactly above each other.
        y: { title: { display: true, text: yTitle }, grid: { color: "#eef1f5" }, afterFit: function (scale) { scale.width = 64; } }
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12 } },
        tooltip: { callbacks: { title: function (items) { return items.length ? full(items[0].parsed.x - state.bucketMs / 2) : ""; } } }
      }
    }, extra || {});
  }

  function render(data) {
    state.bucket = data.bucket; state.bucketMs = data.bucket_ms; state.start = data.start; state.end = data.end;
    var indexSets = [], volumeSets = [], any = false;
    data.entities.forEach(function (key, i) {
      var points = data.series[key] || [];
      if (points.length) { any = true; }
      var color = palette[i % palette.length];
      // Points sit in the middle of their period, like the volume bars; `t` keeps the period start for drill-down.
      var half = state.bucketMs / 2;
      indexSets.push({ label: key, data: points.map(function (p) { return { x: p.t + half, t: p.t, y: p.index, n: p.count, neg: p.negative_share }; }),
        borderColor: color, backgroundColor: color, pointRadius: points.length > 120 ? 1.5 : 3.5, pointHoverRadius: 6, borderWidth: 2, tension: 0.25, spanGaps: false });
      volumeSets.push({ label: key, data: points.map(function (p) { return { x: p.t + half, y: p.count }; }), backgroundColor: color + "cc",
        barThickness: "flex", maxBarThickness: 18, stack: "v" });
    });
    document.getElementById("chart-empty").hidden = any;
    var indexOptions = baseOptions("index (−1 … +1)", {
      onClick: function (evt, elements) {
        if (!elements.length) { return; }
        var el = elements[0];
        var point = indexChart.data.datasets[el.datasetIndex].data[el.index];
        drill(indexChart.data.datasets[el.datasetIndex].label, point.t);
      },
      onHover: function (evt, elements) { evt.native.target.style.cursor = elements.length ? "pointer" : "default"; }
    });
    indexOptions.scales.y.min = -1; indexOptions.scales.y.max = 1;
    indexOptions.plugins.tooltip.callbacks.label = function (ctx) {
      var r = ctx.raw; return ctx.dataset.label + ": " + (r.y >= 0 ? "+" : "") + r.y.toFixed(2) + " (" + r.n + " docs, " + Math.round(100 * r.neg) + "% negative)";
    };
    var volumeOptions = baseOptions("documents");
    volumeOptions.scales.x.stacked = true; volumeOptions.scales.y.stacked = true; volumeOptions.scales.y.beginAtZero = true;
    volumeOptions.plugins.legend.display = false;
    if (!indexChart) {
      indexChart = new Chart(document.getElementById("index-chart"), { type: "line", data: { datasets: indexSets }, options: indexOptions });
      volumeChart = new Chart(document.getElementById("volume-chart"), { type: "bar", data: { datasets: volumeSets }, options: volumeOptions });
    } else {
      indexChart.data.datasets = indexSets; indexChart.options = indexOptions; indexChart.update("none");
      volumeChart.data.datasets = volumeSets; volumeChart.options = volumeOptions; volumeChart.update("none");
    }
    document.getElementById("movers").innerHTML = data.movers_html;
    document.getElementById("negatives").innerHTML = data.negatives_html;
    document.getElementById("dash-updated").textContent = "updated " + new Date(data.updated).toLocaleTimeString();
    document.body.setAttribute("data-dashboard-ready", "1");
  }

  var lastLoad = 0;
  function load() {
    lastLoad = Date.now();
    var p = params();
    return fetch(config.data_url + "?" + p.toString(), { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(render)
      .catch(function () { document.getElementById("dash-updated").textContent = "could not refresh; retrying"; });
  }

  function drill(key, startMs) {
    var p = new URLSearchParams();
    p.set("key", key); p.set("start", String(startMs)); p.set("end", String(startMs + state.bucketMs));
    Array.prototype.forEach.call(form.querySelectorAll("input[name=source]:checked"), function (el) { p.append("source", el.value); });
    var target = document.getElementById("drilldown");
    target.innerHTML = '<p class="muted">Loading documents…</p>';
    fetch(config.point_url + "?" + p.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        target.innerHTML = html;
        if (window.htmx) { window.htmx.process(target); }
        document.getElementById("drilldown-panel").scrollIntoView({ behavior: "smooth", block: "start" });
      });
  }

  function syncUrl() { history.replaceState(null, "", "?" + params().toString()); }
  form.addEventListener("change", function () { syncUrl(); load(); });
  form.addEventListener("submit", function (e) { e.preventDefault(); syncUrl(); load(); });
  Array.prototype.forEach.call(form.querySelectorAll("[data-days]"), function (btn) {
    btn.addEventListener("click", function () {
      var end = new Date(), start = new Date(end.getTime() - Number(btn.getAttribute("data-days")) * 86400000);
      form.querySelector("[name=end]").value = end.toISOString().slice(0, 10);
      form.querySelector("[name=start]").value = start.toISOString().slice(0, 10);
      syncUrl(); load();
    });
  });
  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest(".entity-link");
    if (!link) { return; }
    e.preventDefault();
    var box = form.querySelector("input[name=entity][value='" + link.getAttribute("data-entity") + "']");
    if (box && !box.checked) { box.checked = true; syncUrl(); load(); }
  });
  // Live refresh: poll while the tab is visible; a finished scoring batch shows up within one period.
  function schedule() {
    clearInterval(timer);
    timer = setInterval(function () { if (!document.hidden) { load(); } }, config.refresh_seconds * 1000);
  }
  // While texts are being scored the charts refresh with every progress tick, and once more when scoring ends.
  var hadActive = !!document.querySelector("#active-batches .batch-status");
  document.body.addEventListener("htmx:afterSettle", function () {
    var active = !!document.querySelector("#active-batches .batch-status");
    if ((active || hadActive) && Date.now() - lastLoad > 3000) { load(); }
    hadActive = active;
  });
  load(); schedule();
})();
