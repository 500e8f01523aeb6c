/* Volumes page: a popover whose form was sent (Prune) closes once the server accepted it, so it never
 * stays open showing numbers from before; the page's counts follow through live.js. */
(function () {
  "use strict";
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target;
    if (!(form instanceof Element) || !event.detail || !event.detail.successful) return;
    var popover = form.closest("details[data-close-after-submit]");
    if (popover) popover.open = false;
  });
})();
