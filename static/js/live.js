/* Live state, the client half of the live-state model (dashboard/livestate.py is the server half).
 *
 * One websocket per page to ws/events/. Every element that shows state names the events that concern
 * it in data-live: space-separated "<type>:<id>", "<type>:*" or "*", optionally narrowed to one action
 * ("container:*:create"). When such an event arrives, whoever caused it (the CLI, another tab, an exit,
 * a prune), the element is fetched again from data-live-url (else its hx-get) and swapped by htmx
 * (outerHTML unless data-live-swap / hx-swap say otherwise; out-of-band parts of the answer are applied
 * too). This is the one update path, and it keeps three promises:
 *  - events are batched (BATCH_MS), so a burst refreshes each element once;
 *  - one request per element at a time, and an event that arrives during it fetches again afterwards,
 *    so the last event always wins (nothing lags one event behind);
 *  - no event is missed between the page's render and its socket, nor across a dropped socket or a
 *    server restart: the page carries the newest event id of its render (data-live-after on this
 *    script's tag), the socket asks for the events after the last id applied (?after=), the server
 *    replays them, and an id already applied is ignored (replay and live delivery can overlap). When
 *    too many were missed the server says "resync" and every live element is fetched again.
 * Elements without an id or a URL get htmx's "berth:refresh" trigger instead. Each event is also
 * dispatched on document as a "berth:event" CustomEvent for page scripts.
 */
(function () {
  "use strict";
  if (window.berthLive) return; // included twice: still one socket per page

  var BATCH_MS = 50;
  var socket = null;
  var retry = 1000;
  var connectedBefore = false;
  var due = new Set(); // "#id" strings (fetched here) or elements (htmx-triggered)
  var timer = null;
  var busy = new Set(); // ids being fetched
  var again = new Set(); // ids to fetch once more when their request ends
  var APPLIED_KEPT = 2000;
  var applied = new Set(); // event ids already applied (the newest APPLIED_KEPT)
  var lastId = cursorOfPage(); // the newest event id applied, or of the render; null: unknown

  function cursorOfPage() {
    var script = document.querySelector("script[data-live-after]");
    var value = script ? script.getAttribute("data-live-after") : "";
    return /^\d+$/.test(value) ? Number(value) : null;
  }

  function firstTime(id) {
    if (typeof id !== "number") return true;
    if (applied.has(id)) return false;
    applied.add(id);
    if (applied.size > APPLIED_KEPT) applied.delete(applied.values().next().value);
    if (lastId === null || id > lastId) lastId = id;
    return true;
  }

  function matches(token, event) {
    if (token === "*") return true;
    var parts = token.split(":");
    if (parts[0] !== event.object_type) return false;
    if (parts[1] && parts[1] !== "*" && parts[1] !== event.object_id) return false;
    return !parts[2] || parts[2] === event.action;
  }

  function concerns(el, event) {
    return (el.getAttribute("data-live") || "").split(/\s+/).some(function (token) {
      return token && matches(token, event);
    });
  }

  function urlOf(el) {
    return el.getAttribute("data-live-url") || el.getAttribute("hx-get");
  }

  function schedule(el) {
    due.add(el.id && urlOf(el) ? "#" + el.id : el);
    if (timer === null) timer = window.setTimeout(flush, BATCH_MS);
  }

  function flush() {
    timer = null;
    var items = Array.from(due);
    due.clear();
    items.forEach(function (item) {
      if (typeof item === "string") {
        refresh(item.slice(1));
      } else if (window.htmx && document.contains(item)) {
        window.htmx.trigger(item, "berth:refresh");
      }
    });
  }

  function refresh(id) {
    if (busy.has(id)) {
      again.add(id);
      return;
    }
    var el = document.getElementById(id);
    var url = el && urlOf(el);
    if (!url) return;
    busy.add(id);
    fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true", Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error(url + " answered " + response.status);
        return response.text();
      })
      .then(function (html) {
        var current = document.getElementById(id);
        if (!current || !window.htmx) return;
        var style = current.getAttribute("data-live-swap") || current.getAttribute("hx-swap") || "outerHTML";
        window.htmx.swap(current, html, { swapStyle: style.split(/\s+/)[0] });
      })
      .catch(function () {
        // A failed refresh keeps what is shown; the next event (or reconnect) fetches again.
      })
      .finally(function () {
        busy.delete(id);
        if (again.delete(id)) refresh(id);
      });
  }

  function onEvent(event) {
    if (!firstTime(event.id)) return;
    document.querySelectorAll("[data-live]").forEach(function (el) {
      if (concerns(el, event)) schedule(el);
    });
    document.dispatchEvent(new CustomEvent("berth:event", { detail: event }));
  }

  function refreshAll() {
    document.querySelectorAll("[data-live]").forEach(schedule);
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var query = lastId === null ? "" : "?after=" + lastId;
    socket = new WebSocket(scheme + window.location.host + "/ws/events/" + query);
    socket.addEventListener("open", function () {
      retry = 1000;
      if (connectedBefore && lastId === null) refreshAll(); // nothing to resume from: fetch it all
      connectedBefore = true;
      document.documentElement.dataset.live = "connected";
    });
    socket.addEventListener("message", function (message) {
      var data;
      try {
        data = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      if (data && data.type === "event") onEvent(data);
      if (data && data.type === "resync") {
        applied.clear();
        lastId = typeof data.newest === "number" ? data.newest : null;
        refreshAll();
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

  window.berthLive = {
    refreshAll: refreshAll,
    lastId: function () {
      return lastId;
    },
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
})();
