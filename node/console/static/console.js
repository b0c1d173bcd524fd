// The console works without JavaScript; this only moves keyboard focus to what changed
// (a message after an action, the image after a reveal) and disables a submitted form's
// buttons so a double click does not send it twice.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var target = document.querySelector("[data-focus]");
  if (target) { target.setAttribute("tabindex", "-1"); target.focus(); }
  document.querySelectorAll("form[method=post]").forEach(function (form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });
});
