/* The alert rule form: show only the fields the chosen kind and scope use (the server validates). */
(function () {
  "use strict";

  function init(form) {
    var percent = (form.getAttribute("data-percent-kinds") || "").split(",");
    var minutes = (form.getAttribute("data-minutes-kinds") || "").split(",");
    var kind = form.querySelector('[name="kind"]');
    var scope = form.querySelector('[name="scope"]');

    function field(name) {
      return form.querySelector('[data-field="' + name + '"]');
    }
    function show(el, on) {
      if (el) el.hidden = !on;
    }

    function update() {
      var k = kind.value;
      var thresholdLabel = field("threshold") && field("threshold").querySelector("label");
      show(field("threshold"), percent.indexOf(k) >= 0 || k === "restart_loop");
      show(field("minutes"), minutes.indexOf(k) >= 0);
      if (thresholdLabel) {
        thresholdLabel.textContent =
          k === "restart_loop" ? "More restarts than" : k === "disk" ? "Free disk below (%)" : "Above (%)";
      }
      show(form.querySelector("[data-scope-fields]"), k !== "disk");
      show(field("scope_value"), scope.value !== "all");
    }

    kind.addEventListener("change", update);
    scope.addEventListener("change", update);
    update();
  }

  function start() {
    document.querySelectorAll("[data-rule-form]").forEach(init);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
