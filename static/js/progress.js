/* Berth: uploads with a progress bar, and live job pages. No inline scripts (CSP); text via textContent.
 *
 * <form data-upload>   posted with XHR (Accept: application/json) so the bytes sent can be shown from
 *                      the XHR upload "progress" event. The server answers {"redirect": "/jobs/<id>/"}, or
 *                      400 {"errors": {field: [messages]}} (shown in [data-error-for=field]), or
 *                      {"error": "…"} (shown in [data-upload-error]). Without JS the form posts normally.
 * [data-job="<uuid>"]  opens ws/jobs/<uuid>/ and draws one bar per layer from
 *                      {"type": "job.progress", "progress": {"layers": [{id, done, total, status}], "step",
 *                      "lines"}, "state", "error", "result"} until the job has finished, then links to the
 *                      result or shows the error verbatim. `step` ({step, total, text}) becomes
 *                      "Step 3/7: RUN …"; `result.container` ({name, url}: "Pull and run" from the Run
 *                      form) is linked, and the page goes there once the job has succeeded; `lines` (the latest output lines) fill [data-job-lines], which
 *                      follows the end unless the reader has scrolled up. [data-job-cancel] (a build's
 *                      Cancel form) is disabled once clicked and hidden when the job has finished.
 */
(function () {
  "use strict";

  var FINAL = { succeeded: 1, failed: 1, cancelled: 1 };

  function human(n) {
    n = Number(n) || 0;
    var units = ["B", "kB", "MB", "GB", "TB"];
    var i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i++;
    }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + "\u00a0" + units[i];
  }

  /* ---------- uploads ---------- */
  function setupUpload(form) {
    var box = form.querySelector("[data-upload-progress]");
    var bar = form.querySelector("[data-upload-bar]");
    var text = form.querySelector("[data-upload-text]");
    var percent = form.querySelector("[data-upload-percent]");
    var errorBox = form.querySelector("[data-upload-error]");
    var submit = form.querySelector("[data-upload-submit]");

    function clearErrors() {
      form.querySelectorAll("[data-error-for]").forEach(function (el) {
        el.textContent = "";
      });
      form.querySelectorAll("[aria-invalid]").forEach(function (el) {
        el.removeAttribute("aria-invalid");
      });
      if (errorBox) {
        errorBox.hidden = true;
        errorBox.textContent = "";
      }
    }

    function showError(message) {
      if (errorBox) {
        errorBox.textContent = message;
        errorBox.hidden = false;
      } else if (window.Berth) {
        window.Berth.toast({ level: "error", message: message });
      }
    }

    function finish() {
      if (submit) submit.disabled = false;
      if (box) box.hidden = true;
    }

    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) return; // plain post
      event.preventDefault();
      clearErrors();
      var data = new FormData(form);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      var token = form.querySelector("input[name=csrfmiddlewaretoken]");
      if (token) xhr.setRequestHeader("X-CSRFToken", token.value);
      if (submit) submit.disabled = true;
      if (box) box.hidden = false;
      if (text) text.textContent = "Uploading…";
      if (bar) bar.value = 0;
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.floor((e.loaded / e.total) * 100);
        if (bar) bar.value = pct;
        if (percent) percent.textContent = pct + " % · " + human(e.loaded) + " of " + human(e.total);
      });
      xhr.upload.addEventListener("load", function () {
        if (text) text.textContent = "Uploaded; starting the job…";
        if (bar) bar.value = 100;
      });
      xhr.addEventListener("load", function () {
        var body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (e) {
          body = null;
        }
        if (xhr.status >= 200 && xhr.status < 300 && body && typeof body.redirect === "string" && body.redirect.charAt(0) === "/") {
          window.location.assign(body.redirect);
          return;
        }
        finish();
        if (body && body.errors) {
          Object.keys(body.errors).forEach(function (field) {
            var messages = [].concat(body.errors[field]).join(" ");
            var slot = form.querySelector('[data-error-for="' + CSS.escape(field) + '"]');
            var input = form.querySelector('[name="' + CSS.escape(field) + '"]');
            if (input) input.setAttribute("aria-invalid", "true");
            if (slot) slot.textContent = messages;
            else showError(messages);
          });
        } else if (body && body.error) {
          showError(body.error);
        } else {
          showError("The upload failed: " + xhr.status + " " + (xhr.statusText || ""));
        }
      });
      xhr.addEventListener("error", function () {
        finish();
        showError("The upload was interrupted: the server could not be reached.");
      });
      xhr.send(data);
    });
  }

  /* ---------- job pages ---------- */
  function setupJob(root) {
    var id = root.getAttribute("data-job");
    var list = root.querySelector("[data-job-layers]");
    var stateEl = root.querySelector("[data-job-state]");
    var stepEl = root.querySelector("[data-job-step]");
    var linesEl = root.querySelector("[data-job-lines]");
    var errorEl = root.querySelector("[data-job-error]");
    var resultEl = root.querySelector("[data-job-result]");
    var resultList = root.querySelector("[data-job-result-list]");
    var cancelForm = root.querySelector("[data-job-cancel]");
    var retry = 1000;
    var done = FINAL[root.getAttribute("data-state")] === 1;

    if (cancelForm) {
      cancelForm.addEventListener("submit", function () {
        var button = cancelForm.querySelector("button");
        if (button) {
          // After the request has gone (htmx reads the form first): a second click would only 409.
          window.setTimeout(function () {
            button.disabled = true;
            button.textContent = "Cancelling…";
          }, 0);
        }
      });
    }

    function dropWaiting() {
      var waiting = list.querySelector("[data-job-waiting]");
      if (waiting) waiting.remove();
    }

    if (linesEl && !linesEl.hidden) linesEl.scrollTop = linesEl.scrollHeight; // a reopened page starts at the end

    function drawLines(lines) {
      // Follow the end only if the reader is already there: scrolling up to read must not be undone.
      var atEnd = linesEl.hidden || linesEl.scrollHeight - linesEl.scrollTop - linesEl.clientHeight < 24;
      linesEl.textContent = lines.map(String).join("\n");
      linesEl.hidden = false;
      if (atEnd) linesEl.scrollTop = linesEl.scrollHeight;
    }

    function layerRow(layer) {
      var rows = list.querySelectorAll("[data-layer]");
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].getAttribute("data-layer") === String(layer.id)) return rows[i];
      }
      dropWaiting();
      list.hidden = false;
      var li = document.createElement("li");
      li.className = "job-layer";
      li.setAttribute("data-layer", String(layer.id));
      var idEl = document.createElement("span");
      idEl.className = "job-layer__id mono";
      idEl.textContent = String(layer.id);
      var status = document.createElement("span");
      status.className = "job-layer__status";
      var bar = document.createElement("progress");
      bar.className = "progress";
      var bytes = document.createElement("span");
      bytes.className = "job-layer__bytes num";
      li.append(idEl, status, bar, bytes);
      list.appendChild(li);
      return li;
    }

    function drawLayer(layer) {
      var li = layerRow(layer);
      var total = Number(layer.total) || 0;
      var doneBytes = Number(layer.done) || 0;
      li.querySelector(".job-layer__status").textContent = String(layer.status || "");
      var bar = li.querySelector("progress");
      if (total > 0) {
        bar.max = total;
        bar.value = Math.min(doneBytes, total);
      } else {
        bar.removeAttribute("value"); // indeterminate: the size is unknown
      }
      li.querySelector(".job-layer__bytes").textContent = human(doneBytes) + (total ? " / " + human(total) : "");
    }

    function draw(message) {
      var progress = message.progress || {};
      (progress.layers || []).forEach(drawLayer);
      if (progress.step && stepEl) {
        dropWaiting();
        stepEl.textContent =
          "Step " + Number(progress.step.step) + "/" + Number(progress.step.total) + ": " + String(progress.step.text || "");
      }
      if (progress.lines && progress.lines.length && linesEl) {
        dropWaiting();
        drawLines(progress.lines);
      }
      var state = String(message.state || "");
      if (state && stateEl) {
        stateEl.textContent = state;
        stateEl.className = "badge job-state job-state--" + state.replace(/[^a-z]/g, "");
        root.setAttribute("data-state", state);
      }
      if (message.error && errorEl) {
        errorEl.textContent = String(message.error);
        errorEl.hidden = false;
      }
      var images = (message.result && message.result.images) || [];
      if (images.length && resultEl && resultList) {
        resultList.replaceChildren();
        images.forEach(function (item) {
          var li = document.createElement("li");
          var link = document.createElement("a");
          var url = String(item.url || "");
          if (url.charAt(0) === "/" && url.charAt(1) !== "/") link.href = url;
          var tags = item.tags || [];
          link.textContent = tags.length ? tags.join(", ") : String(item.short_id || item.id || "image");
          var code = document.createElement("code");
          code.className = "mono muted";
          code.textContent = " " + String(item.short_id || "");
          li.append(link, code);
          resultList.appendChild(li);
        });
        resultEl.hidden = false;
      }
      var container = message.result && message.result.container;
      var containerEl = root.querySelector("[data-job-container]");
      if (container && containerEl && state === "succeeded") {
        var containerUrl = String(container.url || "");
        var containerLink = containerEl.querySelector("[data-job-container-link]");
        containerLink.textContent = String(container.name || "");
        if (containerUrl.charAt(0) === "/" && containerUrl.charAt(1) !== "/") {
          containerLink.href = containerUrl;
          // "Pull and run" from the Run form: once it runs, go where a plain Run goes (its logs).
          window.setTimeout(function () {
            window.location.assign(containerUrl);
          }, 1200);
        }
        containerEl.hidden = false;
      }
      if (FINAL[state] === 1) {
        done = true;
        if (cancelForm) cancelForm.hidden = true;
        dropWaiting();
        if (state === "succeeded") {
          list.querySelectorAll("progress").forEach(function (bar) {
            if (!bar.hasAttribute("value")) {
              bar.max = 1;
              bar.value = 1;
            }
          });
        }
        document.dispatchEvent(new CustomEvent("berth:job-done", { detail: { id: id, state: state } }));
      }
    }

    function connect() {
      if (done) return;
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + window.location.host + "/ws/jobs/" + encodeURIComponent(id) + "/");
      socket.addEventListener("open", function () {
        retry = 1000;
      });
      socket.addEventListener("message", function (event) {
        var message;
        try {
          message = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (message && message.type === "job.progress") draw(message);
        if (done) socket.close();
      });
      socket.addEventListener("close", function (event) {
        if (done || event.code === 4401 || event.code === 4403 || event.code === 4404) return;
        window.setTimeout(connect, retry);
        retry = Math.min(retry * 2, 10000);
      });
    }

    connect();
  }

  function init() {
    document.querySelectorAll("form[data-upload]").forEach(setupUpload);
    document.querySelectorAll("[data-job]").forEach(setupJob);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
