/* pzpgw console: a little plain JavaScript, nothing fetched from elsewhere.
 * The playground reads a chosen file into the text area, and a finding's
 * line number selects that line in it. */
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var file = document.getElementById("file");
  var text = document.getElementById("resource");
  if (file && text) {
    file.addEventListener("change", function () {
      var f = file.files && file.files[0];
      if (!f) return;
      var r = new FileReader();
      r.onload = function () { text.value = r.result; };
      r.readAsText(f);
    });
  }
  /* The admin listener takes forms of at most 64 KiB, URL-encoded: say
   * so here rather than get its 413 answer. */
  var form = document.getElementById("pg");
  if (form && text) {
    form.addEventListener("submit", function (ev) {
      var size = encodeURIComponent(text.value).length + 200;
      if (size > 65536) {
        ev.preventDefault();
        alert("The playground takes at most 64 KiB once form-encoded (" +
              "this is " + Math.ceil(size / 1024) + " KiB): validate a " +
              "smaller part, or use pzpgw validate.");
      }
    });
  }
  var links = document.querySelectorAll("a.goto");
  Array.prototype.forEach.call(links, function (a) {
    a.addEventListener("click", function (ev) {
      if (!text) return;
      ev.preventDefault();
      var line = parseInt(a.getAttribute("data-line"), 10) || 1;
      var lines = text.value.split("\n");
      var start = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++)
        start += lines[i].length + 1;
      var end = start + (lines[line - 1] || "").length;
      text.focus();
      text.setSelectionRange(start, end);
    });
  });
});
