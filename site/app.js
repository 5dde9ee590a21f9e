// probeforge's site: reads window.PROBEFORGE (site/data.js) and draws the coverage of the
// repository it sits in. Loads nothing else, so it works from file://, any static server and
// an air-gapped mirror. Rows are drawn a page at a time: the first screen stays fast at any size.
(function () {
  "use strict";
  var D = window.PROBEFORGE, PAGE = 50;
  var $ = function (id) { return document.getElementById(id); };
  if (!D || D.format !== "probeforge-site-1") {
    $("summary").textContent = "No site data (site/data.js): run probeforge site --repo DIR.";
    return;
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function seg(s) { return encodeURIComponent(s); }
  function size(n) { return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB"; }
  var K = D.k, C = D.c, T = D.t, nc = C.length;
  // The other catalog targets shipping a row's kernel (debian beside debian-bookworm).
  var A = {};
  (D.a || []).forEach(function (x) { A[x[0]] = x[1]; });
  function targetsOf(r) { return [K[r][0]].concat(A[r] || []); }
  // Each cell's state, by row * columns + column: [state, record].
  var cell = {};
  D.p.forEach(function (p) { cell[p[0] * nc + p[1]] = [p[4] ? "verified" : "published", p]; });
  D.f.forEach(function (f) { cell[f[0] * nc + f[1]] = ["failed", f]; });
  function file(r, c) {
    var k = K[r];
    // k[5]: the release in Falco's file name where it is not uname -r (Debian's package version).
    return "falco_" + T[k[0]][1] + "_" + (k[5] || k[2]) + "_" + k[3] + (C[c][1] === "kmod" ? ".ko" : ".o");
  }
  function path(r, c) { return seg(C[c][0]) + "/" + C[c][2] + "/" + seg(file(r, c)); }
  function state(r, c) { return cell[r * nc + c] || ["missing"]; }
  // One cell's text: linked file, size and digest; the failure's reason and its record; or
  // that nothing was built yet.
  function cellHtml(r, c, long) {
    var s = state(r, c), x = s[1];
    if (s[0] === "published" || s[0] === "verified") {
      return '<a href="' + path(r, c) + '">' + (long ? esc(file(r, c)) : "published") +
        "</a> " + size(x[2]) + ' <code title="sha256 ' + x[3] + '">' + (long ? x[3] : x[3].slice(0, 12)) + "</code>" +
        (x[4] ? ' <span class="ok" title="' + esc(x[4]) + '">verified in a VM</span>' : "");
    }
    if (s[0] === "failed") {
      return (long ? esc(file(r, c)) + ": " : "") + "failed: " + esc(x[2]) + ' (<a href=".probeforge/failures/' +
        seg(C[c][0]) + "/" + C[c][2] + "/" + seg(file(r, c)) + '.json">log</a>, ' + esc(x[3]) + ")";
    }
    return (long ? esc(file(r, c)) + ": " : "") + "not built yet";
  }
  function colsOf(arch) {
    var out = [];
    for (var c = 0; c < nc; c++) if (C[c][2] === arch) out.push(c);
    return out;
  }
  function hasDriver(r, cols) {
    return cols.some(function (c) { var s = state(r, c)[0]; return s === "published" || s === "verified"; });
  }
  // Sections: contiguous rows of one target and arch (the data is sorted that way, newest first).
  var sections = [];
  K.forEach(function (k, r) {
    var last = sections[sections.length - 1];
    if (!last || last.t !== k[0] || last.arch !== k[1]) sections.push(last = { t: k[0], arch: k[1], from: r, to: r });
    last.to = r + 1;
  });

  var shipped = K.filter(function (k) { return k[4]; }).length;
  $("summary").textContent = D.p.length + " published, " + D.f.length + " failed, over " + K.length + " kernels (" +
    shipped + " from listings) of " + T.length + " targets" + (D.generated ? "; data of " + D.generated : "") + ".";
  T.forEach(function (t, i) {
    var o = document.createElement("option");
    o.value = o.textContent = t[0]; $("t").appendChild(o);
  });

  // Newest kernel of each target and arch: does it have a driver yet?
  $("newest").innerHTML = "<table><tr><th>target</th><th>arch</th><th>newest kernel</th><th>driver</th></tr>" +
    sections.map(function (s) {
      var cols = colsOf(s.arch), ok = hasDriver(s.from, cols);
      return "<tr><td>" + esc(T[s.t][0]) + "</td><td>" + esc(s.arch) + '</td><td><a href="?q=' + seg(K[s.from][2]) + '">' +
        esc(K[s.from][2]) + "</a></td><td>" + (ok ? '<span class="ok">yes</span>' : '<span class="flag">no driver yet</span>') + "</td></tr>";
    }).join("") + "</table>";

  // Coverage per catalog target and per Falco target id (the id the file names carry, shared by
  // debian and debian-bookworm), driver version and kind: kernels with a published file / kernels.
  var bars = [], groups = {};
  C.forEach(function (c, ci) { (groups[c[0] + " " + c[1]] = groups[c[0] + " " + c[1]] || []).push(ci); });
  function bar(label, rows) {
    Object.keys(groups).sort().forEach(function (g) {
      var n = rows.filter(function (r) { return hasDriver(r, groups[g]); }).length, w = Math.round(200 * n / rows.length);
      bars.push("<tr><td>" + label + "</td><td>" + esc(g) + '</td><td><svg width="300" height="16" role="img" aria-label="' +
        n + " of " + rows.length + '"><rect width="200" height="14" fill="#eee"/><rect width="' + w +
        '" height="14" fill="#3a9a3a"/><text x="206" y="12">' + n + " / " + rows.length + "</text></svg></td></tr>");
    });
  }
  var ids = {};
  T.forEach(function (t, ti) {
    var rows = [];
    K.forEach(function (k, r) { if (targetsOf(r).indexOf(ti) >= 0) rows.push(r); });
    if (rows.length) bar(esc(t[0]), rows);
    (ids[t[1]] = ids[t[1]] || []).push(t[0]);
  });
  Object.keys(ids).sort().forEach(function (id) {
    if (ids[id].length === 1 && ids[id][0] === id) return;
    var rows = [];
    K.forEach(function (k, r) { if (T[k[0]][1] === id) rows.push(r); });
    bar("target id <b>" + esc(id) + "</b> (" + ids[id].map(esc).join(", ") + ")", rows);
  });
  $("coverage").innerHTML = bars.length ? "<table><tr><th>target</th><th>driver</th><th>published / kernels</th></tr>" + bars.join("") + "</table>" : "Nothing built yet.";

  // Build time per probe of the run that wrote this site.
  (function () {
    var t = D.times;
    if (!t || !t.s.length) {
      $("times").textContent = "No build times: only a run of build-all --site records its own (this data was written without one).";
      return;
    }
    var s = t.s, max = s[s.length - 1] || 1, nb = 20, bins = [], i;
    for (i = 0; i < nb; i++) bins.push(0);
    s.forEach(function (x) { bins[Math.min(nb - 1, Math.floor(x / max * nb))]++; });
    var top = Math.max.apply(null, bins), svg = '<svg width="420" height="120" role="img" aria-label="histogram of build seconds">';
    bins.forEach(function (b, i) {
      var h = Math.round(90 * b / top);
      svg += '<rect x="' + (10 + i * 20) + '" y="' + (95 - h) + '" width="18" height="' + h + '" fill="#4a78b8"><title>' +
        (max * i / nb).toFixed(1) + "-" + (max * (i + 1) / nb).toFixed(1) + " s: " + b + "</title></rect>";
    });
    svg += '<text x="10" y="112">0 s</text><text x="370" y="112">' + max.toFixed(1) + " s</text></svg>";
    var sum = s.reduce(function (a, b) { return a + b; }, 0);
    $("times").innerHTML = svg + "<p>This run: " + s.length + " builds, " + sum.toFixed(1) + " s in all, median " +
      s[s.length >> 1].toFixed(1) + " s, longest " + max.toFixed(1) + " s; the run took " + t.run.toFixed(1) + " s.</p>";
  })();

  // Time to driver per target: published - first seen in a signed index (probeforge watch).
  (function () {
    var d = window.PROBEFORGE_DELAYS || {}, names = Object.keys(d).sort();
    if (!names.length) {
      $("delays").textContent = "No times recorded: probeforge watch records when each kernel first appeared and when its driver was published.";
      return;
    }
    var f = function (s) { return s < 120 ? s.toFixed(0) + " s" : s < 7200 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h"; };
    $("delays").innerHTML = "<table><tr><th>target</th><th>drivers</th><th>min</th><th>median</th><th>p90</th><th>max</th></tr>" +
      names.map(function (n) {
        var x = d[n];
        return "<tr><td>" + esc(n) + "</td><td>" + x.n + "</td><td>" + f(x.min) + "</td><td>" + f(x.median) + "</td><td>" + f(x.p90) + "</td><td>" + f(x.max) + "</td></tr>";
      }).join("") + "</table>";
  })();

  // The matrix, one table per target and arch, a page of rows at a time.
  function rowsHtml(s, cols, from, to) {
    var h = "";
    for (var r = from; r < to; r++) {
      var k = K[r], none = !hasDriver(r, cols);
      h += "<tr><td>" + esc(k[2]) + (none ? ' <span class="flag" title="no driver yet">&#9888;</span>' : "") + "</td><td>#" + esc(k[3]) + "</td>";
      cols.forEach(function (c) { h += '<td class="' + state(r, c)[0] + '">' + cellHtml(r, c, false) + "</td>"; });
      h += "</tr>";
    }
    return h;
  }
  $("matrix").innerHTML = sections.map(function (s, i) {
    var cols = colsOf(s.arch), end = Math.min(s.to, s.from + PAGE);
    return "<h3>" + esc(T[s.t][0]) + " &middot; " + esc(s.arch) + " (" + (s.to - s.from) + " kernels)</h3><table><thead><tr><th>kernel release</th><th>version</th>" +
      cols.map(function (c) { return "<th>" + esc(C[c][0]) + " " + C[c][1] + "</th>"; }).join("") + '</tr></thead><tbody id="s' + i + '" data-shown="' + end + '">' +
      rowsHtml(s, cols, s.from, end) + "</tbody></table>" +
      (end < s.to ? '<button data-more="' + i + '">Show more (' + (s.to - end) + " left)</button>" : "");
  }).join("") || "No kernels: give targets or --from a list to probeforge site.";
  $("matrix").addEventListener("click", function (e) {
    var i = e.target.getAttribute("data-more");
    if (i === null) return;
    var s = sections[i], body = $("s" + i), shown = +body.getAttribute("data-shown"), end = Math.min(s.to, shown + 10 * PAGE);
    body.insertAdjacentHTML("beforeend", rowsHtml(s, colsOf(s.arch), shown, end));
    body.setAttribute("data-shown", end);
    if (end < s.to) e.target.textContent = "Show more (" + (s.to - end) + " left)";
    else e.target.remove();
  });

  // Search: the file Falco's loaders would download for this uname -r (and target, uname -v),
  // and whether it is here, or why not.
  // Any name of a kernel: uname -r, the release in Falco's file name (Debian's package version
  // and flavour), its header package, or that package's file name.
  function find(q, t, v) {
    var ver = (v.match(/#(\d+)/) || v.match(/^(\d+)$/) || [])[1], out = "", near = [];
    var hits = [], pkg = (q.match(/^linux-headers-([^_]+)(?:_[^_]+_[^_]+\.deb)?$/) || [])[1];
    function inTarget(r) { return targetsOf(r).some(function (i) { return T[i][0] === t || T[i][1] === t; }); }
    K.forEach(function (k, r) {
      if ((t && !inTarget(r)) || (ver && k[3] !== ver)) return;
      if (k[2] === q || k[5] === q || k[2] === pkg) hits.push(r);
      else if (near.length < 20 && (k[2].indexOf(q) >= 0 || (k[5] || "").indexOf(q) >= 0)) near.push(r);
    });
    hits.forEach(function (r) {
      var k = K[r], cols = colsOf(k[1]);
      var form = k[2] === q ? "" : k[5] === q ? "Falco's file release" : "header package";
      out += '<div class="hit">' + (form ? '<p class="resolved">' + esc(q) + " is " + form + " of uname -r <b>" + esc(k[2]) + "</b></p>" : "") +
        "<b>" + esc(k[2]) + "</b> #" + esc(k[3]) + " (" + targetsOf(r).map(function (i) { return esc(T[i][0]); }).join(", ") + ", " + esc(k[1]) + ")" +
        (cols.length ? "<ul>" + cols.map(function (c) {
          return '<li class="' + state(r, c)[0] + '">' + esc(C[c][0]) + " " + C[c][1] + ": " + cellHtml(r, c, true) + "</li>";
        }).join("") + "</ul>" : "<p>No driver built for " + esc(k[1]) + " here yet.</p>") + "</div>";
    });
    if (!hits.length) {
      var tid = (T.filter(function (x) { return x[0] === t || x[1] === t; })[0] || [])[1];
      out = "<p>No kernel <b>" + esc(q) + "</b>" + (ver ? " #" + esc(ver) : "") + " in the listings or records of this repository: nothing is built for it" +
        (tid && ver ? " (Falco would look for falco_" + esc(tid) + "_" + esc(q) + "_" + esc(ver) + ".o or .ko)" : "") + ".</p>";
      if (near.length) out += "<p>Similar: " + near.map(function (r) { return '<a href="?q=' + seg(K[r][2]) + '">' + esc(K[r][2]) + "</a>"; }).join(", ") + "</p>";
    }
    $("result").innerHTML = "<h2>Search</h2>" + out;
  }
  // Not URLSearchParams: it reads "+" as a space, and a pasted ?q=6.12.57+deb13-amd64 means "+".
  function param(name) {
    var m = location.search.slice(1).split("&").filter(function (kv) { return kv.split("=")[0] === name; })[0];
    try { return m ? decodeURIComponent(m.slice(name.length + 1)).trim() : ""; } catch (err) { return ""; }
  }
  function fromUrl() {
    var q = param("q"), t = param("t");
    $("q").value = q; $("t").value = t; $("v").value = param("v");
    if (t && $("t").value !== t) { var o = document.createElement("option"); o.value = o.textContent = t; $("t").appendChild(o); $("t").value = t; }
    if (q) find(q, $("t").value, $("v").value);
  }
  $("search").addEventListener("submit", function (e) {
    e.preventDefault();
    var u = new URLSearchParams();
    ["q", "t", "v"].forEach(function (n) { if ($(n).value.trim()) u.set(n, $(n).value.trim()); });
    // file:// pages cannot always rewrite their URL: the search works either way.
    try { history.replaceState(null, "", "?" + u.toString()); } catch (err) { /* not kept in the URL */ }
    find($("q").value.trim(), $("t").value, $("v").value.trim());
  });
  fromUrl();
  // When the first screen was drawn, from navigation start: what the bench measures.
  document.body.setAttribute("data-rendered-ms", Math.round(performance.now()));
})();
