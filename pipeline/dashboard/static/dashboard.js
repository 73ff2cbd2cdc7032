/* wxemu dashboard: draws the Plotly figures and the selector-driven explorers (curves, timeline, spectra).
   Data files are scripts calling WXEMU.load / WXEMU.setIndex / WXEMU.figure, so the site works from file://. */
var WXEMU = (function () {
  "use strict";
  var data = {}, index = {}, pending = {};
  var config = { responsive: true, displaylogo: false };

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function report(msg) {
    var el = document.getElementById("js-errors");
    if (!el) { return; }
    el.hidden = false;
    el.appendChild(document.createTextNode(msg + "\n"));
  }
  window.addEventListener("error", function (e) { report("error: " + e.message); });
  function rendered(el) {
    el.setAttribute("data-rendered", "1");
    var n = document.querySelectorAll("[data-rendered]").length;
    document.body.setAttribute("data-plots-rendered", String(n));
  }
  function draw(el, traces, layout) {
    return Plotly.react(el, traces, layout, config).then(function () { rendered(el); },
      function (err) { report("plot: " + err); });
  }
  function figure(id, spec) {
    var el = document.getElementById("fig-" + id);
    if (!el) { report("no element for figure " + id); return; }
    draw(el, spec.data, spec.layout);
  }
  function load(kind, key, payload) {
    var k = kind + "|" + key;
    data[k] = payload;
    var cbs = pending[k] || [];
    delete pending[k];
    cbs.forEach(function (cb) { cb(payload); });
  }
  function need(kind, key, cb) {
    var k = kind + "|" + key;
    if (data[k]) { cb(data[k]); return; }
    if (pending[k]) { pending[k].push(cb); return; }
    pending[k] = [cb];
    var s = document.createElement("script");
    s.src = index[kind].keys[key].file;
    s.onerror = function () { report("cannot load " + s.src); };
    document.head.appendChild(s);
  }
  function hashParams() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) { out[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1)); }
    });
    return out;
  }
  function fill(select, values, wanted) {
    var keep = wanted !== undefined && values.indexOf(wanted) >= 0 ? wanted : select.value;
    select.textContent = "";
    values.forEach(function (v) {
      var o = document.createElement("option");
      o.value = v; o.textContent = v;
      select.appendChild(o);
    });
    if (values.indexOf(keep) >= 0) { select.value = keep; }
    select.parentNode.hidden = values.length === 0;
  }
  function traces(kind, idx, p, sel) {
    var out = [];
    var series = kind === "curves" ? p.values[sel.region][sel.metric]
      : kind === "timeline" ? p.values[sel.region][sel.metric][sel.lead]
      : p.values[sel.lead];
    Object.keys(series || {}).forEach(function (name) {
      var t = { x: p.x, y: series[name], name: esc(name), type: "scatter", mode: kind === "spectra" ? "lines" : "lines+markers" };
      if (name === "truth" && kind === "spectra") { t.line = { color: "black", dash: "dash", width: 3 }; }
      out.push(t);
    });
    return out;
  }
  function layout(kind, idx, p, sel) {
    var key = esc(p.key);
    if (kind === "spectra") {
      return { title: { text: key + " power spectrum at lead " + esc(sel.lead) },
        xaxis: { title: { text: esc(p.xtitle) }, type: "log", autorange: "reversed" },
        yaxis: { title: { text: "power spectral density" }, type: "log" }, height: 480 };
    }
    var units = idx.units[p.key] ? " (" + esc(idx.units[p.key]) + ")" : "";
    return { title: { text: esc(sel.metric) + " of " + key + ", region " + esc(sel.region) +
        (kind === "timeline" ? " at lead " + esc(sel.lead) : "") },
      xaxis: { title: { text: kind === "curves" ? "lead time" : "initial time" } },
      yaxis: { title: { text: esc(sel.metric) + units } }, height: 480 };
  }
  function explorer(kind) {
    var idx = index[kind];
    var form = document.querySelector("form.selectors[data-kind='" + kind + "']");
    var el = document.getElementById("explorer-" + kind);
    var get = function (name) { return form.elements[name]; };
    var params = hashParams();
    var variables = Object.keys(idx.variables);
    fill(get("variable"), variables, params.variable);
    function levels() {
      fill(get("level"), idx.variables[get("variable").value], params.level);
    }
    levels();
    ["region", "metric", "lead"].forEach(function (name) {
      if (get(name)) { fill(get(name), idx[name + "s"], params[name]); }
    });
    function update() {
      var v = get("variable").value, lv = get("level").value;
      var key = idx.variables[v].length ? v + "/" + lv : v;
      var sel = { key: key };
      ["region", "metric", "lead"].forEach(function (n) { if (get(n)) { sel[n] = get(n).value; } });
      need(kind, key, function (p) {
        el.setAttribute("data-selection", JSON.stringify(sel));
        draw(el, traces(kind, idx, p, sel), layout(kind, idx, p, sel));
      });
    }
    get("variable").addEventListener("change", function () { params = {}; levels(); update(); });
    Array.prototype.forEach.call(form.elements, function (s) {
      if (s.name !== "variable") { s.addEventListener("change", update); }
    });
    update();
  }
  return { figure: figure, load: load, setIndex: function (kind, idx) { index[kind] = idx; },
    explorer: explorer, esc: esc };
})();
