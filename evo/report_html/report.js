// evo report: draws the run embedded in #evo-data (see evo/commands/report.py).
// Hand-written SVG, no libraries and no network: the file must work offline, forever.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("evo-data").textContent);
  const SVG_NS = "http://www.w3.org/2000/svg"; // an XML namespace name, never fetched
  const PALETTE = ["#0b6e4f", "#2a9d8f", "#8ab17d", "#e9c46a", "#f4a261", "#e76f51"];
  const SERIES_COLORS = ["#2f6fde", "#e76f51", "#2a9d8f", "#9b5de5", "#f4a261", "#6c757d", "#d62828", "#43aa8b",
    "#577590", "#b5838d"];
  const scoreName = data.run.score_name || "score";

  // ---- small DOM helpers ------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }
  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "—";
    if (digits !== undefined) return x.toFixed(digits);
    const a = Math.abs(x);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return x.toExponential(2);
    if (Number.isInteger(x)) return x.toLocaleString("en-US");
    return a >= 100 ? x.toFixed(1) : x.toPrecision(4);
  }
  function table(headers, rows) {
    const t = el("table", {class: "data"});
    t.append(el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {text: h})))));
    t.append(el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {text: String(c)}))))));
    return t;
  }
  function colorAt(t) { // t in [0, 1]: 0 is the best score
    const x = Math.min(Math.max(t, 0), 1) * (PALETTE.length - 1);
    const i = Math.min(Math.floor(x), PALETTE.length - 2);
    const f = x - i;
    const a = hex(PALETTE[i]), b = hex(PALETTE[i + 1]);
    return "rgb(" + a.map((v, k) => Math.round(v + f * (b[k] - v))).join(",") + ")";
  }
  function hex(h) { return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }

  // ---- header -----------------------------------------------------------------------------
  function header() {
    const s = data.summary;
    document.getElementById("title").textContent = "evo run: " + data.run.problem;
    document.getElementById("subtitle").textContent = data.run.dir + " · " + data.run.state +
      (data.run.stop_reason ? " (" + data.run.stop_reason + ")" : "") + " · seed " + data.run.seed;
    const best = s.best;
    const evals = s.budget.evaluations;
    const cards = [
      ["evaluations", evals.used + (evals.limit !== null ? " / " + evals.limit : "")],
      ["best " + scoreName, best ? fmt(best.score, 4) + "  (#" + best.id + ")" : "—"],
      ["coverage", fmt(100 * s.archive.coverage, 1) + " % (" + s.archive.occupied_cells + " of " + s.archive.cells + ")"],
      ["QD score", fmt(s.archive.qd_score, 2)],
      ["valid", s.counts.valid + s.counts.equivalent + " of " + s.counts.total],
      ["LLM cost", "$" + fmt(s.llm.cost_usd, 4)],
      ["evaluation time saved", fmt(s.dedup.eval_seconds_saved, 1) + " s"],
      ["archive digest", s.archive_digest],
    ];
    const box = document.getElementById("summary");
    for (const [label, value] of cards) {
      box.append(el("div", {class: "card"}, el("div", {class: "label", text: label}), el("div", {class: "value", text: value})));
    }
    document.getElementById("footer").textContent = "Made by `evo report` at " + data.run.generated +
      " from " + data.run.dir + ". Self-contained: no network, no external files.";
  }

  // ---- the archive heatmap ----------------------------------------------------------------
  let selectedRect = null;
  function heatmap() {
    const axes = data.axes;
    const nx = axes[0].bins, ny = axes.length > 1 ? axes[1].bins : 1;
    const grid = new Map(); // projection on the first two axes: the best elite per (i, j)
    for (const e of data.elites) {
      const key = e.cell[0] + "," + (e.cell.length > 1 ? e.cell[1] : 0);
      const cur = grid.get(key);
      if (!cur || e.score < cur.score || (e.score === cur.score && e.id < cur.id)) grid.set(key, e);
    }
    // Colour by the score's rank among the elites: scores often span orders of magnitude
    // (a broken heuristic next to a near-optimal one), and a linear or log scale would
    // paint every good elite the same colour.
    const scores = [...new Set(data.elites.map((e) => e.score).filter((v) => v !== null))].sort((a, b) => a - b);
    const rank = new Map(scores.map((v, k) => [v, scores.length > 1 ? k / (scores.length - 1) : 0]));
    const lo = scores[0], hi = scores[scores.length - 1], mid = scores[Math.floor((scores.length - 1) / 2)];
    const shade = (s) => (s === null ? "#999" : colorAt(rank.get(s)));
    const size = Math.max(14, Math.min(40, Math.floor(520 / Math.max(nx, ny))));
    const left = 64, top = 10, bottom = 46;
    // The colour legend under the grid is wide enough for its three labels, even under a narrow grid.
    const gw = Math.max(240, Math.min(nx * size - 60, 300));
    const width = left + Math.max(nx * size, gw + 60) + 16, height = top + ny * size + bottom + 34;
    const root = svg("svg", {viewBox: "0 0 " + width + " " + height, role: "img"});
    const bestId = data.summary.best ? data.summary.best.id : null;
    for (let i = 0; i < nx; i++) {
      for (let j = 0; j < ny; j++) {
        const x = left + i * size, y = top + (ny - 1 - j) * size;
        const e = grid.get(i + "," + j);
        if (!e) { root.append(svg("rect", {x, y, width: size, height: size, class: "empty"})); continue; }
        const rect = svg("rect", {x, y, width: size, height: size, class: "cell", fill: shade(e.score),
          "data-id": e.id, "data-cell": e.cell.join(",")});
        rect.append(svg("title", {text: "cell (" + e.cell.join(", ") + ") · #" + e.id + " · " + scoreName + " " + fmt(e.score, 4)}));
        rect.addEventListener("click", () => { select(rect); showCandidate(e.id); });
        root.append(rect);
        if (e.id === bestId) {
          root.append(svg("text", {x: x + size / 2, y: y + size / 2 + 4, "text-anchor": "middle",
            "pointer-events": "none", style: "fill:#fff;font-size:" + Math.round(size * 0.45) + "px", text: "★"}));
        }
      }
    }
    // Axis ticks at a few cell edges, with the measure's value there.
    const edge = (a, k) => a.low + (a.high - a.low) * k / a.bins;
    const tickEvery = (n) => Math.max(1, Math.ceil(n / 6));
    for (let k = 0; k <= nx; k += tickEvery(nx)) {
      root.append(svg("text", {x: left + k * size, y: top + ny * size + 14, "text-anchor": "middle", text: String(+edge(axes[0], k).toPrecision(3))}));
    }
    root.append(svg("text", {x: left + nx * size / 2, y: top + ny * size + 30, "text-anchor": "middle",
      style: "font-weight:600", text: axes[0].name}));
    if (axes.length > 1) {
      for (let k = 0; k <= ny; k += tickEvery(ny)) {
        root.append(svg("text", {x: left - 6, y: top + (ny - k) * size + 4, "text-anchor": "end", text: String(+edge(axes[1], k).toPrecision(3))}));
      }
      root.append(svg("text", {x: 14, y: top + ny * size / 2, "text-anchor": "middle", style: "font-weight:600",
        transform: "rotate(-90 14 " + (top + ny * size / 2) + ")", text: axes[1].name}));
    }
    // The colour legend: by rank, from the best elite's score to the worst's.
    const gy = top + ny * size + 58;
    const defs = svg("defs");
    const grad = svg("linearGradient", {id: "evo-scale"});
    for (let k = 0; k <= 10; k++) grad.append(svg("stop", {offset: (k * 10) + "%", "stop-color": colorAt(k / 10)}));
    defs.append(grad);
    root.append(defs);
    root.append(svg("rect", {x: left, y: gy, width: gw, height: 8, fill: "url(#evo-scale)"}));
    root.append(svg("text", {x: left, y: gy - 3, text: fmt(lo, 4) + " best"}));
    root.append(svg("text", {x: left + gw / 2, y: gy - 3, "text-anchor": "middle", text: fmt(mid, 4)}));
    root.append(svg("text", {x: left + gw, y: gy - 3, "text-anchor": "end", text: fmt(hi, 4)}));
    root.append(svg("text", {x: left + gw + 8, y: gy + 8, text: "by rank"}));
    document.getElementById("heatmap").append(root);
    let caption = data.elites.length + " elites in " + data.summary.archive.cells + " cells; colour: the elite's " +
      scoreName + " by rank (lower is better, green is best), ★ the best. Click a cell.";
    if (axes.length > 2) caption += " Shown on the first two of " + axes.length + " measures: the best elite of each column.";
    if (axes.length === 1) caption += " One measure: one row.";
    document.getElementById("archive-caption").textContent = caption;
  }
  function select(rect) {
    if (selectedRect) selectedRect.classList.remove("selected");
    selectedRect = rect;
    rect.classList.add("selected");
  }

  // ---- one candidate: thought, code, lineage ----------------------------------------------
  function lineageOf(id) {
    const chain = [];
    const seen = new Set();
    let d = data.details[id];
    while (d && !seen.has(d.id)) {
      chain.push(d);
      seen.add(d.id);
      d = d.parents.length ? data.details[d.parents[0]] : undefined;
    }
    return chain;
  }
  function showCandidate(id) {
    const d = data.details[id];
    const box = document.getElementById("detail");
    box.replaceChildren();
    box.setAttribute("data-id", String(id));
    box.append(el("h3", {text: "#" + d.id + " · " + scoreName + " " + fmt(d.score, 4)}));
    box.append(el("div", {class: "thought", text: d.thought || "(no thought)"}));
    const facts = el("dl");
    const add = (k, v) => facts.append(el("dt", {text: k}), el("dd", {text: v}));
    add("status", d.status + (d.equivalent_to !== null ? " (equivalent to #" + d.equivalent_to + ")" : ""));
    add("operator", d.operator + (d.parents.length ? " from " + d.parents.map((p) => "#" + p).join(", ") : ""));
    if (d.measures) add("measures", data.axes.map((a, k) => a.name + " " + fmt(d.measures[k])).join(", "));
    if (d.cell) add("cell", "(" + d.cell.join(", ") + ")");
    box.append(facts);
    if (d.error) box.append(el("div", {class: "error", text: d.error}));
    const pre = el("pre", {class: "code", id: "detail-code"});
    highlight(d.code, pre);
    box.append(pre);
    box.append(el("strong", {text: "Lineage"}), el("span", {class: "muted", text: " (first parent at each step)"}));
    const list = el("ol", {class: "lineage"});
    for (const step of lineageOf(id)) {
      const link = el("a", {text: "#" + step.id, "data-id": step.id});
      link.addEventListener("click", () => showCandidate(step.id));
      const others = step.parents.slice(1).map((p) => "#" + p).join(" ");
      const how = step.parents.length ? " ← " + step.operator + " of #" + step.parents[0] + (others ? " [+" + others + "]" : "")
        : " " + step.operator;
      list.append(el("li", {class: step.id === id ? "current" : ""}, link, " " + fmt(step.score, 4) + how));
    }
    box.append(list);
  }
  const KEYWORDS = new Set(("False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield").split(" "));
  const BUILTINS = new Set("np abs min max len range sum float int bool enumerate zip sorted list dict tuple set round pow".split(" "));
  const TOKEN = /("""[\s\S]*?"""|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|#[^\n]*|\b\d+\.?\d*(?:[eE][+-]?\d+)?\b|\.\d+\b|[A-Za-z_]\w*)/g;
  function highlight(code, pre) { // text nodes and spans only: code is never parsed as HTML
    let last = 0, m;
    TOKEN.lastIndex = 0;
    while ((m = TOKEN.exec(code)) !== null) {
      if (m.index > last) pre.append(code.slice(last, m.index));
      const t = m[0];
      let cls = null;
      if (t[0] === "#") cls = "com";
      else if (t[0] === "\"" || t[0] === "'") cls = "str";
      else if (/^[\d.]/.test(t)) cls = "num";
      else if (KEYWORDS.has(t)) cls = "kw";
      else if (BUILTINS.has(t)) cls = "bi";
      pre.append(cls ? el("span", {class: cls, text: t}) : t);
      last = TOKEN.lastIndex;
    }
    if (last < code.length) pre.append(code.slice(last));
  }

  // ---- line charts --------------------------------------------------------------------------
  function tickText(v, step) { // as many decimals as the tick step needs, no more
    const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
    return Math.abs(v) >= 1e6 ? v.toExponential(1) : v.toLocaleString("en-US", {minimumFractionDigits: decimals, maximumFractionDigits: decimals});
  }
  function niceTicks(lo, hi, n) {
    const span = hi - lo;
    const raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => span / s <= n) || 10 * mag;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return ticks;
  }
  function lineChart(id, series, opts) {
    opts = opts || {};
    const W = 480, H = 240, L = 58, R = 12, T = 10, B = 28;
    const xs = series.flatMap((s) => s.xs), ys = series.flatMap((s) => s.ys).filter((v) => v !== null && Number.isFinite(v));
    for (const h of opts.hlines || []) ys.push(h.y);
    const root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img"});
    const host = document.getElementById(id);
    if (!ys.length) { host.append(el("p", {class: "muted", text: "no data yet"})); return; }
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0 && opts.zero && y0 === 0) y1 = 1; // all zero (a free local model's cost, say)
    else if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
    const pad = (y1 - y0) * 0.06; y0 = opts.zero && y0 >= 0 && y0 - pad < 0 ? 0 : y0 - pad; y1 += pad;
    if (opts.zero && y0 > 0 && y0 < (y1 - y0)) y0 = 0;
    const px = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), py = (y) => T + (y1 - y) / (y1 - y0) * (H - T - B);
    const yTicks = niceTicks(y0, y1, 5), xTicks = niceTicks(x0, x1, 6);
    const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1, xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : 1;
    for (const v of yTicks) {
      root.append(svg("line", {x1: L, x2: W - R, y1: py(v), y2: py(v), class: "grid"}));
      root.append(svg("text", {x: L - 5, y: py(v) + 4, "text-anchor": "end", text: tickText(v, yStep)}));
    }
    for (const v of xTicks) {
      root.append(svg("text", {x: px(v), y: H - B + 15, "text-anchor": "middle", text: tickText(v, xStep)}));
    }
    root.append(svg("line", {x1: L, x2: L, y1: T, y2: H - B, class: "axis"}));
    root.append(svg("line", {x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis"}));
    root.append(svg("text", {x: W - R, y: H - 2, "text-anchor": "end", text: "evaluations"}));
    for (const h of opts.hlines || []) {
      root.append(svg("line", {x1: L, x2: W - R, y1: py(h.y), y2: py(h.y), stroke: h.color, "stroke-dasharray": "4 3"},
        svg("title", {text: h.name + " " + fmt(h.y, 4)})));
    }
    series.forEach((s) => {
      let d = "", open = false, prev = null;
      for (let k = 0; k < s.xs.length; k++) {
        const y = s.ys[k];
        if (y === null || !Number.isFinite(y)) { open = false; continue; }
        if (!open) d += "M" + px(s.xs[k]).toFixed(1) + " " + py(y).toFixed(1);
        else if (opts.step) d += "H" + px(s.xs[k]).toFixed(1) + "V" + py(y).toFixed(1);
        else d += "L" + px(s.xs[k]).toFixed(1) + " " + py(y).toFixed(1);
        open = true; prev = y;
      }
      if (opts.step && open) d += "H" + px(x1).toFixed(1);
      if (!d) return; // a series with no value yet (an operator never pulled): no line
      root.append(svg("path", {d, fill: "none", stroke: s.color, "stroke-width": 1.8, "data-series": s.name},
        svg("title", {text: s.name + (prev !== null ? ": " + fmt(prev, 4) + " at the end" : "")})));
    });
    host.append(root);
    const named = series.length > 1 || (opts.hlines || []).length;
    if (named) {
      const legend = el("div", {class: "legend"});
      for (const s of [...series, ...(opts.hlines || [])]) {
        legend.append(el("span", {style: "--swatch:" + s.color, text: s.name}));
      }
      host.append(legend);
    }
  }

  // ---- sections -----------------------------------------------------------------------------
  function progress() {
    const c = data.series, xs = c.id.map((i) => i + 1);
    const trainRow = (data.summary.scores.sets || []).find((r) => r.split === "train");
    const hlines = [];
    if (trainRow) {
      Object.entries(trainRow.baselines).forEach(([name, cell], k) => {
        if (cell.score !== null) hlines.push({name: name + " (baseline)", y: cell.score, color: SERIES_COLORS[(k + 3) % SERIES_COLORS.length]});
      });
    }
    lineChart("chart-best", [{name: "best " + scoreName, color: SERIES_COLORS[0], xs, ys: c.best}], {step: true, hlines});
    lineChart("chart-qd", [{name: "QD score", color: SERIES_COLORS[2], xs, ys: c.qd}], {step: true});
    lineChart("chart-coverage", [{name: "coverage", color: SERIES_COLORS[3], xs, ys: c.coverage.map((v) => 100 * v)}], {step: true, zero: true});
  }
  function bandit() {
    const c = data.series, arms = Object.keys(data.summary.bandit.arms);
    const pulls = {}, sums = {}, pullSeries = {}, meanSeries = {};
    for (const a of arms) { pulls[a] = 0; sums[a] = 0; pullSeries[a] = []; meanSeries[a] = []; }
    const xs = c.id.map((i) => i + 1);
    for (let k = 0; k < c.id.length; k++) {
      const arm = c.arm[k];
      if (arm in pulls) { pulls[arm] += 1; sums[arm] += c.reward[k]; }
      for (const a of arms) {
        pullSeries[a].push(pulls[a]);
        meanSeries[a].push(pulls[a] ? sums[a] / pulls[a] : null);
      }
    }
    const color = (k) => SERIES_COLORS[k % SERIES_COLORS.length];
    lineChart("chart-pulls", arms.map((a, k) => ({name: a, color: color(k), xs, ys: pullSeries[a]})), {zero: true});
    lineChart("chart-reward", arms.map((a, k) => ({name: a, color: color(k), xs, ys: meanSeries[a]})), {});
    const b = data.summary.bandit;
    document.getElementById("bandit-table").append(
      table(["arm", "pulls", "mean reward", "probability"],
        arms.map((a) => [a, b.arms[a].pulls, fmt(b.arms[a].mean_reward, 3), fmt(b.arms[a].probability, 3)])),
      el("p", {class: "muted", text: "policy: " + b.policy + ". The chart shows each arm's plain mean reward;" +
        " the table shows the bandit's own estimate, which a discounting policy may weigh differently."}));
  }
  function llm() {
    const c = data.series, xs = c.id.map((i) => i + 1);
    let cost = 0, tokens = 0;
    const costs = c.cost.map((v) => (cost += v)), toks = c.tokens.map((v) => (tokens += v));
    lineChart("chart-cost", [{name: "cost", color: SERIES_COLORS[1], xs, ys: costs}], {zero: true});
    lineChart("chart-tokens", [{name: "tokens", color: SERIES_COLORS[4], xs, ys: toks}], {zero: true});
    const s = data.summary.llm;
    const rows = [["calls", s.calls], ["prompt tokens", fmt(s.prompt_tokens)], ["completion tokens", fmt(s.completion_tokens)],
      ["cost (USD)", fmt(s.cost_usd, 4)], ["time in calls (s)", fmt(s.seconds, 1)], ["failed candidates", s.failed_candidates]];
    document.getElementById("llm-table").append(table(["", "value"], rows));
    const pct = (x) => (x === null ? "—" : (100 * x).toFixed(0) + "%");
    document.getElementById("models-table").append(
      table(["model", "candidates", "requests", "tokens", "cost (USD)", "time (s)", "valid", "improvements", "best"],
        Object.entries(s.models).map(([name, m]) => [name, m.candidates, m.requests,
          fmt(m.prompt_tokens + m.completion_tokens), fmt(m.cost_usd, 4), fmt(m.seconds, 1), pct(m.valid_share),
          m.improvements, m.best_id === null ? "—" : fmt(m.best_score, 4) + " (#" + m.best_id + ")"])),
      el("p", {class: "muted", text: "Requests, tokens, cost and time count every answer paid for, reflections" +
        " included; valid, improvements (entries into the archive) and best count the model's candidates."}));
  }
  function dedupAndStatus() {
    const counts = data.summary.counts.by_status;
    const total = Object.values(counts).reduce((a, b) => a + b, 0) || 1;
    const STATUS_COLORS = {ok: "#2a9d8f", equivalent: "#8ecae6", invalid: "#e9c46a", timeout: "#f4a261", memory: "#e76f51",
      crashed: "#d62828", forbidden: "#9d0208", error: "#c1121f", llm_failed: "#6c757d"};
    const order = Object.keys(STATUS_COLORS);
    const names = [...order.filter((k) => k in counts), ...Object.keys(counts).filter((k) => !order.includes(k))];
    const W = 480, H = 40;
    const root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img"});
    let x = 0;
    const legend = el("div", {class: "legend"});
    names.forEach((name, k) => {
      const w = counts[name] / total * W;
      const color = STATUS_COLORS[name] || SERIES_COLORS[k % SERIES_COLORS.length];
      root.append(svg("rect", {x, y: 4, width: w, height: 28, fill: color}, svg("title", {text: name + ": " + counts[name]})));
      legend.append(el("span", {style: "--swatch:" + color, text: name + " " + counts[name]}));
      x += w;
    });
    document.getElementById("status-bar").append(root, legend);
    const d = data.summary.dedup;
    document.getElementById("dedup-table").append(table(["", "value"], [
      ["syntactic hits (not evaluated)", d.syntactic], ["functional hits (not evaluated)", d.functional],
      ["verified hits (evaluated anyway)", d.verified], ["collisions found", d.collisions],
      ["evaluation seconds saved", fmt(d.eval_seconds_saved, 1)], ["evaluation seconds spent", fmt(d.eval_seconds_spent, 1)],
      ["probe seconds spent", fmt(d.probe_seconds_spent, 1)]]));
  }
  function scores() {
    const s = data.summary.scores, host = document.getElementById("scores");
    if (!s.available) { host.append(el("p", {class: "muted", text: "Not available: " + s.error})); return; }
    const sets = s.sets || [];
    if (!sets.length || s.candidate === null) { host.append(el("p", {class: "muted", text: "No valid candidate yet."})); return; }
    const baselines = Object.keys(sets[0].baselines);
    const cell = (c) => (c.score !== null ? fmt(c.score, 4) : c.source === "missing" ? "—" : (c.error.split(":")[0] || "failed"));
    host.append(table(["set", "instances", "best #" + s.candidate, ...baselines],
      sets.map((r) => [r.name + (r.split === "train" ? " (train)" : ""), r.instances, cell(r.best), ...baselines.map((b) => cell(r.baselines[b]))])));
    if (sets.some((r) => r.best.source === "missing" || Object.values(r.baselines).some((c) => c.source === "missing"))) {
      host.append(el("p", {class: "muted", text: "— : not computed yet; `evo inspect RUN_DIR` computes and caches test-set scores."}));
    }
  }

  header();
  heatmap();
  scores();
  progress();
  bandit();
  llm();
  dedupAndStatus();
})();
