/* Berth dashboard helpers. Loaded on every page after htmx, no inline scripts (CSP).
 * Over 400 lines because it is the one place for the small behaviours every page shares (listed below).
 *
 * - <time datetime="…">            shown as "3 minutes ago", exact local time on hover (data-absolute opts out)
 * - [data-copy="text"]             click (or Enter) copies the text (or the element's text when empty)
 * - HX-Trigger: {"toast": {...}}   shows a toast: {level: success|info|warning|error, title, message};
 *   on a 4xx it is the expected answer, so htmx does not log it as an error
 *   Berth.toast({...})             the same from page scripts
 * - [data-confirm="Remove web?"]   asks first, in a <dialog>; works for htmx elements and plain forms.
 *     data-confirm-action="Remove" names the button, data-confirm-items='["a","b"]' lists bulk objects
 * - [data-flash]                   an element swapped in by htmx flashes once
 * - [data-search]                  "/" focuses it. Debounced search itself is plain htmx:
 *     <input type="search" name="q" data-search hx-get="…" hx-trigger="input changed delay:300ms, search"
 *            hx-target="#rows" hx-push-url="true">
 * Everything user-controlled is written with textContent, never innerHTML.
 */
(function () {
  "use strict";

  document.documentElement.classList.remove("no-js");
  document.documentElement.classList.add("js");

  /* ---------- relative times ---------- */
  var UNITS = [
    ["year", 365 * 24 * 3600],
    ["month", 30 * 24 * 3600],
    ["week", 7 * 24 * 3600],
    ["day", 24 * 3600],
    ["hour", 3600],
    ["minute", 60],
    ["second", 1],
  ];
  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat("en", { numeric: "auto" }) : null;
  var absolute = window.Intl
    ? new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" })
    : null;

  function relative(date, now) {
    var seconds = Math.round((date.getTime() - now) / 1000);
    var abs = Math.abs(seconds);
    if (abs < 10) return "just now";
    for (var i = 0; i < UNITS.length; i++) {
      var unit = UNITS[i];
      if (abs >= unit[1] || unit[0] === "second") {
        var value = Math.round(seconds / unit[1]);
        if (rtf) return rtf.format(value, unit[0]);
        var n = Math.abs(value);
        var words = n + " " + unit[0] + (n === 1 ? "" : "s");
        return value < 0 ? words + " ago" : "in " + words;
      }
    }
    return "";
  }

  function updateTimes(root) {
    var now = Date.now();
    var nodes = (root || document).querySelectorAll("time[datetime]:not([data-absolute])");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) continue;
      if (!el.hasAttribute("title")) {
        el.setAttribute("title", absolute ? absolute.format(date) : date.toString());
      }
      el.textContent = relative(date, now);
    }
  }

  /* ---------- toasts ---------- */
  var LEVELS = { success: 1, info: 1, warning: 1, error: 1 };

  function toastRegion() {
    var region = document.getElementById("toasts");
    if (!region) {
      region = document.createElement("div");
      region.id = "toasts";
      region.className = "toasts";
      region.setAttribute("aria-live", "polite");
      document.body.appendChild(region);
    }
    return region;
  }

  function dismiss(toast) {
    if (!toast.isConnected) return;
    toast.classList.add("is-leaving");
    setTimeout(function () {
      toast.remove();
    }, 220);
  }

  function armToast(toast) {
    if (toast.dataset.armed) return;
    toast.dataset.armed = "1";
    // Errors stay until dismissed: the user must be able to read the engine's message.
    if (!toast.classList.contains("toast--error")) {
      setTimeout(function () {
        dismiss(toast);
      }, 6000);
    }
  }

  function toast(detail) {
    detail = detail || {};
    var level = LEVELS[detail.level] ? detail.level : "info";
    var el = document.createElement("div");
    el.className = "toast toast--" + level;
    el.setAttribute("role", level === "error" ? "alert" : "status");
    el.setAttribute("data-toast", "");
    var body = document.createElement("div");
    body.className = "toast__body";
    if (detail.title) {
      var title = document.createElement("strong");
      title.className = "toast__title";
      title.textContent = String(detail.title);
      body.appendChild(title);
    }
    var message = document.createElement("span");
    message.className = "toast__message";
    message.textContent = String(detail.message || "");
    body.appendChild(message);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast__close";
    close.setAttribute("data-toast-close", "");
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    el.appendChild(body);
    el.appendChild(close);
    toastRegion().appendChild(el);
    armToast(el);
    return el;
  }

  /* ---------- copy to clipboard ---------- */
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      area.remove();
      ok ? resolve() : reject(new Error("copy refused"));
    });
  }

  function copyFrom(el) {
    var text = el.getAttribute("data-copy") || el.textContent.trim();
    copyText(text).then(
      function () {
        toast({ level: "success", message: "Copied " + (text.length > 40 ? text.slice(0, 40) + "…" : text) });
      },
      function () {
        toast({ level: "warning", message: "Could not copy to the clipboard" });
      },
    );
  }

  /* ---------- confirmation dialog ---------- */
  function confirmFor(el, proceed) {
    var dialog = document.getElementById("confirm-dialog");
    var question = el.getAttribute("data-confirm");
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(question)) proceed();
      return;
    }
    dialog.querySelector("[data-confirm-message]").textContent = question;
    var okButton = dialog.querySelector("[data-confirm-ok]");
    okButton.textContent = el.getAttribute("data-confirm-action") || "Confirm";
    var list = dialog.querySelector("[data-confirm-items]");
    list.replaceChildren();
    var items = [];
    try {
      items = JSON.parse(el.getAttribute("data-confirm-items") || "[]");
    } catch (e) {
      items = [];
    }
    if (!Array.isArray(items)) items = [];
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.textContent = String(item);
      list.appendChild(li);
    });
    list.hidden = items.length === 0;
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      function () {
        if (dialog.returnValue === "ok") proceed();
      },
      { once: true },
    );
    dialog.showModal();
  }

  /* ---------- wiring ---------- */
  var HTMX_VERBS = ["get", "post", "put", "patch", "delete"];

  function isHtmx(el) {
    for (var i = 0; i < HTMX_VERBS.length; i++) {
      if (el.hasAttribute("hx-" + HTMX_VERBS[i]) || el.hasAttribute("data-hx-" + HTMX_VERBS[i])) return true;
    }
    return false;
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var close = target.closest("[data-toast-close]");
    if (close) {
      dismiss(close.closest("[data-toast]"));
      return;
    }
    var copy = target.closest("[data-copy]");
    if (copy) {
      event.preventDefault();
      copyFrom(copy);
      return;
    }
    var toggle = target.closest("[data-rail-toggle]");
    if (toggle) {
      var rail = toggle.closest(".rail");
      var open = rail.classList.toggle("is-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    // A plain (non-htmx) link or button with data-confirm.
    var confirmEl = target.closest("a[data-confirm], button[data-confirm]");
    if (confirmEl && !isHtmx(confirmEl) && !(confirmEl.form && isHtmx(confirmEl.form)) && !confirmEl.dataset.confirmed) {
      if (confirmEl.tagName === "BUTTON" && confirmEl.form && !confirmEl.form.hasAttribute("data-confirm")) {
        event.preventDefault();
        confirmFor(confirmEl, function () {
          confirmEl.dataset.confirmed = "1";
          confirmEl.form.requestSubmit(confirmEl);
          delete confirmEl.dataset.confirmed;
        });
      } else if (confirmEl.tagName === "A") {
        event.preventDefault();
        confirmFor(confirmEl, function () {
          window.location.assign(confirmEl.href);
        });
      }
    }
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Enter" && target instanceof Element && target.matches("[data-copy]:not(a):not(button)")) {
      event.preventDefault();
      copyFrom(target);
    }
    if (event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey) {
      var editing = target instanceof Element && target.closest("input, textarea, select, [contenteditable], .xterm");
      var search = document.querySelector("[data-search]");
      if (!editing && search) {
        event.preventDefault();
        search.focus();
        if (search.select) search.select();
      }
    }
    if (event.key === "Escape") {
      var rail = document.querySelector(".rail.is-open");
      if (rail) {
        rail.classList.remove("is-open");
        var btn = rail.querySelector("[data-rail-toggle]");
        if (btn) btn.setAttribute("aria-expanded", "false");
      }
    }
  });

  // Plain forms (not htmx) with data-confirm on the <form>.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
      if (isHtmx(form)) return; // htmx:confirm below asks instead
      if (form.dataset.confirmed) return;
      event.preventDefault();
      var submitter = event.submitter;
      confirmFor(form, function () {
        form.dataset.confirmed = "1";
        form.requestSubmit(submitter || undefined);
        delete form.dataset.confirmed;
      });
    },
    true,
  );

  // htmx requests from an element (or its form) with data-confirm.
  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.closest) return;
    var holder = elt.hasAttribute("data-confirm") ? elt : null;
    // A form submitted by a button that carries data-confirm (e.g. "Remove" next to "Stop").
    var trigger = event.detail.triggeringEvent;
    var submitter = trigger && trigger.submitter;
    if (!holder && submitter && submitter.hasAttribute("data-confirm")) holder = submitter;
    if (!holder && elt.form && elt.form.hasAttribute("data-confirm")) holder = elt.form;
    if (!holder) return;
    if (holder.dataset.confirmed) {
      delete holder.dataset.confirmed; // asked already, on the element this one replaced
      return;
    }
    event.preventDefault();
    confirmFor(holder, function () {
      if (document.body.contains(elt)) {
        event.detail.issueRequest(true);
        return;
      }
      // A live refresh replaced the element while the dialog was open (a row re-rendered by an
      // engine event): htmx sends nothing from a detached element, so act on its replacement.
      var again = replacementOf(elt);
      if (!again) return;
      again.dataset.confirmed = "1";
      htmx.trigger(again, "click");
    });
  });

  function replacementOf(elt) {
    var verbs = ["hx-post", "hx-delete", "hx-put"];
    for (var i = 0; i < verbs.length; i++) {
      var url = elt.getAttribute(verbs[i]);
      if (!url) continue;
      var found = document.querySelectorAll("[" + verbs[i] + "]");
      for (var j = 0; j < found.length; j++) {
        if (found[j].getAttribute(verbs[i]) === url) return found[j];
      }
    }
    return null;
  }

  document.addEventListener("toast", function (event) {
    toast(event.detail);
  });

  // An expected refusal (409 "container is running", 404, 403…) comes with the server's own toast
  // (dashboard/errors.py sends HX-Trigger: toast). The toast is the handling: tell htmx it is not an
  // error, so it neither logs "Response Status Error Code 409" to the console nor fires responseError.
  // Nothing is swapped (4xx responses never swap; the server also sends HX-Reswap: none).
  // This page shows the server's toasts itself, so an expected refusal (4xx) may come as 200 with
  // X-Berth-Status (dashboard/errors.py): Chromium would log any 4xx response as a console error.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail && event.detail.headers) event.detail.headers["X-Berth-Toasts"] = "1";
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail || {};
    var xhr = detail.xhr;
    if (!detail.isError || !xhr || xhr.status >= 500) return;
    var trigger = xhr.getResponseHeader("HX-Trigger") || "";
    if (trigger.indexOf('"toast"') === -1) return;
    detail.isError = false;
    detail.shouldSwap = false;
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    // The server already sent a toast (dashboard/errors.py): don't show a second, vaguer one.
    var trigger = xhr ? xhr.getResponseHeader("HX-Trigger") || "" : "";
    if (trigger.indexOf("toast") !== -1) return;
    var status = xhr ? xhr.status + " " + (xhr.statusText || "") : "";
    toast({ level: "error", title: "Request failed", message: status.trim() || "The server did not answer" });
  });

  document.addEventListener("htmx:sendError", function () {
    toast({ level: "error", title: "Connection lost", message: "The dashboard could not reach the server." });
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.matches && target.matches("[data-flash]")) flash(target);
  });

  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.matches && target.matches("[data-flash]")) flash(target);
  });

  function flash(el) {
    el.classList.remove("is-flashing");
    void el.offsetWidth; // restart the animation
    el.classList.add("is-flashing");
    el.addEventListener(
      "animationend",
      function () {
        el.classList.remove("is-flashing");
      },
      { once: true },
    );
  }

  // New content (first load and every htmx swap): format times, arm server-rendered toasts.
  document.addEventListener("htmx:load", function (event) {
    updateTimes(event.target);
  });

  document.addEventListener("DOMContentLoaded", function () {
    updateTimes(document);
    var toasts = document.querySelectorAll("[data-toast]");
    for (var i = 0; i < toasts.length; i++) armToast(toasts[i]);
    setInterval(function () {
      updateTimes(document);
    }, 30000);
  });

  window.Berth = { toast: toast, copy: copyText, confirm: confirmFor, updateTimes: updateTimes, flash: flash };
})();
