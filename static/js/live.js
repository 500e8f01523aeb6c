// Live state: one websocket per page to ws/events/. Each engine event refreshes, in place, every
// element whose data-live is "<type>:<id>" or "<type>:*" (through htmx's "berth:refresh" trigger),
// and is re-dispatched on document as a "berth:event" CustomEvent for page scripts.
(function () {
  "use strict";
  var socket = null;
  var retry = 1000;

  function refresh(event) {
    var selectors = [
      '[data-live="' + event.object_type + ":" + event.object_id + '"]',
      '[data-live="' + event.object_type + ':*"]',
      '[data-live="*"]',
    ];
    document.querySelectorAll(selectors.join(",")).forEach(function (el) {
      if (window.htmx) {
        window.htmx.trigger(el, "berth:refresh", { event: event });
      }
    });
    document.dispatchEvent(new CustomEvent("berth:event", { detail: event }));
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/events/");
    socket.addEventListener("open", function () {
      retry = 1000;
      document.documentElement.dataset.live = "connected";
    });
    socket.addEventListener("message", function (message) {
      var data;
      try {
        data = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      if (data && data.type === "event") {
        refresh(data);
      }
    });
    socket.addEventListener("close", function (close) {
      document.documentElement.dataset.live = "disconnected";
      if (close.code === 4401 || close.code === 4403) {
        return; // logged out or not allowed: reconnecting will not help
      }
      window.setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
})();
