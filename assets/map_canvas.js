// The Map page's scatter: a Streamlit v2 component (studio_ui/map_canvas.py mounts it).
//
// Python sends the points once per figure as Arrow columns (x, y: float32; g: the group's number) and
// the groups' names, colours and counts. This code draws them on a 2-D canvas, and does hover, wheel
// zoom, pan, lasso and box selection in the browser. A selection goes back as one bit per drawn point
// (base64), so its size does not depend on how many points are selected: 12.5 kB for 100k points. The
// rerun a selection causes sends no points (we hold them); should we not, we ask for them (need_points).
// The rows of a selection are listed by the page, which reads their texts by id.

function columns(points) {
  // An Arrow table (the normal case) or, defensively, a plain object of arrays.
  const col = (name) => (points.getChild ? points.getChild(name).toArray() : Float64Array.from(points[name]));
  return { x: col("x"), y: col("y"), g: col("g") };
}

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text, n) {
  const raw = atob(text || "");
  const flags = new Uint8Array(n);
  for (let i = 0; i < n; i++) flags[i] = (raw.charCodeAt(i >> 3) >> (i & 7)) & 1;
  return flags;
}

function inside(poly, x, y) {
  // ray casting, polygon in data coordinates
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

function build(root, data, setStateValue) {
  const pts = columns(data.points);
  const n = pts.x.length;
  const groups = data.groups;
  const height = data.height || 640;
  const wrap = root.querySelector(".bd-wrap");
  const canvas = root.querySelector("canvas.bd-points");
  const overlay = root.querySelector("canvas.bd-overlay");
  const tip = root.querySelector(".bd-tip");
  const info = root.querySelector(".bd-info");
  const legend = root.querySelector(".bd-legend");
  wrap.style.height = height + "px";
  legend.style.maxHeight = height + "px";

  // bounds with a margin, and the drawing order: largest group first, so the tail is drawn on top
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = pts.x[i], y = pts.y[i];
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  const padX = (x1 - x0) * 0.03, padY = (y1 - y0) * 0.03;
  const home = [x0 - padX, x1 + padX, y0 - padY, y1 + padY];
  const starts = new Int32Array(groups.length + 1);
  for (let i = 0; i < n; i++) starts[pts.g[i] + 1]++;
  for (let k = 0; k < groups.length; k++) starts[k + 1] += starts[k];
  const order = new Int32Array(n), fill = starts.slice(0, groups.length);
  for (let i = 0; i < n; i++) order[fill[pts.g[i]]++] = i;

  const st = {
    key: data.key, view: home.slice(), mode: "lasso", selected: new Uint8Array(n), count: 0,
    hidden: new Set(), drag: null, raf: 0, destroyed: false,
  };
  const size = n > 20000 ? 2.5 : n > 2000 ? 3.5 : 5;

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(wrap.clientWidth, 200);
    for (const c of [canvas, overlay]) {
      c.width = Math.round(w * dpr); c.height = Math.round(height * dpr);
      c.style.width = w + "px"; c.style.height = height + "px";
      c.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
    }
    st.w = w;
  }
  const sx = (x) => ((x - st.view[0]) / (st.view[1] - st.view[0])) * st.w;
  const sy = (y) => height - ((y - st.view[2]) / (st.view[3] - st.view[2])) * height;
  const dx = (px) => st.view[0] + (px / st.w) * (st.view[1] - st.view[0]);
  const dy = (py) => st.view[2] + ((height - py) / height) * (st.view[3] - st.view[2]);

  // Each group's colour as one RGBA pixel, blended over the white background at a given opacity
  // (the points are written straight into the canvas's pixels: 100k points in a few ms, where
  // fillRect per point took 70-140 ms and held up the page's reply to a lasso).
  const rgb = groups.map((grp) => {
    const c = document.createElement("canvas").getContext("2d");
    c.fillStyle = grp.colour;   // any CSS colour the browser knows, normalised to #rrggbb
    const hex = c.fillStyle.startsWith("#") ? c.fillStyle : "#4c78a8";
    return [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  });
  const pixel = (k, alpha) => {
    const [r, g, b] = rgb[k].map((v) => Math.round(255 - alpha * (255 - v)));
    return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;   // little-endian RGBA
  };
  const tones = groups.map((grp, k) => [pixel(k, 0.12), pixel(k, 0.95), pixel(k, grp.opacity)]);

  function draw() {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, dpr = W / st.w;
    const img = ctx.createImageData(W, H), buf = new Uint32Array(img.data.buffer);
    const s = Math.max(1, Math.round(size * dpr)), hs = s >> 1;
    const kx = W / (st.view[1] - st.view[0]), ky = H / (st.view[3] - st.view[2]);
    const vx = st.view[0], vy = st.view[3];
    const any = st.count > 0;
    for (const pass of any ? [0, 1] : [2]) {   // with a selection: the rest faded first, the selection on top
      for (let k = 0; k < groups.length; k++) {
        if (st.hidden.has(k)) continue;
        const c = tones[k][pass];
        for (let j = starts[k]; j < starts[k + 1]; j++) {
          const i = order[j];
          if (any && st.selected[i] !== pass) continue;
          const ix = Math.round((pts.x[i] - vx) * kx) - hs, iy = Math.round((vy - pts.y[i]) * ky) - hs;
          if (ix < 0 || iy < 0 || ix + s > W || iy + s > H) continue;
          for (let a = 0; a < s; a++) buf.fill(c, (iy + a) * W + ix, (iy + a) * W + ix + s);
        }
      }
    }
    ctx.putImageData(img, 0, 0);
    info.textContent = any ? `${st.count.toLocaleString()} selected` : `${n.toLocaleString()} points`;
  }
  const redraw = () => { if (!st.raf) st.raf = requestAnimationFrame(() => { st.raf = 0; draw(); }); };

  function send() {
    const bits = new Uint8Array(Math.ceil(n / 8));
    for (let i = 0; i < n; i++) if (st.selected[i]) bits[i >> 3] |= 1 << (i & 7);
    setStateValue("selection", st.count ? { key: st.key, n: st.count, bits: toBase64(bits) } : null);
  }

  function select(test) {
    st.selected.fill(0); st.count = 0;
    const hidden = st.hidden.size > 0;
    for (let i = 0; i < n; i++) {
      if (hidden && st.hidden.has(pts.g[i])) continue;
      if (test(pts.x[i], pts.y[i])) { st.selected[i] = 1; st.count++; }
    }
    send();     // first: the server lists the rows while the browser redraws
    redraw();
  }

  function legendItems() {
    legend.replaceChildren(...groups.map((grp, k) => {
      const item = document.createElement("div");
      item.className = "bd-item" + (st.hidden.has(k) ? " bd-off" : "");
      item.title = "Click to hide or show this group";
      const sw = document.createElement("span");
      sw.className = "bd-swatch"; sw.style.background = grp.colour;
      const label = document.createElement("span");
      label.textContent = `${grp.name} (${grp.n.toLocaleString()})`;
      item.append(sw, label);
      item.onclick = () => { st.hidden.has(k) ? st.hidden.delete(k) : st.hidden.add(k); legendItems(); draw(); };
      return item;
    }));
  }

  function nearest(px, py) {
    let best = -1, bestD = 64;   // within 8 px
    for (let i = 0; i < n; i++) {
      if (st.hidden.has(pts.g[i])) continue;
      const ddx = sx(pts.x[i]) - px, ddy = sy(pts.y[i]) - py, d = ddx * ddx + ddy * ddy;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  function overlayPath(path, close) {
    const o = overlay.getContext("2d");
    o.clearRect(0, 0, st.w, height);
    if (!path || path.length < 2) return;
    o.strokeStyle = "#1f4e8c"; o.fillStyle = "rgba(31, 78, 140, 0.08)"; o.lineWidth = 1.5;
    o.beginPath(); o.moveTo(path[0][0], path[0][1]);
    for (const [px, py] of path.slice(1)) o.lineTo(px, py);
    if (close) o.closePath();
    o.fill(); o.stroke();
  }

  const pos = (e) => { const r = overlay.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  overlay.onpointerdown = (e) => {
    if (e.button !== 0) return;
    overlay.setPointerCapture(e.pointerId);
    tip.style.display = "none";
    st.drag = { start: pos(e), path: [pos(e)], view: st.view.slice() };
  };
  overlay.onpointermove = (e) => {
    const [px, py] = pos(e);
    if (!st.drag) {  // hover: the group of the nearest point, looked up once per frame at most
      st.hover = [px, py];
      if (!st.hoverRaf) st.hoverRaf = requestAnimationFrame(() => {
        st.hoverRaf = 0;
        if (!st.hover || st.drag) return;
        const [hx, hy] = st.hover, i = nearest(hx, hy);
        if (i < 0) { tip.style.display = "none"; return; }
        tip.textContent = groups[pts.g[i]].name;
        tip.style.left = Math.min(hx + 12, st.w - 160) + "px"; tip.style.top = hy + 12 + "px";
        tip.style.display = "block";
      });
      return;
    }
    const d = st.drag;
    if (st.mode === "pan") {
      const v = d.view, kx = (v[1] - v[0]) / st.w, ky = (v[3] - v[2]) / height;
      st.view = [v[0] - (px - d.start[0]) * kx, v[1] - (px - d.start[0]) * kx,
                 v[2] + (py - d.start[1]) * ky, v[3] + (py - d.start[1]) * ky];
      redraw();
    } else if (st.mode === "box") {
      const [ax, ay] = d.start;
      d.path = [[ax, ay], [px, ay], [px, py], [ax, py]];
      overlayPath(d.path, true);
    } else {
      const last = d.path[d.path.length - 1];
      if (Math.abs(last[0] - px) + Math.abs(last[1] - py) >= 3) { d.path.push([px, py]); overlayPath(d.path, false); }
    }
  };
  overlay.onpointerup = (e) => {
    const d = st.drag;
    st.drag = null;
    if (!d || st.mode === "pan") return;
    const [px, py] = pos(e);
    overlayPath(null);
    const moved = Math.abs(px - d.start[0]) + Math.abs(py - d.start[1]);
    if (st.mode === "box" && moved > 4) {
      const xa = dx(Math.min(d.start[0], px)), xb = dx(Math.max(d.start[0], px));
      const ya = dy(Math.max(d.start[1], py)), yb = dy(Math.min(d.start[1], py));
      select((x, y) => x >= xa && x <= xb && y >= ya && y <= yb);
    } else if (st.mode === "lasso" && d.path.length >= 3 && moved + d.path.length > 8) {
      const poly = d.path.map(([a, b]) => [dx(a), dy(b)]);
      let pa = Infinity, pb = -Infinity, qa = Infinity, qb = -Infinity;
      for (const [a, b] of poly) { pa = Math.min(pa, a); pb = Math.max(pb, a); qa = Math.min(qa, b); qb = Math.max(qb, b); }
      select((x, y) => x >= pa && x <= pb && y >= qa && y <= qb && inside(poly, x, y));
    } else if (st.count) {   // a click on the chart clears the selection
      select(() => false);
    }
  };
  overlay.onpointerleave = () => { st.hover = null; tip.style.display = "none"; };
  overlay.onwheel = (e) => {
    e.preventDefault();
    const [px, py] = pos(e), k = Math.exp(Math.sign(e.deltaY) * 0.15);
    const cx = dx(px), cy = dy(py), v = st.view;
    st.view = [cx - (cx - v[0]) * k, cx + (v[1] - cx) * k, cy - (cy - v[2]) * k, cy + (v[3] - cy) * k];
    redraw();
  };
  overlay.ondblclick = () => { st.view = home.slice(); redraw(); };

  for (const b of root.querySelectorAll("button[data-mode]")) {
    b.onclick = () => {
      st.mode = b.dataset.mode;
      for (const o of root.querySelectorAll("button[data-mode]")) o.classList.toggle("bd-on", o === b);
      overlay.style.cursor = st.mode === "pan" ? "grab" : "crosshair";
    };
  }
  root.querySelector("button.bd-home").onclick = () => { st.view = home.slice(); redraw(); };
  root.querySelector("button.bd-clear").onclick = () => select(() => false);

  const observer = new ResizeObserver(() => { if (Math.abs(wrap.clientWidth - st.w) > 1) { resize(); draw(); } });
  observer.observe(wrap);
  st.restore = (sel) => {   // the selection Python holds (after a remount), if it belongs to these points
    if (!sel || sel.key !== st.key) return;
    st.selected = fromBase64(sel.bits, n);
    st.count = st.selected.reduce((a, b) => a + b, 0);
  };
  st.destroy = () => { st.destroyed = true; observer.disconnect(); };
  resize();
  legendItems();
  st.restore(data.selection);
  draw();
  wrap.dataset.ready = "1";   // for tests and benchmarks: the points are on the canvas
  return st;
}

export default function (component) {
  const { data, parentElement, setStateValue, setTriggerValue } = component;
  const root = parentElement;
  if (!data) return;
  const old = root.__bdMap;
  if (old && !old.destroyed && old.key === data.key) return;   // a rerun with the same points: keep view and selection
  if (!data.points) {   // Python sent no points, believing we hold them (we do not, after a remount): ask once
    setTriggerValue("need_points", true);
    return;
  }
  if (old) old.destroy();
  root.__bdMap = build(root, data, setStateValue);
  return () => { if (root.__bdMap) root.__bdMap.destroy(); };
}
