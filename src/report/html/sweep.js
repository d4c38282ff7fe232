// The sweep report: a parallel-coordinates plot (one axis per swept parameter, prompt,
// model, then the pass rate; one line per sweep point, coloured by pass rate) whose axes
// can be brushed (drag along an axis to keep only the lines crossing that range; click
// the axis to clear it), and the table of points, sortable by any column and filtered by
// the brushes. `#brush=AXIS:LOW:HIGH` in the URL applies a brush on load.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var W = 960, H = 340, TOP = 30, BOTTOM = 40, LEFT = 60, RIGHT = 60;
  var axes = data.params.map(function (p) { return { name: p, get: function (d) { return d.values[p]; } }; });
  var METRIC = data.metric || "pass rate";
  var TRAINING = METRIC !== "pass rate";
  var hasPrompt = data.points.some(function (d) { return d.prompt; });
  var hasModel = data.points.some(function (d) { return d.model; });
  if (hasPrompt) axes.push({ name: "prompt", get: function (d) { return d.prompt; } });
  if (hasModel) axes.push({ name: "model", get: function (d) { return d.model; } });
  // The rate axis spans the rates found, so close results stay apart.
  axes.push({ name: METRIC, get: function (d) { return d.pass_rate; } });
  var rates = data.points.map(function (d) { return d.pass_rate; });
  var rateLo = Math.min.apply(null, rates), rateHi = Math.max.apply(null, rates);
  axes.forEach(function (a, i) {
    var values = data.points.map(a.get);
    a.numeric = values.every(function (v) { return typeof v === "number"; });
    a.x = LEFT + i * (W - LEFT - RIGHT) / Math.max(1, axes.length - 1);
    if (a.numeric) {
      var lo = a.fixed ? a.fixed[0] : Math.min.apply(null, values);
      var hi = a.fixed ? a.fixed[1] : Math.max.apply(null, values);
      a.domain = [lo, hi];
      a.y = function (v) { return hi === lo ? (TOP + H - BOTTOM) / 2 : H - BOTTOM - (v - lo) / (hi - lo) * (H - BOTTOM - TOP); };
    } else {
      a.categories = values.map(String).filter(function (v, k, all) { return all.indexOf(v) === k; });
      a.y = function (v) {
        var k = a.categories.indexOf(String(v)), n = a.categories.length;
        return n === 1 ? (TOP + H - BOTTOM) / 2 : H - BOTTOM - k / (n - 1) * (H - BOTTOM - TOP);
      };
    }
    a.brush = null; // [yLow, yHigh] in pixels
  });

  function svg(tag, attrs, parent) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }
  // Red for the lowest rate found, green for the highest.
  function colour(rate) {
    var t = rateHi > rateLo ? (rate - rateLo) / (rateHi - rateLo) : 1;
    return "hsl(" + Math.round(120 * t) + ", 70%, 40%)";
  }
  function kept(d) {
    return axes.every(function (a) {
      if (!a.brush) return true;
      var y = a.y(a.get(d));
      return y >= a.brush[0] - 0.5 && y <= a.brush[1] + 0.5;
    });
  }

  var plot = svg("svg", { id: "parallel", width: W, height: H, viewBox: "0 0 " + W + " " + H }, null);
  document.getElementById("plot").appendChild(plot);
  var lines = data.points.map(function (d, i) {
    var pts = axes.map(function (a) { return a.x.toFixed(1) + "," + a.y(a.get(d)).toFixed(1); }).join(" ");
    var line = svg("polyline", { points: pts, fill: "none", stroke: colour(d.pass_rate), "stroke-width": 2, "class": "point", "data-point": i }, plot);
    var title = svg("title", {}, line);
    title.textContent = describe(d);
    return line;
  });
  axes.forEach(function (a) {
    var g = svg("g", { "class": "axis" }, plot);
    svg("line", { x1: a.x, x2: a.x, y1: TOP, y2: H - BOTTOM, stroke: "#333" }, g);
    var label = svg("text", { x: a.x, y: H - 12, "text-anchor": "middle", "font-weight": "bold" }, g);
    label.textContent = a.name;
    var ticks = a.numeric ? (a.domain[0] === a.domain[1] ? [a.domain[0]] : [a.domain[0], (a.domain[0] + a.domain[1]) / 2, a.domain[1]]) : a.categories;
    ticks.forEach(function (t) {
      var text = svg("text", { x: a.x - 6, y: a.y(t) + 4, "text-anchor": "end" }, g);
      text.textContent = a.numeric ? +(+t).toFixed(3) : t;
    });
    a.rect = svg("rect", { x: a.x - 8, width: 16, y: 0, height: 0, fill: "rgba(60,120,200,0.25)", stroke: "#3c78c8", "class": "brush" }, g);
    var hit = svg("rect", { x: a.x - 12, y: TOP - 6, width: 24, height: H - BOTTOM - TOP + 12, fill: "transparent", style: "cursor: crosshair" }, g);
    var start = null;
    function y(event) { var box = plot.getBoundingClientRect(); return (event.clientY - box.top) * H / box.height; }
    hit.addEventListener("mousedown", function (e) { start = y(e); e.preventDefault(); });
    window.addEventListener("mousemove", function (e) {
      if (start === null || !hit.isConnected) return;
      if (window.activeAxis && window.activeAxis !== a) return;
      window.activeAxis = a;
      var now = y(e);
      a.brush = [Math.min(start, now), Math.max(start, now)];
      update();
    });
    window.addEventListener("mouseup", function () {
      if (start !== null && window.activeAxis !== a) { a.brush = null; update(); }
      start = null; window.activeAxis = null;
    });
  });

  function describe(d) {
    return data.params.map(function (p) { return p + "=" + d.values[p]; }).concat([d.prompt, d.model, (100 * d.pass_rate).toFixed(1) + "%"]).filter(Boolean).join(" · ");
  }

  var TIME = TRAINING ? "training s" : "latency ms";
  var sortKey = METRIC, sortDown = true;
  function cell(d, key) {
    if (key === "prompt") return d.prompt;
    if (key === "model") return d.model;
    if (key === METRIC) return d.pass_rate;
    if (key === "score") return d.mean_score;
    if (key === TIME) return TRAINING ? d.mean_latency_ms / 1000 : d.mean_latency_ms;
    if (key === "run") return d.run_id;
    return d.values[key];
  }
  var keys = data.params.concat(hasPrompt ? ["prompt"] : [], hasModel ? ["model"] : [],
    [METRIC], TRAINING ? [] : ["score"], [TIME, "run"]);
  var head = document.getElementById("points-head");
  keys.forEach(function (k) {
    var th = document.createElement("th");
    th.textContent = k;
    th.style.cursor = "pointer";
    th.addEventListener("click", function () { sortDown = sortKey === k ? !sortDown : true; sortKey = k; update(); });
    head.appendChild(th);
  });

  function update() {
    var shown = 0;
    data.points.forEach(function (d, i) {
      var keep = kept(d);
      lines[i].setAttribute("class", keep ? "point" : "point dim");
      lines[i].setAttribute("stroke-opacity", keep ? 0.9 : 0.08);
      if (keep) shown++;
    });
    axes.forEach(function (a) {
      a.rect.setAttribute("y", a.brush ? a.brush[0] : 0);
      a.rect.setAttribute("height", a.brush ? a.brush[1] - a.brush[0] : 0);
    });
    var order = data.points.map(function (_, i) { return i; }).filter(function (i) { return kept(data.points[i]); });
    order.sort(function (x, y) {
      var p = cell(data.points[x], sortKey), q = cell(data.points[y], sortKey);
      var c = typeof p === "number" && typeof q === "number" ? p - q : String(p).localeCompare(String(q));
      return sortDown ? -c : c;
    });
    var body = document.getElementById("points-body");
    body.textContent = "";
    order.forEach(function (i) {
      var d = data.points[i], tr = document.createElement("tr");
      tr.className = "point-row";
      keys.forEach(function (k) {
        var td = document.createElement("td"), v = cell(d, k);
        td.textContent = k === METRIC ? (100 * v).toFixed(1) + "% (" + d.passed + "/" + d.cases + ")"
          : k === "latency ms" ? Math.round(v) : k === "training s" ? v.toFixed(1) : typeof v === "number" && k !== "run" ? +v.toFixed(3) : (v === null || v === undefined ? "" : v);
        if (k === METRIC) td.style.background = colour(v).replace("40%)", "88%)");
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    document.getElementById("kept").textContent = shown + " of " + data.points.length + " points";
  }

  var brush = /brush=([^:&]+):([-0-9.]+):([-0-9.]+)/.exec(decodeURIComponent(location.hash));
  if (brush) {
    axes.forEach(function (a) {
      if (a.name === brush[1] && a.numeric) {
        var y1 = a.y(+brush[2]), y2 = a.y(+brush[3]);
        a.brush = [Math.min(y1, y2), Math.max(y1, y2)];
      }
    });
  }
  update();
  document.body.setAttribute("data-ready", "1");
})();
