"""The HTML report's one script: filter (text and severity) and sort, with no network and no HTML
written from data (it only shows, hides and reorders elements that are already escaped, and sets
counts with ``textContent``). The filter lives in the address's fragment
(``#q=victor&sev=critical,high``; ``&sort=t`` sorts every group by time), so a filtered view can
be linked to or bookmarked. The page's Content-Security-Policy allows exactly this text, by its
SHA-256 (:func:`csp_hash`): an injected script, an inline handler or a remote load would not run.
"""

from __future__ import annotations

import base64
import hashlib

SCRIPT = r"""
"use strict";
(function () {
  var box = document.getElementById("q");
  var sevs = Array.prototype.slice.call(document.querySelectorAll("input[data-sev]"));
  var groups = Array.prototype.slice.call(document.querySelectorAll("details.group"));
  var shown = document.getElementById("shown");
  var texts = new Map();
  function text(el) {
    var t = texts.get(el);
    if (t === undefined) { t = el.textContent.toLowerCase(); texts.set(el, t); }
    return t;
  }
  function fromHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (params.has("q")) { box.value = params.get("q"); }
    if (params.has("sev")) {
      var want = params.get("sev").split(",");
      sevs.forEach(function (c) { c.checked = want.indexOf(c.getAttribute("data-sev")) >= 0; });
    }
    return params.get("sort");
  }
  function toHash() {
    var params = new URLSearchParams();
    if (box.value) { params.set("q", box.value); }
    var off = sevs.filter(function (c) { return !c.checked; });
    if (off.length) {
      params.set("sev", sevs.filter(function (c) { return c.checked; })
        .map(function (c) { return c.getAttribute("data-sev"); }).join(","));
    }
    var text = params.toString();
    try {
      history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
    } catch (e) { /* a browser may refuse it for a file: address; the filter still applies */ }
  }
  function apply() {
    var words = box.value.toLowerCase().split(/\s+/).filter(function (w) { return w; });
    var allowed = {};
    sevs.forEach(function (c) { allowed[c.getAttribute("data-sev")] = c.checked; });
    var total = 0;
    groups.forEach(function (g) {
      var n = 0;
      g.querySelectorAll("details.alert").forEach(function (a) {
        var ok = allowed[a.getAttribute("data-sev")] !== false &&
          words.every(function (w) { return text(a).indexOf(w) >= 0; });
        a.hidden = !ok;
        if (ok) { n += 1; }
      });
      g.hidden = n === 0;
      g.querySelector(".count").textContent = String(n);
      if (words.length && n) { g.open = true; }
      total += n;
    });
    shown.textContent = String(total);
  }
  function value(row, key) {
    if (key === "r" || key === "t" || key === "n") { return row.getAttribute("data-" + key) || "0"; }
    var cell = row.querySelector('[data-c="' + key + '"]');
    return cell ? cell.textContent.toLowerCase() : "";
  }
  function sortBy(button) {
    var list = button.closest("details.group").querySelector(".rows");
    var key = button.getAttribute("data-key");
    var numeric = key === "r" || key === "t" || key === "n";
    var down = button.getAttribute("aria-sort") === "ascending" ||
      (!button.hasAttribute("aria-sort") && numeric);
    button.parentNode.querySelectorAll("button[data-key]").forEach(function (b) { b.removeAttribute("aria-sort"); });
    button.setAttribute("aria-sort", down ? "descending" : "ascending");
    var rows = Array.prototype.slice.call(list.children);
    rows.sort(function (a, b) {
      var x = value(a, key), y = value(b, key);
      var c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      if (c === 0) { c = Number(a.getAttribute("data-i")) - Number(b.getAttribute("data-i")); return c; }
      return down ? -c : c;
    });
    rows.forEach(function (r) { list.appendChild(r); });
  }
  box.addEventListener("input", function () { apply(); toHash(); });
  sevs.forEach(function (c) { c.addEventListener("change", function () { apply(); toHash(); }); });
  document.querySelectorAll("button[data-key]").forEach(function (b) {
    b.addEventListener("click", function (e) { e.preventDefault(); sortBy(b); });
  });
  document.getElementById("expand").addEventListener("click", function () {
    groups.forEach(function (g) { if (!g.hidden) { g.open = true; } });
  });
  document.getElementById("collapse").addEventListener("click", function () {
    groups.forEach(function (g) { g.open = false; });
  });
  var sort = fromHash();
  document.body.classList.add("js");
  apply();
  if (sort) {
    document.querySelectorAll('button[data-key="' + sort.replace(/[^a-z]/g, "") + '"]').forEach(sortBy);
  }
})();
"""


def csp_hash(script: str = SCRIPT) -> str:
    """The CSP source expression that allows exactly ``script`` (``'sha256-…'``)."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
