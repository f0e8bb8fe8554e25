// netspec's interactive report: the header, the per-layer table (scopes fold in place, columns
// sort, a filter), the layer graph (ELK layout, shapes on the edges, scopes as boxes) and small
// charts. It draws the rows of `netspec report --format json` as they are: it computes no count.
// Used by the self-contained HTML report and by the editor of `netspec serve`.
/* global ELK */
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";

  function humanCount(value) {
    const units = [["T", 1e12], ["G", 1e9], ["M", 1e6], ["K", 1e3]];
    for (const [unit, scale] of units) if (Math.abs(value) >= scale) return (value / scale).toFixed(2) + unit;
    return String(value);
  }

  function humanBytes(value) {
    const units = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]];
    for (const [unit, scale] of units) if (value >= scale) return (value / scale).toFixed(2) + " " + unit;
    return value + " B";
  }

  const shapeText = (shapes) => shapes.map((s) => s.join("x")).join(" ");

  function fieldText(field) {
    if (!field) return "-";
    const pair = (v) => (v[0] === v[1] ? String(v[0]) : v[0] + "x" + v[1]);
    return pair(field.size) + "/" + pair(field.stride);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child);
    return node;
  }

  // The table's items in execution order: scope headers (data.scopes, each before its first
  // row) and layers, each knowing the headers that enclose it.
  function buildItems(data) {
    const headers = data.scopes.map((row, k) => ({
      kind: "scope", id: "s" + k, row, first: row.before, last: row.before + row.layer_count - 1,
    }));
    const items = [];
    const open = [];
    let next = 0;
    data.layers.forEach((row, index) => {
      while (next < headers.length && headers[next].first === index) {
        const header = headers[next++];
        while (open.length && open[open.length - 1].last < index) open.pop();
        header.ancestors = open.map((h) => h.id);
        items.push(header);
        open.push(header);
      }
      while (open.length && open[open.length - 1].last < index) open.pop();
      items.push({ kind: "layer", id: "l" + index, row, index, ancestors: open.map((h) => h.id) });
    });
    return { items, headers };
  }

  const COLUMNS = [
    { key: "order", label: "#", numeric: true },
    { key: "name", label: "layer" },
    { key: "type", label: "type" },
    { key: "output", label: "output" },
    { key: "params", label: "params", numeric: true },
    { key: "macs", label: "MACs", numeric: true },
    { key: "flops", label: "FLOPs", numeric: true },
    { key: "output_bytes", label: "memory", numeric: true },
    { key: "rf", label: "RF/stride", numeric: true },
  ];

  function sortValue(item, key) {
    const row = item.row;
    if (key === "order") return item.kind === "layer" ? item.index : item.first;
    if (key === "output") return shapeText(row.output_shapes);
    if (key === "rf") return row.receptive_field ? Math.max(...row.receptive_field.size) : -1;
    return row[key];
  }

  // One ELK per worker script: in a Web Worker when the page can load one (netspec serve), else
  // in the page itself (the self-contained report file).
  const engines = new Map();
  function layoutEngine(workerUrl) {
    const key = workerUrl || "";
    if (!engines.has(key)) {
      const Engine = ELK.default || ELK;
      // NOTE: a workerFactory alone: with workerUrl too, the bundled build warns that it lacks the
      // Node.js web-worker package (which it does not need in a browser).
      engines.set(key, workerUrl ? new Engine({ workerFactory: () => new Worker(workerUrl) }) : new Engine());
    }
    return engines.get(key);
  }

  class Report {
    constructor(root, data, options) {
      this.root = root;
      this.data = data;
      this.options = options || {};
      const { items, headers } = buildItems(data);
      this.items = items;
      this.headers = headers;
      this.byId = new Map(items.map((item) => [item.id, item]));
      this.collapsed = new Set();
      this.foldToDepth(this.options.depth || 0);
      this.sort = null; // {key, descending}
      this.filter = "";
      this.selected = null;
      this.chartMetric = "macs";
      this.chartGrouping = "layer";
      this.draw();
    }

    foldToDepth(depth) {
      this.collapsed.clear();
      if (depth > 0) for (const h of this.headers) if (h.row.level === depth - 1) this.collapsed.add(h.id);
    }

    // The outermost collapsed header that hides `item`, or null when nothing folds it away.
    foldedUnder(item) {
      for (const id of item.ancestors) if (this.collapsed.has(id)) return id;
      return null;
    }

    draw() {
      const data = this.data;
      this.root.replaceChildren();
      this.root.classList.add("netspec-report");
      this.root.append(this.drawHeader());
      const toolbar = el("div", { class: "ns-toolbar" });
      this.filterBox = el("input", {
        type: "search", placeholder: "filter layers by name or type", class: "ns-filter",
        oninput: (e) => { this.filter = e.target.value.trim().toLowerCase(); this.drawTable(); },
      });
      const depthSelect = el("select", { class: "ns-depth", title: "fold scopes deeper than this" });
      const maxLevel = Math.max(0, ...this.headers.map((h) => h.row.level + 1));
      depthSelect.append(el("option", { value: "0" }, "all layers"));
      for (let d = 1; d <= maxLevel; d++) depthSelect.append(el("option", { value: String(d) }, "depth " + d));
      depthSelect.value = String(Math.min(this.options.depth || 0, maxLevel));
      depthSelect.addEventListener("change", () => { this.foldToDepth(Number(depthSelect.value)); this.refresh(); });
      toolbar.append(this.filterBox, el("label", {}, "fold: ", depthSelect));
      this.root.append(toolbar);
      this.tableBox = el("div", { class: "ns-table-box" });
      this.graphBox = el("div", { class: "ns-graph-box" });
      this.root.append(el("div", { class: "ns-main" }, this.tableBox, this.graphBox));
      this.chartBox = el("div", { class: "ns-charts" });
      this.root.append(this.chartBox);
      this.drawTable();
      this.drawGraph();
      this.drawCharts();
      return data;
    }

    refresh() {
      this.drawTable();
      this.drawGraph();
    }

    drawHeader() {
      const data = this.data;
      const io = (list) => list.map((t) => t.name + " " + t.shape.join("x")).join(", ");
      const t = data.totals;
      const figures = [
        ["layers", String(t.layers)], ["params", t.params.toLocaleString("en")],
        ["frozen", t.frozen.toLocaleString("en")], ["buffers", t.buffers.toLocaleString("en")],
        ["MACs", t.macs.toLocaleString("en")], ["FLOPs", t.flops.toLocaleString("en")],
        ["weights", humanBytes(t.weight_bytes)], ["activations", humanBytes(t.activation_bytes)],
        ["peak activations", humanBytes(t.peak_activation_bytes)],
      ];
      const totals = el("dl", { class: "ns-totals" });
      for (const [label, value] of figures) totals.append(el("div", {}, el("dt", {}, label), el("dd", { "data-total": label }, value)));
      const conventions = el("ul", { class: "ns-conventions" });
      for (const sentence of data.conventions) conventions.append(el("li", {}, sentence));
      return el("header", { class: "ns-header" },
        el("h1", {}, data.name),
        el("p", { class: "ns-io" }, "input " + io(data.inputs) + " → output " + io(data.outputs) + " · batch " + data.batch + " · " + data.dtype),
        totals,
        el("details", { open: "" }, el("summary", {}, "counting conventions"), conventions));
    }

    visibleItems() {
      const q = this.filter;
      const matches = (item) => !q || item.row.name.toLowerCase().includes(q) || item.row.type.toLowerCase().includes(q);
      // Units: layers shown on their own, and collapsed scopes standing for their layers; a
      // filter looks through every layer, folded or not.
      const units = q
        ? this.items.filter((item) => item.kind === "layer")
        : this.items.filter((item) => !this.foldedUnder(item) && (item.kind === "layer" || this.collapsed.has(item.id)));
      const shown = units.filter(matches);
      if (this.sort) {
        const { key, descending } = this.sort;
        const sign = descending ? -1 : 1;
        return shown.slice().sort((a, b) => {
          const x = sortValue(a, key), y = sortValue(b, key);
          return (x < y ? -1 : x > y ? 1 : sortValue(a, "order") - sortValue(b, "order")) * sign;
        });
      }
      const keep = new Set(shown.map((item) => item.id));
      for (const item of shown) for (const id of item.ancestors) keep.add(id);
      return this.items.filter((item) => keep.has(item.id));
    }

    drawTable() {
      const table = el("table", { class: "ns-table" });
      const head = el("tr");
      for (const column of COLUMNS) {
        const mark = this.sort && this.sort.key === column.key ? (this.sort.descending ? " ▼" : " ▲") : "";
        head.append(el("th", {
          class: column.numeric ? "num" : "", "data-key": column.key, title: "sort by " + column.label,
          onclick: () => this.sortBy(column),
        }, column.label + mark));
      }
      table.append(el("thead", {}, head));
      const body = el("tbody");
      const flat = Boolean(this.sort);
      for (const item of this.visibleItems()) body.append(this.drawRow(item, flat));
      table.append(body);
      this.tableBox.replaceChildren(table);
    }

    sortBy(column) {
      if (column.key === "order") this.sort = null;
      else if (this.sort && this.sort.key === column.key) this.sort = { key: column.key, descending: !this.sort.descending };
      else this.sort = { key: column.key, descending: Boolean(column.numeric) };
      this.drawTable();
    }

    drawRow(item, flat) {
      const row = item.row;
      const isScope = item.kind === "scope";
      const folded = isScope && this.collapsed.has(item.id) && !this.filter;
      const level = flat ? 0 : item.ancestors.length;
      const toggle = isScope
        ? el("button", { class: "ns-fold", title: folded ? "unfold" : "fold", onclick: (e) => { e.stopPropagation(); this.toggle(item.id); } }, folded ? "▸" : "▾")
        : el("span", { class: "ns-fold-space" });
      const count = (v) => (v ? humanCount(v) : "-");
      const order = isScope ? "" : String(item.index + 1);
      const type = folded ? row.type + " (" + row.layer_count + " layers)" : row.type;
      const tr = el("tr", {
        class: isScope ? (folded ? "ns-scope ns-folded" : "ns-scope") : "ns-layer",
        "data-name": row.name, "data-id": item.id,
        title: row.source ? "defined at " + row.source : "",
        onclick: () => this.select(item.id, "table"),
      },
      el("td", { class: "num ns-order" }, order),
      el("td", { class: "ns-name", style: "padding-left:" + (0.4 + 1.1 * level) + "em" }, toggle, row.name),
      el("td", {}, type),
      el("td", { class: "ns-shape" }, shapeText(row.output_shapes)),
      el("td", { class: "num", title: row.params.toLocaleString("en") }, count(row.params)),
      el("td", { class: "num", title: row.macs.toLocaleString("en") }, count(row.macs)),
      el("td", { class: "num", title: row.flops.toLocaleString("en") }, count(row.flops)),
      el("td", { class: "num", title: row.output_bytes.toLocaleString("en") + " bytes" }, humanBytes(row.output_bytes)),
      el("td", { class: "num" }, fieldText(row.receptive_field)));
      if (this.selected === item.id) tr.classList.add("ns-selected");
      return tr;
    }

    toggle(id) {
      if (this.collapsed.has(id)) this.collapsed.delete(id);
      else this.collapsed.add(id);
      this.refresh();
    }

    // Select a table item (layer or scope) and its graph node; from the graph, unfold what hides it.
    select(id, from) {
      let item = this.byId.get(id);
      if (!item) return;
      if (from === "graph" && item.kind === "layer" && this.foldedUnder(item)) {
        for (const a of item.ancestors) this.collapsed.delete(a);
        this.refresh();
      }
      this.selected = id;
      for (const tr of this.tableBox.querySelectorAll("tr.ns-selected")) tr.classList.remove("ns-selected");
      const tr = this.tableBox.querySelector('tr[data-id="' + id + '"]');
      if (tr) {
        tr.classList.add("ns-selected");
        if (from === "graph") tr.scrollIntoView({ block: "center" });
      }
      for (const node of this.graphBox.querySelectorAll(".ns-selected")) node.classList.remove("ns-selected");
      const target = this.graphBox.querySelector('[data-id="' + id + '"]') ||
        (item.kind === "layer" && this.foldedUnder(item) && this.graphBox.querySelector('[data-id="' + this.foldedUnder(item) + '"]'));
      if (target) {
        target.classList.add("ns-selected");
        if (from === "table") target.scrollIntoView({ block: "center", inline: "center" });
      }
      if (this.options.onSelect) this.options.onSelect(item.row);
    }

    // The graph of what the table shows unfolded: one node per layer (or per folded scope), one
    // edge per tensor read, labelled with its shape; open scopes are boxes around their layers.
    // ELK lays it out asynchronously; the box gets data-ready="true" once the picture is drawn.
    drawGraph() {
      const data = this.data;
      const generation = (this.graphGeneration = (this.graphGeneration || 0) + 1);
      this.graphBox.dataset.ready = "false";
      const width = (texts) => Math.max(70, 7 * Math.max(...texts.map((t) => t.length)) + 20);
      const root = {
        id: "root", children: [], edges: [],
        layoutOptions: {
          "elk.algorithm": "layered", "elk.direction": "DOWN",
          "elk.hierarchyHandling": "INCLUDE_CHILDREN",
          "elk.layered.spacing.nodeNodeBetweenLayers": "22", "elk.spacing.nodeNode": "16",
          "elk.spacing.edgeLabel": "2", "elk.edgeLabels.inline": "true",
          "elk.json.edgeCoords": "ROOT", "elk.json.shapeCoords": "ROOT", "elk.padding": "[top=10,left=10,bottom=10,right=10]",
        },
      };
      const shapes = new Map();
      const add = (parentId, node) => (parentId ? shapes.get(parentId).children : root.children).push(node);
      const producer = new Map();
      for (const input of data.inputs) {
        const id = "in:" + input.name;
        producer.set(input.name, { id, shape: input.shape });
        const sub = input.shape.join("x");
        add(null, { id, kind: "input", label: input.name, sub, width: width([input.name, sub]), height: 36 });
      }
      const represent = (item) => this.foldedUnder(item) || item.id;
      for (const item of this.items) {
        if (item.kind !== "scope" || this.foldedUnder(item)) continue;
        const parent = item.ancestors[item.ancestors.length - 1] || null;
        let node;
        if (this.collapsed.has(item.id)) {
          const sub = item.row.type + " ×" + item.row.layer_count;
          node = { id: item.id, kind: "folded", label: item.row.name, sub, width: width([item.row.name, sub]), height: 38 };
        } else {
          node = { id: item.id, kind: "cluster", label: item.row.name, children: [], layoutOptions: { "elk.padding": "[top=20,left=8,bottom=8,right=8]" } };
        }
        shapes.set(item.id, node);
        add(parent, node);
      }
      for (const item of this.items) {
        if (item.kind !== "layer") continue;
        item.row.outputs.forEach((t, k) => producer.set(t, { id: represent(item), shape: item.row.output_shapes[k] }));
        if (this.foldedUnder(item)) continue;
        const row = item.row;
        add(item.ancestors[item.ancestors.length - 1] || null,
          { id: item.id, kind: "layer", label: row.name, sub: row.type, width: width([row.name, row.type]), height: 36 });
      }
      const seen = new Set();
      for (const item of this.items) {
        if (item.kind !== "layer") continue;
        const to = represent(item);
        for (const t of item.row.inputs) {
          const from = producer.get(t);
          if (!from || from.id === to || seen.has(from.id + ">" + to)) continue;
          seen.add(from.id + ">" + to);
          const text = from.shape.join("x");
          root.edges.push({ id: "e" + root.edges.length, sources: [from.id], targets: [to], labels: [{ text, width: 6 * text.length + 4, height: 11 }] });
        }
      }
      layoutEngine(this.options.layoutWorkerUrl).layout(root).then((laid) => {
        if (generation === this.graphGeneration) this.paintGraph(laid);
      }, (problem) => {
        this.graphBox.replaceChildren(el("p", { class: "ns-graph-error" }, "graph layout failed: " + problem));
        this.graphBox.dataset.ready = "true";
      });
    }

    paintGraph(laid) {
      const W = Math.ceil(laid.width), H = Math.ceil(laid.height);
      const root = svg("svg", { class: "ns-graph", width: W, height: H, viewBox: "0 0 " + W + " " + H });
      root.append(svg("defs", {}, svg("marker", { id: "ns-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z" }))));
      const clusters = svg("g", { class: "ns-clusters" });
      const edges = svg("g", { class: "ns-edges" });
      const nodes = svg("g", { class: "ns-nodes" });
      const visit = (node) => {
        for (const n of node.children || []) {
          if (n.kind === "cluster") {
            const group = svg("g", { class: "ns-cluster", "data-id": n.id }, svg("title", {}, n.label));
            group.append(svg("rect", { x: n.x, y: n.y, width: n.width, height: n.height, rx: 6 }));
            group.append(svg("text", { x: n.x + 6, y: n.y + 13 }, n.label));
            group.addEventListener("click", (e) => { e.stopPropagation(); this.select(n.id, "graph"); });
            clusters.append(group);
            visit(n);
            continue;
          }
          const cls = { layer: "ns-node node-layer", input: "ns-node node-input", folded: "ns-node node-scope" }[n.kind];
          const group = svg("g", { class: cls, "data-id": n.id, transform: "translate(" + n.x + "," + n.y + ")" });
          group.append(svg("title", {}, n.label + " (" + n.sub + ")"));
          group.append(svg("rect", { width: n.width, height: n.height, rx: 4 }));
          group.append(svg("text", { x: n.width / 2, y: 15, class: "ns-node-name" }, n.label));
          group.append(svg("text", { x: n.width / 2, y: 29, class: "ns-node-type" }, n.sub));
          if (n.kind !== "input") group.addEventListener("click", () => this.select(n.id, "graph"));
          nodes.append(group);
        }
      };
      visit(laid);
      const allEdges = [];
      const collect = (node) => { allEdges.push(...(node.edges || [])); for (const n of node.children || []) collect(n); };
      collect(laid);
      for (const edge of allEdges) {
        for (const section of edge.sections || []) {
          const points = [section.startPoint, ...(section.bendPoints || []), section.endPoint];
          const d = points.map((p, i) => (i ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1)).join(" ");
          edges.append(svg("path", { d, "marker-end": "url(#ns-arrow)" }));
        }
        for (const label of edge.labels || []) {
          edges.append(svg("text", { x: label.x + label.width / 2, y: label.y + label.height - 2, class: "ns-edge-label" }, label.text));
        }
      }
      root.append(clusters, edges, nodes);
      this.graphBox.replaceChildren(root);
      if (this.selected) {
        const target = this.graphBox.querySelector('[data-id="' + this.selected + '"]');
        if (target) target.classList.add("ns-selected");
      }
      this.graphBox.dataset.ready = "true";
    }

    drawCharts() {
      const metricSelect = el("select", { class: "ns-chart-metric" });
      for (const [key, label] of [["macs", "MACs"], ["params", "params"], ["output_bytes", "output memory"]]) metricSelect.append(el("option", { value: key }, label));
      metricSelect.value = this.chartMetric;
      const groupSelect = el("select", { class: "ns-chart-grouping" });
      for (const [key, label] of [["layer", "by layer"], ["scope", "by top-level scope"]]) groupSelect.append(el("option", { value: key }, label));
      groupSelect.value = this.chartGrouping;
      const bars = el("div", { class: "ns-chart" });
      const redraw = () => { this.chartMetric = metricSelect.value; this.chartGrouping = groupSelect.value; bars.replaceChildren(this.barChart()); };
      metricSelect.addEventListener("change", redraw);
      groupSelect.addEventListener("change", redraw);
      redraw();
      const rf = el("div", { class: "ns-chart" }, this.fieldChart());
      this.chartBox.replaceChildren(
        el("section", {}, el("h2", {}, "cost ", metricSelect, " ", groupSelect), bars),
        el("section", {}, el("h2", {}, "receptive field along the network"), rf));
    }

    // Top-level units: level-0 scopes (their summed rows) and the layers outside any scope.
    chartUnits() {
      if (this.chartGrouping === "layer") return this.items.filter((i) => i.kind === "layer");
      return this.items.filter((i) => i.ancestors.length === 0);
    }

    barChart() {
      const key = this.chartMetric;
      const units = this.chartUnits();
      const values = units.map((u) => u.row[key]);
      const max = Math.max(1, ...values);
      const W = 900, H = 180, left = 56, bottom = 18;
      const step = (W - left - 4) / Math.max(1, units.length);
      const chart = svg("svg", { class: "ns-bars", viewBox: "0 0 " + W + " " + H, width: "100%" });
      const format = key === "output_bytes" ? humanBytes : humanCount;
      for (const frac of [0, 0.5, 1]) {
        const y = H - bottom - frac * (H - bottom - 8);
        chart.append(svg("line", { x1: left, x2: W, y1: y, y2: y, class: "ns-grid" }));
        chart.append(svg("text", { x: left - 4, y: y + 4, class: "ns-axis", "text-anchor": "end" }, format(Math.round(max * frac))));
      }
      units.forEach((u, i) => {
        const h = (values[i] / max) * (H - bottom - 8);
        const bar = svg("rect", { x: left + i * step + 0.5, y: H - bottom - h, width: Math.max(1, step - 1), height: h, "data-id": u.id, class: "ns-bar" },
          svg("title", {}, u.row.name + ": " + format(values[i])));
        bar.addEventListener("click", () => this.select(u.id, "graph"));
        chart.append(bar);
      });
      chart.append(svg("text", { x: left, y: H - 4, class: "ns-axis" }, units.length + (this.chartGrouping === "layer" ? " layers in execution order" : " top-level scopes and layers")));
      return chart;
    }

    fieldChart() {
      const points = this.items.filter((i) => i.kind === "layer" && i.row.receptive_field);
      const W = 900, H = 180, left = 56, bottom = 18;
      const chart = svg("svg", { class: "ns-rf", viewBox: "0 0 " + W + " " + H, width: "100%" });
      if (!points.length) {
        chart.append(svg("text", { x: left, y: H / 2, class: "ns-axis" }, "no layer has a spatial output"));
        return chart;
      }
      const total = this.items.filter((i) => i.kind === "layer").length;
      const size = (p) => Math.max(...p.row.receptive_field.size);
      const max = Math.max(1, ...points.map(size));
      const x = (p) => left + (p.index / Math.max(1, total - 1)) * (W - left - 8);
      const y = (v) => H - bottom - (v / max) * (H - bottom - 8);
      for (const frac of [0, 0.5, 1]) {
        chart.append(svg("line", { x1: left, x2: W, y1: y(max * frac), y2: y(max * frac), class: "ns-grid" }));
        chart.append(svg("text", { x: left - 4, y: y(max * frac) + 4, class: "ns-axis", "text-anchor": "end" }, String(Math.round(max * frac))));
      }
      const d = points.map((p, i) => (i ? "L" : "M") + x(p).toFixed(1) + " " + y(size(p)).toFixed(1)).join(" ");
      chart.append(svg("path", { d, class: "ns-line" }));
      for (const p of points) {
        const dot = svg("circle", { cx: x(p), cy: y(size(p)), r: 2.5, class: "ns-dot", "data-id": p.id },
          svg("title", {}, p.row.name + ": " + fieldText(p.row.receptive_field)));
        dot.addEventListener("click", () => this.select(p.id, "graph"));
        chart.append(dot);
      }
      chart.append(svg("text", { x: left, y: H - 4, class: "ns-axis" }, "receptive field size (pixels, larger axis) by layer"));
      return chart;
    }
  }

  window.NetspecReport = {
    render: (root, data, options) => new Report(root, data, options),
    humanCount, humanBytes, shapeText, fieldText,
  };
})();
