/* The alerts bell in the rail: the number of alerts nobody has seen yet, kept current without reloads.
 * "alert" events (live.js re-dispatches them as "berth:event") carry attributes.unseen; the alerts
 * page answers with an HX-Trigger "berth:unseen" {count} after marking what it shows as seen. */
(function () {
  "use strict";

  function bell() {
    return document.querySelector("[data-bell]");
  }

  function set(count) {
    var el = bell();
    if (!el || typeof count !== "number" || isNaN(count)) return;
    var badge = el.querySelector("[data-bell-count]");
    el.setAttribute("data-unseen", String(count));
    el.setAttribute("aria-label", count ? "Alerts: " + count + " unseen" : "Alerts: none unseen");
    el.title = count ? count + " unseen alert" + (count === 1 ? "" : "s") : "No unseen alerts";
    if (badge) {
      badge.textContent = count > 99 ? "99+" : String(count);
      badge.hidden = count === 0;
    }
  }

  function fetchCount() {
    var el = bell();
    if (!el) return;
    fetch(el.getAttribute("data-bell-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data) set(data.unseen);
      })
      .catch(function () {});
  }

  document.addEventListener("berth:event", function (event) {
    var detail = event.detail || {};
    if (detail.object_type !== "alert") return;
    var unseen = detail.attributes && detail.attributes.unseen;
    if (typeof unseen === "number") set(unseen);
    else fetchCount();
  });
  document.addEventListener("berth:unseen", function (event) {
    if (event.detail) set(event.detail.count);
  });
  // A page restored from the back/forward cache missed events while it was away.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) fetchCount();
  });
})();
