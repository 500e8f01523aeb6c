/* "Logs of these" on the containers list: opens /logs/?c=… (dashboard/views_logs.py) with the selected
 * containers, or, with none selected, the ones the current filter shows (at most 12). */
(function () {
  "use strict";
  var MAX = 12;

  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-logs-of-these]");
    if (!link) return;
    var ids = Array.prototype.map.call(document.querySelectorAll("input[data-select]:checked"), function (box) {
      return box.value;
    });
    if (!ids.length) {
      ids = Array.prototype.map.call(document.querySelectorAll("#container-table tr[data-container]"), function (row) {
        return row.getAttribute("data-container");
      });
    }
    event.preventDefault();
    if (!ids.length) return;
    window.location.href =
      link.getAttribute("href") +
      "?" +
      ids
        .slice(0, MAX)
        .map(function (id) {
          return "c=" + encodeURIComponent(id);
        })
        .join("&");
  });
})();
