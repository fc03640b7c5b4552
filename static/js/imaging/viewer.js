// Result page viewer: canvas with zoom (wheel/buttons), pan (drag), window/level for grayscale DICOM
// (sliders or right/shift-drag), slice scrubber, Grad-CAM overlay with toggle, opacity and class choice.
// The results block is replaced by htmx while an analysis runs; the view state survives the swap.
(function () {
  "use strict";
  const states = {};
  const imageCache = new Map();
  const valuesCache = new Map();

  function loadImage(url) {
    if (!imageCache.has(url)) {
      imageCache.set(url, new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve(img);
        img.onerror = () => reject(new Error("could not load " + url));
        img.src = url;
      }));
    }
    return imageCache.get(url);
  }

  function loadValues(url) {
    if (!valuesCache.has(url)) {
      valuesCache.set(url, fetch(url, {credentials: "same-origin"}).then((r) => {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.arrayBuffer();
      }).then((buf) => new Uint16Array(buf)));
    }
    return valuesCache.get(url);
  }

  function initialIndex(images) {
    const wanted = new URLSearchParams(location.search).get("image");
    const found = images.findIndex((im) => String(im.id) === wanted);
    return found >= 0 ? found : 0;
  }

  function init() {
    const root = document.getElementById("results");
    const dataEl = document.getElementById("viewer-data");
    if (!root || !dataEl || root.dataset.viewerReady) return;
    root.dataset.viewerReady = "1";
    const images = JSON.parse(dataEl.textContent);
    if (!images.length) return;
    const key = location.pathname;
    const s = states[key] = states[key] || {index: initialIndex(images), zoom: 1, panX: 0, panY: 0, opacity: 0.55,
                                            overlayOn: true, overlayChoice: {}, wl: {}};
    s.index = Math.min(s.index, images.length - 1);
    const viewer = root.querySelector("[data-viewer]");
    const canvas = root.querySelector("[data-canvas]");
    const label = root.querySelector("[data-viewer-label]");
    const ctx = canvas.getContext("2d");
    const q = (sel) => root.querySelector(sel);
    const slice = q('[data-control="slice"]');
    const opacity = q('[data-control="opacity"]');
    const toggle = q('[data-control="overlay-toggle"]');
    const select = q('[data-control="overlay-select"]');
    const wlBox = q("[data-wl]");
    const wc = q('[data-control="wc"]');
    const ww = q('[data-control="ww"]');
    let windowed = null; // {id, c, w, canvas}
    let drawToken = 0;

    function current() { return images[s.index]; }
    function defaultWindow(im) {
      return im.window ? {c: im.window[0], w: im.window[1]} : {c: (im.range[0] + im.range[1]) / 2,
                                                             w: Math.max(1, im.range[1] - im.range[0])};
    }
    function windowFor(im) { return s.wl[im.id] || defaultWindow(im); }

    function windowedCanvas(im, values) {
      const win = windowFor(im);
      if (windowed && windowed.id === im.id && windowed.c === win.c && windowed.w === win.w) return windowed.canvas;
      const off = windowed && windowed.canvas.width === im.width && windowed.canvas.height === im.height
        ? windowed.canvas : document.createElement("canvas");
      off.width = im.width; off.height = im.height;
      const octx = off.getContext("2d");
      const out = octx.createImageData(im.width, im.height);
      const scale = (im.range[1] - im.range[0]) / 65535;
      const low = win.c - 0.5 - (win.w - 1) / 2;
      const span = Math.max(win.w - 1, 1);
      for (let i = 0, n = values.length; i < n; i++) {
        let v = ((im.range[0] + values[i] * scale) - low) / span;
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        if (im.invert) v = 1 - v;
        const g = Math.round(v * 255);
        const o = i * 4;
        out.data[o] = out.data[o + 1] = out.data[o + 2] = g;
        out.data[o + 3] = 255;
      }
      octx.putImageData(out, 0, 0);
      windowed = {id: im.id, c: win.c, w: win.w, canvas: off};
      return off;
    }

    function overlayFor(im) {
      const chosen = s.overlayChoice[im.id] || im.default_overlay;
      return im.overlays.find((o) => o.id === chosen) || null;
    }

    async function draw() {
      const token = ++drawToken;
      const im = current();
      let base;
      try {
        base = im.values ? windowedCanvas(im, await loadValues(im.values)) : await loadImage(im.preview);
      } catch (e) {
        base = await loadImage(im.preview);
      }
      const ov = overlayFor(im);
      const overlayImg = ov && s.overlayOn ? await loadImage(ov.url).catch(() => null) : null;
      if (token !== drawToken) return;
      // size (and so clear) the canvas only once everything is loaded: no black frame while a slice loads
      const rect = viewer.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      canvas.width = Math.max(1, Math.round(rect.width * dpr));
      canvas.height = Math.max(1, Math.round(rect.height * dpr));
      const fit = Math.min(canvas.width / im.width, canvas.height / im.height);
      const scale = fit * s.zoom;
      const w = im.width * scale, h = im.height * scale;
      const x = (canvas.width - w) / 2 + s.panX * dpr, y = (canvas.height - h) / 2 + s.panY * dpr;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#0b0f14";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.imageSmoothingEnabled = scale < 3;
      ctx.drawImage(base, x, y, w, h);
      if (overlayImg) {
        ctx.globalAlpha = s.opacity;
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(overlayImg, x, y, w, h);
        ctx.globalAlpha = 1;
      }
      viewer.dataset.drawnImage = String(im.id);
      viewer.dataset.drawnOverlay = overlayImg ? String(ov.id) : "";
      const win = im.values ? windowFor(im) : null;
      label.textContent = im.name + "  ·  " + Math.round(s.zoom * 100) + "%" +
        (win ? "  ·  W " + Math.round(win.w) + " / L " + Math.round(win.c) : "") +
        (ov && s.overlayOn ? "  ·  Grad-CAM: " + ov.label + (ov.source === "series" ? " (series)" : "") : "");
    }

    function syncControls() {
      const im = current();
      root.querySelectorAll("[data-image-card]").forEach((card) => {
        card.hidden = Number(card.dataset.imageCard) !== s.index;
      });
      if (slice) { slice.value = String(s.index); q('[data-out="slice"]').textContent = String(s.index + 1); }
      opacity.value = String(Math.round(s.opacity * 100));
      toggle.checked = s.overlayOn;
      select.innerHTML = "";
      im.overlays.forEach((o) => {
        const opt = document.createElement("option");
        opt.value = String(o.id);
        opt.textContent = o.label + (o.source === "series" ? " (series)" : "");
        select.appendChild(opt);
      });
      const ov = overlayFor(im);
      if (ov) select.value = String(ov.id);
      select.disabled = toggle.disabled = opacity.disabled = !im.overlays.length;
      wlBox.hidden = !im.values;
      if (im.values) {
        const win = windowFor(im);
        const span = Math.max(1, im.range[1] - im.range[0]);
        wc.min = String(Math.floor(im.range[0])); wc.max = String(Math.ceil(im.range[1]));
        ww.min = "1"; ww.max = String(Math.ceil(span * 2));
        wc.value = String(win.c); ww.value = String(win.w);
        q('[data-out="wc"]').textContent = String(Math.round(win.c));
        q('[data-out="ww"]').textContent = String(Math.round(win.w));
      }
    }

    function go(index) {
      s.index = Math.max(0, Math.min(images.length - 1, index));
      syncControls();
      draw();
    }

    if (slice) slice.addEventListener("input", () => go(Number(slice.value)));
    opacity.addEventListener("input", () => { s.opacity = Number(opacity.value) / 100; draw(); });
    toggle.addEventListener("change", () => { s.overlayOn = toggle.checked; draw(); });
    select.addEventListener("change", () => { s.overlayChoice[current().id] = Number(select.value); draw(); });
    function setWindow(c, w) {
      const im = current();
      s.wl[im.id] = {c: c, w: Math.max(1, w)};
      syncControls();
      draw();
    }
    wc.addEventListener("input", () => setWindow(Number(wc.value), windowFor(current()).w));
    ww.addEventListener("input", () => setWindow(windowFor(current()).c, Number(ww.value)));
    root.querySelector('[data-action="wl-reset"]').addEventListener("click", () => {
      delete s.wl[current().id]; syncControls(); draw();
    });
    root.querySelector('[data-action="zoom-in"]').addEventListener("click", () => { s.zoom = Math.min(16, s.zoom * 1.25); draw(); });
    root.querySelector('[data-action="zoom-out"]').addEventListener("click", () => { s.zoom = Math.max(0.25, s.zoom / 1.25); draw(); });
    root.querySelector('[data-action="reset"]').addEventListener("click", () => { s.zoom = 1; s.panX = s.panY = 0; draw(); });
    viewer.addEventListener("wheel", (e) => {
      e.preventDefault();
      s.zoom = Math.max(0.25, Math.min(16, s.zoom * (e.deltaY < 0 ? 1.1 : 1 / 1.1)));
      draw();
    }, {passive: false});
    let drag = null;
    viewer.addEventListener("contextmenu", (e) => e.preventDefault());
    viewer.addEventListener("pointerdown", (e) => {
      const wl = (e.button === 2 || e.shiftKey) && current().values;
      drag = {x: e.clientX, y: e.clientY, wl: wl, start: wl ? windowFor(current()) : null, panX: s.panX, panY: s.panY};
      viewer.setPointerCapture(e.pointerId);
    });
    viewer.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (drag.wl) {
        const im = current();
        const unit = Math.max(1, im.range[1] - im.range[0]) / 400;
        setWindow(drag.start.c + dy * unit, drag.start.w + dx * unit);
      } else {
        s.panX = drag.panX + dx; s.panY = drag.panY + dy; draw();
      }
    });
    viewer.addEventListener("pointerup", () => { drag = null; });
    viewer.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown" || e.key === "ArrowRight") { go(s.index + 1); e.preventDefault(); }
      if (e.key === "ArrowUp" || e.key === "ArrowLeft") { go(s.index - 1); e.preventDefault(); }
      if (e.key === "h") { s.overlayOn = !s.overlayOn; syncControls(); draw(); }
    });
    root.querySelectorAll("[data-goto-image]").forEach((bar) => {
      bar.addEventListener("click", () => go(images.findIndex((im) => String(im.id) === bar.dataset.gotoImage)));
    });
    if (!init.resizeBound) {
      init.resizeBound = true;
      window.addEventListener("resize", () => init.redraw && init.redraw());
    }
    init.redraw = draw;
    syncControls();
    draw();
  }

  // htmx fires htmx:load for the new results block after each swap (and for the body on page load)
  document.addEventListener("htmx:load", init);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
