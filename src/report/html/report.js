// Renders the report from the JSON in #data: the matrix is paged (100 rows) so a run of
// thousands of cases stays responsive. Clicking a column header sorts the cases by that
// column's score (again: the other way; the case header: back to file order). The URL's
// fragment holds the filter, the sort (column k from 1, negative for descending) and the
// open case by its id as the matrix shows it (#filter=failures&sort=2&case=12; a number
// that is no case's id counts cases from 1), and follows every click, so the view in the
// address bar can be linked, and checked headless.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var PAGE = 100;
  var state = { filter: "all", page: 0, selected: -1, sort: 0 };

  // A case by its id, else by its position counted from 1 (as the default ids count).
  function caseIndex(key) {
    for (var i = 0; i < data.cases.length; i++) if (data.cases[i].id === key) return i;
    var n = /^\d+$/.test(key) ? +key : 0;
    return n >= 1 && n <= data.cases.length ? n - 1 : -1;
  }

  function readHash() {
    var match = /filter=(all|failures|disagreements|errors)/.exec(location.hash);
    state.filter = match ? match[1] : "all";
    var sorted = /sort=(-?\d+)/.exec(location.hash);
    state.sort = sorted && Math.abs(+sorted[1]) <= data.columns.length ? +sorted[1] : 0;
    var opened = /case=([^&]*)/.exec(location.hash), key = "";
    try { key = opened ? decodeURIComponent(opened[1]) : ""; } catch (e) { key = ""; }
    state.selected = key ? caseIndex(key) : -1;
  }

  // The view into the address bar, replacing the entry so Back leaves the report.
  function writeHash() {
    var parts = [];
    if (state.filter !== "all") parts.push("filter=" + state.filter);
    if (state.sort) parts.push("sort=" + state.sort);
    if (state.selected >= 0) parts.push("case=" + encodeURIComponent(data.cases[state.selected].id));
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (location.hash === hash) return;
    try {
      history.replaceState(null, "", hash || location.pathname + location.search);
    } catch (e) {
      location.hash = hash;
    }
  }
  readHash();

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function status(cell) { return cell ? cell[0] : "none"; }

  // The case's picture with the expected boxes (dashed) and the column's found ones.
  function picture(p, found) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + p.width + " " + p.height);
    svg.setAttribute("class", "picture" + (p.pixelated ? " pixelated" : ""));
    svg.setAttribute("role", "img");
    var img = document.createElementNS(ns, "image");
    img.setAttribute("href", p.src);
    img.setAttribute("width", p.width);
    img.setAttribute("height", p.height);
    svg.appendChild(img);
    function draw(boxes, kind) {
      (boxes || []).forEach(function (b) {
        var rect = document.createElementNS(ns, "rect");
        rect.setAttribute("x", b[0]);
        rect.setAttribute("y", b[1]);
        rect.setAttribute("width", Math.max(0, b[2] - b[0]));
        rect.setAttribute("height", Math.max(0, b[3] - b[1]));
        rect.setAttribute("class", kind);
        var title = document.createElementNS(ns, "title");
        title.textContent = (kind === "expected" ? "expected " : "found ") + b[4];
        rect.appendChild(title);
        svg.appendChild(rect);
      });
    }
    draw(p.expected, "expected");
    draw(found, "found");
    return svg;
  }

  // Ascending by the column's score, or descending; cases without a cell last, ties in
  // file order.
  function bySort(a, b) {
    var col = Math.abs(state.sort) - 1, dir = state.sort > 0 ? 1 : -1;
    var x = data.cells[a][col], y = data.cells[b][col];
    if (!x || !y) return x ? -1 : y ? 1 : a - b;
    return (x[1] - y[1]) * dir || a - b;
  }

  function rows() {
    var shown = data.cases.map(function (_, i) { return i; }).filter(function (i) {
      var cells = data.cells[i];
      if (state.filter === "failures") return cells.some(function (c) { return c && c[0] !== "pass"; });
      if (state.filter === "errors") return cells.some(function (c) { return c && c[0] === "error"; });
      if (state.filter === "disagreements") {
        var seen = cells.filter(Boolean).map(function (c) { return c[0] === "pass"; });
        return seen.some(function (p) { return p !== seen[0]; });
      }
      return true;
    });
    return state.sort ? shown.sort(bySort) : shown;
  }

  function markSort() {
    Array.prototype.forEach.call(document.querySelectorAll("#matrix thead th"), function (th, k) {
      if (k > 0 && Math.abs(state.sort) === k) {
        th.setAttribute("aria-sort", state.sort > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
  }

  function renderMatrix() {
    var shown = rows();
    var pages = Math.max(1, Math.ceil(shown.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    var body = document.getElementById("matrix-body");
    body.textContent = "";
    shown.slice(state.page * PAGE, (state.page + 1) * PAGE).forEach(function (i) {
      var tr = el("tr", { "class": "case-row", "data-case": String(i) }, [
        el("td", {}, [data.cases[i].id]),
      ]);
      data.cells[i].forEach(function (cell) {
        var s = status(cell);
        var mark = { pass: "✓", fail: "✗", error: "E", none: "·" }[s];
        tr.appendChild(el("td", { "class": s + " num" }, [cell ? mark + " " + cell[1].toFixed(2) : mark]));
      });
      tr.addEventListener("click", function () { state.selected = i; writeHash(); renderDetail(); });
      body.appendChild(tr);
    });
    document.getElementById("shown").textContent =
      shown.length + " of " + data.cases.length + " cases · page " + (state.page + 1) + " of " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }

  // Word-level diff (longest common subsequence over words and whitespace).
  function diff(a, b) {
    var x = a.split(/(\s+)/), y = b.split(/(\s+)/);
    if (x.length * y.length > 4e6) return [["same", b]];
    var n = x.length, m = y.length, i, j;
    var lcs = [];
    for (i = 0; i <= n; i++) { lcs.push(new Uint32Array(m + 1)); }
    for (i = n - 1; i >= 0; i--) for (j = m - 1; j >= 0; j--)
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    var out = []; i = 0; j = 0;
    function push(kind, text) {
      if (out.length && out[out.length - 1][0] === kind) out[out.length - 1][1] += text;
      else out.push([kind, text]);
    }
    while (i < n && j < m) {
      if (x[i] === y[j]) { push("same", y[j]); i++; j++; }
      else if (lcs[i + 1][j] >= lcs[i][j + 1]) { push("del", x[i]); i++; }
      else { push("ins", y[j]); j++; }
    }
    for (; i < n; i++) push("del", x[i]);
    for (; j < m; j++) push("ins", y[j]);
    return out;
  }

  function renderDetail() {
    var box = document.getElementById("detail");
    var i = state.selected;
    if (i < 0) { box.style.display = "none"; return; }
    box.style.display = "block";
    var c = data.cases[i];
    document.getElementById("detail-title").textContent =
      "Case " + c.id + (c.description ? " · " + c.description : "");
    var sides = document.getElementById("sides");
    sides.textContent = "";
    var first = data.cells[i][0];
    data.cells[i].forEach(function (cell, col) {
      var out = el("div", { "class": "output" });
      if (cell && col > 0 && first) {
        diff(first[2], cell[2]).forEach(function (part) {
          out.appendChild(part[0] === "same" ? document.createTextNode(part[1])
            : el(part[0], {}, [part[1]]));
        });
      } else {
        out.textContent = cell ? cell[2] : "(not run)";
      }
      var reasons = el("ul", { "class": "reasons" },
        (cell ? cell[3] : []).map(function (r) { return el("li", {}, [r]); }));
      var parts = [
        el("h3", {}, [data.columns[col].id + (cell ? " · " + status(cell) + " · " + cell[1].toFixed(2) : "")]),
      ];
      if (c.picture) parts.push(picture(c.picture, cell ? cell[4] : null));
      parts.push(out, reasons);
      sides.appendChild(el("div", { "class": "side " + status(cell) }, parts));
    });
    Array.prototype.forEach.call(document.querySelectorAll("tr.case-row"), function (tr) {
      tr.classList.toggle("selected", tr.getAttribute("data-case") === String(i));
    });
  }

  var select = document.getElementById("filter");
  select.value = state.filter;
  select.addEventListener("change", function () {
    state.filter = select.value; state.page = 0; writeHash(); renderMatrix();
  });
  document.getElementById("prev").addEventListener("click", function () { state.page--; renderMatrix(); });
  document.getElementById("next").addEventListener("click", function () { state.page++; renderMatrix(); });
  Array.prototype.forEach.call(document.querySelectorAll("#matrix thead th"), function (th, k) {
    th.addEventListener("click", function () {
      state.sort = k === 0 ? 0 : state.sort === k ? -k : k;
      state.page = 0; writeHash(); markSort(); renderMatrix();
    });
  });
  // An edited address, or Back and Forward between linked views.
  window.addEventListener("hashchange", function () {
    readHash(); select.value = state.filter; state.page = 0;
    markSort(); renderMatrix(); renderDetail();
  });
  markSort();
  renderMatrix();
  renderDetail();
  document.body.setAttribute("data-ready", "1");
})();
