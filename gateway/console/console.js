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
      if (f.size > 65536) {
        alert("The playground takes at most 64 KiB.");
        return;
      }
      var r = new FileReader();
      r.onload = function () { text.value = r.result; };
      r.readAsText(f);
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
