// The page of `netspec serve`: a CodeMirror editor holding a spec; as you type the server
// compiles it and the diagnostics appear at their line and column, and the report (table,
// totals, graph, charts: report.js) follows; a compare view; the compiled ONNX model. An
// uploaded ONNX model is sent as its bytes: its report is shown, and the editor holds, read-only,
// the spec `netspec convert` would write for it.
/* global NetspecEditor, NetspecReport */
(function () {
  "use strict";

  const { EditorView, basicSetup, EditorState, linter, lintGutter, StreamLanguage } = NetspecEditor;
  const $ = (id) => document.getElementById(id);
  const LINT_DELAY_MS = 150;

  // Highlighting for .net specs and Caffe prototxt (both are `key: value` and `Type name { }`).
  const specLanguage = StreamLanguage.define({
    token(stream) {
      if (stream.eatSpace()) return null;
      if (stream.match("#")) { stream.skipToEnd(); return "comment"; }
      if (stream.match(/^"(?:[^"\\]|\\.)*"?/) || stream.match(/^'(?:[^'\\]|\\.)*'?/)) return "string";
      if (stream.match(/^-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?/)) return "number";
      if (stream.match(/^(?:template|repeat|as|if|else|let|include|input|true|false|and|or|not)\b/)) return "keyword";
      if (stream.match(/^[A-Za-z_][\w.]*(?=\s*:)/)) return "propertyName";
      if (stream.match(/^[A-Z][A-Za-z0-9_]*/)) return "typeName";
      if (stream.match(/^[a-z_][\w.]*/)) return "variableName";
      stream.next();
      return null;
    },
  });

  const state = { filename: "untitled.net", reportKey: null, report: null, diagnostics: [], zoo: [], onnx: null };
  const MAX_MODEL_BYTES = Number(document.body.dataset.maxModelBytes);
  window.netspecEditor = state;

  async function post(path, body) {
    const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if ((response.headers.get("Content-Type") || "").startsWith("application/json")) return { response, data: await response.json() };
    return { response, data: null };
  }

  const batch = () => Math.max(1, Math.min(4096, parseInt($("batch").value, 10) || 1));

  function setStatus(element, text, kind) {
    element.textContent = text;
    element.className = "ns-status " + (kind || "");
  }

  // A server diagnostic as a CodeMirror one: its span in the document (the whole line when it
  // points at another file, such as a zoo library), its message with hint and notes.
  function editorDiagnostic(doc, d) {
    const lineNumber = Math.min(Math.max(d.line, 1), doc.lines);
    const line = doc.line(lineNumber);
    let from = line.from, to = line.to;
    if (d.located) {
      from = Math.min(line.from + Math.max(d.column - 1, 0), line.to);
      const endLine = doc.line(Math.min(Math.max(d.end_line, lineNumber), doc.lines));
      to = Math.min(endLine.from + Math.max(d.end_column - 1, 0), endLine.to);
    }
    if (to <= from) to = Math.min(from + 1, doc.length);
    const extra = [d.hint ? "hint: " + d.hint : "", ...d.notes.map((n) => "note: " + n)].filter(Boolean);
    return { from, to, severity: d.severity === "warning" ? "warning" : "error", source: "netspec", message: [d.message, ...extra].join("\n") };
  }

  function showDiagnostics(list) {
    state.diagnostics = list;
    const box = $("diagnostics");
    box.replaceChildren();
    for (const d of list) {
      const item = document.createElement("li");
      item.className = "ns-diagnostic " + d.severity;
      item.dataset.line = String(d.line);
      item.dataset.column = String(d.column);
      const [first, ...rest] = d.text.split("\n");
      const headline = document.createElement("div");
      headline.className = "ns-headline";
      headline.textContent = first;
      const excerpt = document.createElement("pre");
      excerpt.textContent = rest.join("\n");
      item.append(headline, excerpt);
      item.addEventListener("click", () => {
        const line = view.state.doc.line(Math.min(d.line, view.state.doc.lines));
        view.dispatch({ selection: { anchor: Math.min(line.from + d.column - 1, line.to) }, scrollIntoView: true });
        view.focus();
      });
      box.append(item);
    }
  }

  function showReport(data) {
    const key = JSON.stringify(data);
    if (key === state.reportKey) return;
    state.reportKey = key;
    state.report = data;
    const previous = state.view && state.view.data;
    const depthSelect = document.querySelector(".ns-depth");
    const depth = previous && depthSelect ? Number(depthSelect.value) : 0;
    state.view = NetspecReport.render($("report"), data, { depth, layoutWorkerUrl: "/vendor/elk-worker.min.js" });
  }

  // The lint source: the server compiles the text; errors become the editor's diagnostics, a
  // good spec replaces the report (after the diagnostics are shown, so they never wait on it).
  async function check(editor) {
    const doc = editor.state.doc;
    const started = performance.now();
    let reply;
    try {
      reply = await post("/api/report", { text: doc.toString(), filename: state.filename, batch: batch() });
    } catch (problem) {
      setStatus($("status"), "the server does not answer (" + problem + ")", "error");
      return [];
    }
    const data = reply.data || { ok: false, error: "HTTP " + reply.response.status };
    if (data.error) {
      setStatus($("status"), data.error, "error");
      showDiagnostics([]);
      return [];
    }
    showDiagnostics(data.diagnostics);
    const ms = Math.round(performance.now() - started);
    if (data.ok) {
      const t = data.report.totals;
      setStatus($("status"), "✓ " + t.layers + " layers · " + NetspecReport.humanCount(t.params) + " params · " + NetspecReport.humanCount(t.macs) + " MACs · " + ms + " ms", "ok");
      $("report").classList.remove("ns-stale");
      setTimeout(() => showReport(data.report), 0);
    } else {
      const errors = data.diagnostics.filter((d) => d.severity === "error").length;
      setStatus($("status"), errors + (errors === 1 ? " error" : " errors"), "error");
      $("report").classList.add("ns-stale");
    }
    return data.diagnostics.map((d) => editorDiagnostic(doc, d));
  }

  // A spec is edited and checked as you type; an ONNX model's converted spec is only shown.
  const specState = (doc) => EditorState.create({
    doc, extensions: [basicSetup, specLanguage, lintGutter(), linter(check, { delay: LINT_DELAY_MS })],
  });
  const readOnlyState = (doc) => EditorState.create({
    doc, extensions: [basicSetup, specLanguage, EditorState.readOnly.of(true), EditorView.editable.of(false)],
  });
  const view = new EditorView({ parent: $("editor"), state: specState("") });
  state.editor = view;

  function showMode(filename, onnx) {
    state.filename = filename;
    $("filename").textContent = filename;
    $("readonly").hidden = !onnx;
    $("download").disabled = onnx;
    $("download").title = onnx ? "the model is already ONNX" : "compile the spec and download the ONNX model";
    const own = $("compare-editor");
    if (own) { own.disabled = onnx; own.parentElement.title = onnx ? "compare takes specs; this is an ONNX model" : ""; }
  }

  function setDocument(text, filename) {
    if (state.onnx) {
      state.onnx = null;
      view.setState(specState(text));
    } else {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    }
    showMode(filename, false);
  }
  state.setDocument = setDocument;

  // An ONNX model: its bytes go to the server (no bigger than the CLI reads), which reads it in
  // memory. Bad bytes leave the editor as it was, with the error shown.
  async function reportOnnx(name, bytes) {
    setStatus($("status"), "reading " + name + "…", "");
    const query = new URLSearchParams({ name, batch: String(batch()) });
    let response, data;
    try {
      response = await fetch("/api/onnx-report?" + query, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: bytes });
      data = await response.json();
    } catch (problem) {
      setStatus($("status"), name + ": the server gives no report (" + problem + ")", "error");
      return;
    }
    if (data.error) { setStatus($("status"), data.error, "error"); return; }
    showDiagnostics(data.diagnostics);
    if (!data.ok) {
      const first = data.diagnostics[0];
      setStatus($("status"), first ? first.message : name + ": not read", "error");
      $("report").classList.add("ns-stale");
      return;
    }
    state.onnx = { name: data.filename, bytes };
    view.setState(readOnlyState(data.spec));
    showMode(data.filename, true);
    const t = data.report.totals;
    setStatus($("status"), "✓ ONNX · " + t.layers + " layers · " + NetspecReport.humanCount(t.params) + " params · " + NetspecReport.humanCount(t.macs) + " MACs", "ok");
    $("report").classList.remove("ns-stale");
    showReport(data.report);
  }

  async function openOnnx(file) {
    if (file.size > MAX_MODEL_BYTES) {
      setStatus($("status"), file.name + " is " + file.size.toLocaleString("en") + " bytes, more than the " + MAX_MODEL_BYTES.toLocaleString("en") + " an uploaded ONNX model may be", "error");
      return;
    }
    await reportOnnx(file.name, await file.arrayBuffer());
  }

  async function loadZooModel(name) {
    const response = await fetch("/api/zoo/" + encodeURIComponent(name));
    const data = await response.json();
    if (!data.error) {
      setDocument(data.text, data.filename);
      $("zoo").value = name;
    }
  }
  state.loadZooModel = loadZooModel;

  $("zoo").addEventListener("change", (e) => { if (e.target.value) loadZooModel(e.target.value); });
  $("batch").addEventListener("change", () => {
    if (state.onnx) reportOnnx(state.onnx.name, state.onnx.bytes);
    else setDocument(view.state.doc.toString(), state.filename);
  });
  $("upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    $("zoo").value = "";
    if (file.name.toLowerCase().endsWith(".onnx")) {
      await openOnnx(file);
      return;
    }
    setDocument(await file.text(), file.name);
  });
  $("download").addEventListener("click", async () => {
    setStatus($("status"), "compiling…", "");
    const reply = await post("/api/onnx", { text: view.state.doc.toString(), filename: state.filename, batch: batch() });
    if (!reply.response.ok || reply.data) {
      const data = reply.data || {};
      if (data.diagnostics) showDiagnostics(data.diagnostics);
      setStatus($("status"), data.error || "the spec has errors: no model", "error");
      return;
    }
    const blob = await reply.response.blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = state.filename.replace(/\.[^.]*$/, "") + ".onnx";
    document.body.append(link);
    link.click();
    link.remove();
    setStatus($("status"), "✓ " + link.download + " (" + NetspecReport.humanBytes(blob.size) + ")", "ok");
  });

  // The compare view: the editor's spec and ticked zoo models side by side, and the efficiency
  // chart (MACs against parameters, log axes, bubble area by peak activation memory).
  function showTab(name) {
    $("report-view").hidden = name !== "report";
    $("compare-view").hidden = name !== "compare";
    $("tab-report").classList.toggle("ns-active", name === "report");
    $("tab-compare").classList.toggle("ns-active", name === "compare");
  }
  $("tab-report").addEventListener("click", () => showTab("report"));
  $("tab-compare").addEventListener("click", () => showTab("compare"));

  async function runCompare() {
    const models = [];
    if ($("compare-editor").checked && !state.onnx) models.push({ text: view.state.doc.toString(), filename: state.filename });
    const names = [...document.querySelectorAll(".ns-compare-model:checked")].map((box) => box.value);
    for (const name of names) {
      const data = await (await fetch("/api/zoo/" + encodeURIComponent(name))).json();
      models.push({ text: data.text, filename: data.filename });
    }
    if (!models.length) { setStatus($("compare-status"), "tick at least one model", "error"); return; }
    setStatus($("compare-status"), "comparing " + models.length + " models…", "");
    const reply = await post("/api/compare", { models, batch: batch() });
    const data = reply.data || {};
    if (!data.ok) {
      const first = (data.diagnostics || [])[0];
      setStatus($("compare-status"), data.error || (data.model + ": " + (first ? first.text.split("\n")[0] : "error")), "error");
      return;
    }
    setStatus($("compare-status"), "", "ok");
    $("compare-result").replaceChildren(compareTable(data.rows), efficiencyChart(data.rows));
  }
  $("compare-run").addEventListener("click", runCompare);
  state.runCompare = runCompare;

  function compareTable(rows) {
    const { humanCount, humanBytes, fieldText } = NetspecReport;
    const table = document.createElement("table");
    table.className = "ns-compare-table";
    const columns = [
      ["model", (r) => r.name], ["params", (r) => humanCount(r.params)], ["MACs", (r) => humanCount(r.macs)],
      ["FLOPs", (r) => humanCount(r.flops)], ["weights", (r) => humanBytes(r.weight_bytes)],
      ["peak activations", (r) => humanBytes(r.peak_activation_bytes)], ["depth", (r) => String(r.depth)],
      ["RF/stride", (r) => fieldText(r.receptive_field)],
    ];
    const head = table.insertRow();
    for (const [label] of columns) { const th = document.createElement("th"); th.textContent = label; head.append(th); }
    for (const row of rows) {
      const tr = table.insertRow();
      tr.className = "ns-compare-row";
      for (const [, cell] of columns) tr.insertCell().textContent = cell(row);
    }
    return table;
  }

  function efficiencyChart(rows) {
    const NS = "http://www.w3.org/2000/svg";
    const make = (tag, attrs, text) => {
      const node = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (text !== undefined) node.textContent = text;
      return node;
    };
    const W = 720, H = 420, left = 64, bottom = 40, top = 16, right = 24;
    const chart = make("svg", { viewBox: "0 0 " + W + " " + H, width: "100%", class: "ns-efficiency" });
    const usable = rows.filter((r) => r.params > 0 && r.macs > 0);
    const logs = (key) => usable.map((r) => Math.log10(r[key]));
    const span = (values) => { const lo = Math.floor(Math.min(...values) - 0.15), hi = Math.ceil(Math.max(...values) + 0.15); return [lo, Math.max(hi, lo + 1)]; };
    if (!usable.length) return chart;
    const [x0, x1] = span(logs("macs")), [y0, y1] = span(logs("params"));
    const x = (v) => left + ((Math.log10(v) - x0) / (x1 - x0)) * (W - left - right);
    const y = (v) => H - bottom - ((Math.log10(v) - y0) / (y1 - y0)) * (H - bottom - top);
    for (let e = x0; e <= x1; e++) {
      chart.append(make("line", { x1: x(10 ** e), x2: x(10 ** e), y1: top, y2: H - bottom, class: "ns-grid" }));
      chart.append(make("text", { x: x(10 ** e), y: H - bottom + 14, "text-anchor": "middle", class: "ns-axis" }, NetspecReport.humanCount(10 ** e)));
    }
    for (let e = y0; e <= y1; e++) {
      chart.append(make("line", { x1: left, x2: W - right, y1: y(10 ** e), y2: y(10 ** e), class: "ns-grid" }));
      chart.append(make("text", { x: left - 6, y: y(10 ** e) + 4, "text-anchor": "end", class: "ns-axis" }, NetspecReport.humanCount(10 ** e)));
    }
    chart.append(make("text", { x: (W + left) / 2, y: H - 6, "text-anchor": "middle", class: "ns-axis" }, "MACs (log)"));
    chart.append(make("text", { x: 14, y: H / 2, transform: "rotate(-90 14 " + H / 2 + ")", "text-anchor": "middle", class: "ns-axis" }, "params (log)"));
    const peak = Math.max(...usable.map((r) => r.peak_activation_bytes));
    const bubbles = usable.map((row) => ({ row, cx: x(row.macs), cy: y(row.params), r: Math.max(4, 26 * Math.sqrt(row.peak_activation_bytes / peak)) }));
    for (const b of bubbles) chart.append(make("circle", { cx: b.cx, cy: b.cy, r: b.r, class: "ns-bubble" }));
    // Each label goes where it covers no placed label and no other bubble: right, left, above,
    // below its bubble, a little further out each round.
    const placed = bubbles.map((b) => ({ x0: b.cx - b.r, y0: b.cy - b.r, x1: b.cx + b.r, y1: b.cy + b.r, own: b }));
    const overlaps = (box, own) => placed.some((p) => p.own !== own && box.x0 < p.x1 && p.x0 < box.x1 && box.y0 < p.y1 && p.y0 < box.y1);
    for (const b of bubbles) {
      const w = 6.3 * b.row.name.length, h = 12;
      let best = null;
      for (let gap = 3; gap <= 40 && !best; gap += 9) {
        for (const [lx, ly] of [[b.cx + b.r + gap, b.cy - h / 2], [b.cx - b.r - gap - w, b.cy - h / 2], [b.cx - w / 2, b.cy - b.r - gap - h], [b.cx - w / 2, b.cy + b.r + gap]]) {
          const box = { x0: lx, y0: ly, x1: lx + w, y1: ly + h, own: b };
          if (lx >= 0 && lx + w <= W && !overlaps(box, b)) { best = box; break; }
        }
      }
      best = best || { x0: b.cx + b.r + 3, y0: b.cy - h / 2, x1: b.cx + b.r + 3 + w, y1: b.cy + h / 2, own: b };
      placed.push(best);
      chart.append(make("text", { x: best.x0, y: best.y1 - 2, class: "ns-bubble-label" }, b.row.name));
    }
    chart.append(make("text", { x: left + 4, y: top + 10, class: "ns-axis" }, "bubble area: peak activation memory"));
    return chart;
  }

  async function start() {
    const data = await (await fetch("/api/zoo")).json();
    state.zoo = data.models;
    const choices = $("compare-choices");
    const own = document.createElement("label");
    own.innerHTML = '<input type="checkbox" id="compare-editor" checked> <em>the editor\'s spec</em>';
    choices.append(own);
    for (const name of data.models) {
      $("zoo").append(new Option(name, name));
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.className = "ns-compare-model";
      box.value = name;
      label.append(box, " " + name);
      choices.append(label);
    }
    const wanted = new URLSearchParams(location.search).get("model");
    const first = wanted && data.models.includes(wanted) ? wanted : data.models.includes("resnet18") ? "resnet18" : data.models[0];
    if (first) await loadZooModel(first);
  }
  start();
})();
