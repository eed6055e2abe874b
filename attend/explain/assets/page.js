/* attend explain: draws one panel per trace from the JSON in #attend-data. Plain DOM, no framework.
   Each panel keeps a small state (hovered / pinned output token, chosen map, layer, head) and
   render() repaints everything that depends on it, so the pictures never disagree. */
(function () {
  "use strict";
  const traces = JSON.parse(document.getElementById("attend-data").textContent);
  const MAP_NAMES = { cross: "cross attention (output → input)", encoder: "encoder self-attention", decoder: "decoder self-attention" };

  /* A DOM element: attrs sets attributes ("text" sets the text), children are appended. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  }
  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function isSpecial(token) { return /^<\/?[a-z]+>$/.test(token); }
  /* Background intensity = weight, white text once the cell gets dark. */
  function shade(node, weight) {
    node.style.backgroundColor = weight ? `rgba(var(--attn), ${weight})` : "";
    node.classList.toggle("dark", weight > 0.55);
  }
  /* One (queries, keys) matrix: a head of a layer, or the mean over the layer's heads. */
  function matrix(maps, name, layer, head) {
    const heads = maps[name][layer];
    if (head !== "avg") return heads[head];
    return heads[0].map((row, q) => row.map((_, k) => heads.reduce((sum, h) => sum + h[q][k], 0) / heads.length));
  }
  function options(select, items) {
    select.replaceChildren(...items.map(([value, label]) => el("option", { value: value, text: label })));
  }

  function tokenCells(tokens, attr) {
    return tokens.map((token, i) => el("span", { class: `tok ${attr}${isSpecial(token) ? " special" : ""}`, [`data-${attr}`]: i, text: token }));
  }

  /* The best finished hypothesis: the one whose tokens are the output, else the best score. */
  function bestPath(steps, output) {
    const want = JSON.stringify(output);
    let best = null;
    steps.forEach((step, s) => step.ended.forEach((end, m) => {
      const keys = [`${s}:e${m}`], tokens = [];
      for (let q = s - 1, p = end.parent; q >= 0; q--) {
        const beam = steps[q].beams[p];
        tokens.unshift(beam.token);
        keys.push(`${q}:${p}`);
        p = beam.parent;
      }
      const rank = [JSON.stringify(tokens) === want ? 1 : 0, end.score];
      if (!best || rank[0] > best.rank[0] || (rank[0] === best.rank[0] && rank[1] > best.rank[1])) best = { rank, keys };
    }));
    return new Set(best ? best.keys : []);
  }

  /* The beam search as an SVG: one column per step, one box per live beam, dashed boxes ended with </s>. */
  function beamTree(t) {
    const steps = t.beam_steps, rows = Math.max(1, ...steps.map((s) => s.beams.length));
    const extra = Math.max(0, ...steps.map((s) => s.ended.length));
    const colW = 88, rowH = 42, boxW = 68, boxH = 32, top = 22, pad = 6;
    const x = (col) => pad + col * colW, y = (row) => top + row * rowH;
    const best = bestPath(steps, t.tgt_tokens.slice(0, -1));
    let edges = "", nodes = "";
    const short = (token) => (token.length > 8 ? token.slice(0, 7) + "…" : token);
    function node(col, row, token, score, cls, tip) {
      const scoreText = score === null ? "" : `<text class="score" x="${x(col) + boxW / 2}" y="${y(row) + 27}">${score.toFixed(2)}</text>`;
      nodes += `<g class="node ${cls}"><title>${esc(tip)}</title><rect x="${x(col)}" y="${y(row)}" width="${boxW}" height="${boxH}" rx="4"/>` +
        `<text x="${x(col) + boxW / 2}" y="${y(row) + (score === null ? 20 : 14)}">${esc(short(token))}</text>${scoreText}</g>`;
    }
    function edge(fromCol, fromRow, col, row, isBest) {
      const x1 = x(fromCol) + boxW, y1 = y(fromRow) + boxH / 2, x2 = x(col), y2 = y(row) + boxH / 2, xm = (x1 + x2) / 2;
      edges += `<path class="edge${isBest ? " best" : ""}" d="M${x1} ${y1} C${xm} ${y1}, ${xm} ${y2}, ${x2} ${y2}"/>`;
    }
    node(0, 0, "<s>", null, "start best", "start of the output");
    steps.forEach((step, s) => {
      const col = s + 1;
      nodes += `<text class="step-no" x="${x(col) + boxW / 2}" y="12">${col}</text>`;
      step.beams.forEach((beam, r) => {
        const on = best.has(`${s}:${r}`);
        edge(s === 0 ? 0 : col - 1, s === 0 ? 0 : beam.parent, col, r, on);
        node(col, r, beam.token, beam.score, on ? "beam best" : "beam", `step ${col}: “${beam.token}”, log-probability ${beam.score}`);
      });
      step.ended.forEach((end, m) => {
        const on = best.has(`${s}:e${m}`);
        edge(s === 0 ? 0 : col - 1, s === 0 ? 0 : end.parent, col, rows + m, on);
        node(col, rows + m, "</s>", end.score, on ? "ended best" : "ended", `ended at step ${col}, ranking score ${end.score}${on ? " (the output)" : ""}`);
      });
    });
    const width = x(steps.length + 1), height = y(rows + extra);
    return `<svg class="beam-tree" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" ` +
      `aria-label="beam search tree">${edges}${nodes}</svg>`;
  }

  function buildPanel(t) {
    const names = ["cross", "encoder", "decoder"].filter((name) => name in t.maps);
    const T = t.tgt_tokens.length;
    const state = { hover: null, pinned: null, map: names[0] || null, layer: 0, head: "avg" };
    if (state.map) state.layer = t.maps[state.map].length - 1;
    const panel = el("article", { class: "panel" });
    const search = t.beam_size > 1 ? `beam search, beam size ${t.beam_size}` : "greedy search";
    panel.append(el("header", {},
      el("h2", { text: t.label }), el("div", { class: "family", text: t.family }),
      el("dl", { class: "texts" }, el("dt", { text: "input" }), el("dd", { text: t.source }), el("dt", { text: "output" }), el("dd", { text: t.output })),
      el("div", { class: "meta", text: `${search} · log-probability ${t.score.toFixed(3)}` })));

    // Tokens: hover previews, click pins.
    const srcCells = tokenCells(t.src_tokens, "src"), tgtCells = tokenCells(t.tgt_tokens, "tgt");
    srcCells.forEach((cell) => cell.setAttribute("data-weight", ""));
    const lightCaption = el("p", { class: "caption" });
    const tokens = el("section", { class: "token-view" }, el("h3", { text: "Which input each output token looked at" }));
    if (!t.maps.cross) {
      tokens.append(el("p", { class: "note no-attention", text: "This model has no attention: its decoder sees only the encoder's final " +
        "state, never the individual input tokens, so there is nothing to light up. The step-through below still shows its choices." }));
    }
    tokens.append(el("div", { class: "row-label", text: "input" }), el("div", { class: "tokens src-row" }, ...srcCells),
      el("div", { class: "row-label", text: "output" }), el("div", { class: "tokens tgt-row" }, ...tgtCells), lightCaption);
    panel.append(tokens);
    tgtCells.forEach((cell, i) => {
      cell.tabIndex = 0;
      cell.addEventListener("mouseenter", () => { state.hover = i; render(); });
      cell.addEventListener("mouseleave", () => { state.hover = null; render(); });
      cell.addEventListener("click", () => pin(state.pinned === i ? null : i));
      cell.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pin(state.pinned === i ? null : i); } });
    });

    // Heatmap of the chosen map, layer and head.
    const mapSelect = el("select", { class: "map-select", "aria-label": "attention map" });
    const layerSelect = el("select", { class: "layer-select", "aria-label": "layer" });
    const headSelect = el("select", { class: "head-select", "aria-label": "head" });
    const heatWrap = el("div", { class: "heatmap-wrap" });
    let heatRows = [];
    if (names.length) {
      options(mapSelect, names.map((name) => [name, MAP_NAMES[name]]));
      mapSelect.addEventListener("change", () => { state.map = mapSelect.value; state.layer = t.maps[state.map].length - 1; state.head = "avg"; drawHeatmap(); });
      layerSelect.addEventListener("change", () => { state.layer = +layerSelect.value; drawHeatmap(); });
      headSelect.addEventListener("change", () => { state.head = headSelect.value === "avg" ? "avg" : +headSelect.value; drawHeatmap(); });
      panel.append(el("section", { class: "map-view" }, el("h3", { text: "Attention map" }),
        el("div", { class: "controls" }, mapSelect, layerSelect, headSelect), heatWrap,
        el("p", { class: "caption", text: "Each row is a query token, each column a key it can look at; a row's cells sum to 1. Darker means more attention; hover a cell for its weight." })));
    }
    function drawHeatmap() {
      const layers = t.maps[state.map], M = matrix(t.maps, state.map, state.layer, state.head);
      options(layerSelect, layers.map((_, l) => [l, `layer ${l + 1} of ${layers.length}`]));
      options(headSelect, [["avg", "average of heads"], ...layers[0].map((_, h) => [h, `head ${h + 1}`])]);
      mapSelect.value = state.map; layerSelect.value = state.layer; headSelect.value = state.head;
      const rowTokens = state.map === "encoder" ? t.src_tokens : t.tgt_tokens, colTokens = state.map === "decoder" ? t.decoder_inputs : t.src_tokens;  // the decoder reads <s>, then its outputs
      const cell = Math.max(10, Math.min(26, Math.floor(440 / Math.max(rowTokens.length, colTokens.length))));
      const table = el("table", { class: `heatmap map-${state.map}`, style: `--cell: ${cell}px` });
      table.append(el("thead", {}, el("tr", {}, el("th"), ...colTokens.map((tok) => el("th", { class: "col" }, el("span", { text: tok }))))));
      heatRows = M.map((weights, q) => el("tr", {}, el("th", { class: "row", text: rowTokens[q] }), ...weights.map((w, k) => {
        const td = el("td", { "data-weight": w.toFixed(4), title: `${rowTokens[q]} → ${colTokens[k]}: ${w.toFixed(3)}` });
        shade(td, w);
        return td;
      })));
      table.append(el("tbody", {}, ...heatRows));
      heatWrap.replaceChildren(table);
      render();
    }

    // Step-through decoding: the step is the pinned output token (0 = not started).
    const prev = el("button", { type: "button", class: "step-prev", title: "previous step", text: "◀" });
    const next = el("button", { type: "button", class: "step-next", title: "next step", text: "▶" });
    const slider = el("input", { type: "range", class: "step-slider", min: 0, max: T, value: 0, "aria-label": "decoding step" });
    const stepLabel = el("span", { class: "step-label" }), decoded = el("div", { class: "decoded" });
    const altCaption = el("p", { class: "caption" }), altList = el("ol", { class: "alternatives" });
    prev.addEventListener("click", () => pin(state.pinned ? state.pinned - 1 : null));
    next.addEventListener("click", () => pin(state.pinned === null ? 0 : Math.min(T - 1, state.pinned + 1)));
    slider.addEventListener("input", () => pin(+slider.value === 0 ? null : +slider.value - 1));
    panel.append(el("section", { class: "step-view" }, el("h3", { text: "Step-through decoding" }),
      el("div", { class: "controls" }, prev, slider, next, stepLabel), decoded, altCaption, altList));

    if (t.beam_steps.length) {
      const wrap = el("div", { class: "beam-wrap" });
      wrap.innerHTML = beamTree(t);
      panel.append(el("section", { class: "beam-view" }, el("h3", { text: `Beam search (beam size ${t.beam_size})` }), wrap,
        el("p", { class: "caption", text: "Columns are search steps, boxes the live beams with their log-probability; dashed boxes ended with </s> and show the score that ranks them (the log-probability divided by the length penalty when alpha > 0). The orange path is the output." })));
    }

    function pin(i) { state.pinned = i; state.hover = null; render(); }

    /* Repaint everything that depends on the shown output token. */
    function render() {
      const shown = state.hover !== null ? state.hover : state.pinned;
      const onCross = state.map === "cross";
      const layer = onCross ? state.layer : (t.maps.cross || []).length - 1, head = onCross ? state.head : "avg";
      const M = t.maps.cross ? matrix(t.maps, "cross", layer, head) : null;
      tgtCells.forEach((cell, i) => { cell.classList.toggle("selected", i === shown); cell.classList.toggle("pinned", i === state.pinned); });
      srcCells.forEach((cell, j) => {
        const w = M && shown !== null ? M[shown][j] : null;
        cell.setAttribute("data-weight", w === null ? "" : w.toFixed(4));
        cell.title = w === null ? "" : `attention from “${t.tgt_tokens[shown]}”: ${w.toFixed(3)}`;
        shade(cell, w || 0);
      });
      if (M) {
        lightCaption.textContent = `Lit by cross attention, layer ${layer + 1}, ${head === "avg" ? "average of heads" : "head " + (head + 1)}` +
          (shown === null ? ": hover or click an output token." : `: what “${t.tgt_tokens[shown]}” looked at.`);
      }
      const rowsAreOutput = state.map === "cross" || state.map === "decoder";
      heatRows.forEach((row, q) => row.classList.toggle("current", rowsAreOutput && q === shown));

      const step = state.pinned;
      slider.value = step === null ? 0 : step + 1;
      prev.disabled = step === null;
      next.disabled = step === T - 1;
      stepLabel.textContent = step === null ? `step 0 of ${T}` : `step ${step + 1} of ${T}`;
      const shownTokens = t.tgt_tokens.slice(0, step === null ? 0 : step + 1);
      decoded.replaceChildren(...shownTokens.flatMap((tok, i) => [el("span", { class: i === step ? "current" : "done", text: tok }), " "]),
        el("span", { class: "caret", text: step === T - 1 ? "" : "▌" }));
      if (step === null) {
        altCaption.textContent = "Press ▶ to decode the first token.";
        altList.replaceChildren();
        return;
      }
      altCaption.textContent = `Step ${step + 1}: the model's top ${t.alternatives[step].length} next tokens after the ${step} chosen before; ` +
        "the highlighted one is in the output.";
      altList.replaceChildren(...t.alternatives[step].map(([tok, p]) =>
        el("li", { class: tok === t.tgt_tokens[step] ? "alt chosen" : "alt", "data-token": tok, "data-prob": p },
          el("span", { class: "alt-token", text: tok }),
          el("span", { class: "bar" }, el("span", { class: "fill", style: `display:block; width:${(100 * p).toFixed(1)}%` })),
          el("span", { class: "alt-prob", text: `${(100 * p).toFixed(1)}%` }))));
    }

    if (names.length) drawHeatmap(); else render();
    return panel;
  }

  document.querySelector(".panels").replaceChildren(...traces.map(buildPanel));
  document.body.setAttribute("data-ready", "1");
})();
