// carehub console: progressive touches only; every page works without this file.
document.addEventListener("DOMContentLoaded", function () {
  // The language picker applies on change (its button is for browsers without scripts).
  document.querySelectorAll("form.lang select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  document.querySelectorAll("form.lang .no-js").forEach(function (b) { b.hidden = true; });
});
