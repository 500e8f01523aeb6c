/* Bulk actions on the containers list: per-row progress and a summary.
 *
 * The bulk bar's form posts to containers/bulk/run/ (htmx), which answers with a panel
 * [data-bulk-job="<uuid>"] holding one [data-bulk-row="<id>"] per container. This script follows
 * ws/jobs/<uuid>/ and, per row, shows its status (Queued, Stopping…, Stopped, Failed: reason) and,
 * while a stop waits, the grace time left before SIGKILL, counted down from the server's deadline.
 * When the job ends it writes the summary, shows a toast and refreshes the table.
 * Text only (textContent), never HTML: names and error messages come from users.
 */
(function () {
  "use strict";

  var STATUS = { queued: "Queued", done: "Done", failed: "Failed" };

  function follow(panel) {
    if (panel.getAttribute("data-following")) return;
    panel.setAttribute("data-following", "1");
    var id = panel.getAttribute("data-bulk-job");
    var verb = panel.getAttribute("data-bulk-verb") || "Working";
    var rows = {}; // id -> {deadline (client ms), el}
    var timer = null;
    var finished = false;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/ws/jobs/" + encodeURIComponent(id) + "/");

    function tick() {
      var now = Date.now();
      var waiting = false;
      Object.keys(rows).forEach(function (key) {
        var row = rows[key];
        var grace = row.el.querySelector("[data-bulk-grace]");
        if (row.deadline === null || row.el.getAttribute("data-status") !== "working") {
          grace.textContent = "";
          return;
        }
        var left = Math.max(0, Math.ceil((row.deadline - now) / 1000));
        grace.textContent = left > 0 ? left + " s to SIGKILL" : "killing…";
        waiting = true;
      });
      if (!waiting && timer) {
        clearInterval(timer);
        timer = null;
      }
    }

    function update(data) {
      var el = panel.querySelector('[data-bulk-row="' + CSS.escape(data.id) + '"]');
      if (!el) return;
      el.setAttribute("data-status", data.status);
      var status = el.querySelector("[data-bulk-status]");
      if (data.status === "working") status.textContent = (data.message || verb) + "…";
      else if (data.status === "failed") status.textContent = "Failed: " + (data.message || "error");
      else if (data.status === "done") status.textContent = data.message || STATUS.done;
      else status.textContent = STATUS.queued;
      var deadline = null;
      if (data.status === "working" && typeof data.deadline === "number" && typeof data.sent === "number") {
        // The server's deadline relative to when it reported, so clock skew does not matter.
        deadline = Date.now() + (data.deadline - data.sent) * 1000;
        var known = rows[data.id];
        if (known && known.deadline !== null) deadline = known.deadline; // keep the first estimate
      }
      rows[data.id] = { deadline: deadline, el: el };
      if (deadline !== null && !timer) timer = setInterval(tick, 250);
      tick();
    }

    function finish(msg) {
      if (finished) return;
      finished = true;
      var result = msg.result || {};
      var failed = (result.failed || []).length > 0 || msg.state === "failed";
      var text = result.summary || msg.error || "Finished";
      var summary = panel.querySelector("[data-bulk-summary]");
      summary.textContent = text;
      summary.classList.toggle("is-error", failed);
      panel.setAttribute("data-finished", failed ? "failed" : "ok");
      var dismiss = panel.querySelector("[data-bulk-dismiss]");
      if (dismiss) dismiss.hidden = false;
      if (window.Berth && window.Berth.toast) {
        window.Berth.toast({ level: failed ? "error" : "success", title: "", message: text });
      }
      var table = document.getElementById("container-table");
      if (table && window.htmx) {
        window.htmx.ajax("GET", window.location.pathname + window.location.search, {
          target: "#container-table",
          swap: "outerHTML",
        });
      }
      socket.close();
    }

    socket.onmessage = function (event) {
      var msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (msg.type === "error") {
        finish({ state: "failed", error: msg.message });
        return;
      }
      ((msg.progress || {}).rows || []).forEach(update);
      if (msg.state === "succeeded" || msg.state === "failed" || msg.state === "cancelled") finish(msg);
    };
    socket.onclose = function () {
      if (!finished) {
        var summary = panel.querySelector("[data-bulk-summary]");
        summary.textContent = "Lost the connection; the action goes on. Reload to see the result.";
        summary.classList.add("is-error");
      }
    };
  }

  function scan(root) {
    if (!(root instanceof Element)) return;
    if (root.matches("[data-bulk-job]")) follow(root);
    root.querySelectorAll("[data-bulk-job]").forEach(follow);
  }

  document.addEventListener("htmx:load", function (event) {
    scan(event.target);
  });
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element && event.target.closest("[data-bulk-dismiss]");
    if (button) {
      var panel = button.closest("[data-bulk-job]");
      if (panel) panel.remove();
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    scan(document.body);
  });
})();
