/* A container's log, live: ws/containers/<id>/logs/ (protocol in dashboard/consumers/logs.py).
 *
 * Lines arrive in batches; they are queued and drawn once per animation frame, and the page keeps at
 * most MAX_LINES line elements (older ones are dropped from the top), so a container writing 100,000
 * lines cannot freeze the page. Log text is attacker-controlled: it only ever becomes text nodes
 * (textContent / createTextNode); ANSI colours arrive as [text, classes] pairs whose classes the server
 * took from a whitelist (dashboard/ansi.py), and are checked again here.
 * Follow / pause (scrolling up pauses too; paused lines are counted), wrap, timestamps, search with
 * highlight and jump, tail size; the socket reconnects (resuming after the last line) when it drops or
 * when the container starts again.
 */
(function () {
  "use strict";

  var MAX_LINES = 5000;
  var MAX_MARKS = 2000;
  var CLASS_OK = /^ansi-(?:[bdius]|[fg](?:1[0-5]|[0-9]))$/;

  function init(root) {
    var view = root.querySelector("[data-logs-view]");
    var status = root.querySelector("[data-logs-status]");
    var followButton = root.querySelector("[data-logs-follow]");
    var tailSelect = root.querySelector("[data-logs-tail]");
    var wrapBox = root.querySelector("[data-logs-wrap]");
    var tsBox = root.querySelector("[data-logs-timestamps]");
    var searchBox = root.querySelector("[data-logs-search]");
    var matchesLabel = root.querySelector("[data-logs-matches]");
    var containerId = root.getAttribute("data-container");

    var socket = null;
    var queue = []; // lines received, not drawn yet
    var held = 0; // lines that arrived while paused (for the counter)
    var skipped = 0; // lines never drawn because newer ones replaced them in the window
    var following = true;
    var ended = false;
    var drawScheduled = false;
    var lastTs = null;
    var retry = 1000;
    var query = "";
    var marks = [];
    var current = -1;
    var received = 0;

    function setStatus(text) {
      status.textContent = text;
    }

    function url(resume) {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var params = resume && lastTs ? "since=" + encodeURIComponent(lastTs) : "tail=" + encodeURIComponent(tailSelect.value);
      return scheme + window.location.host + root.getAttribute("data-ws") + "?" + params;
    }

    function connect(resume) {
      if (socket) {
        socket.onclose = null;
        socket.close();
      }
      ended = false;
      setStatus(resume ? "Reconnecting…" : "Connecting…");
      socket = new WebSocket(url(resume));
      socket.onopen = function () {
        retry = 1000;
        setStatus("Live");
      };
      socket.onmessage = function (message) {
        var frame;
        try {
          frame = JSON.parse(message.data);
        } catch (e) {
          return;
        }
        if (frame.type === "lines" && Array.isArray(frame.lines)) {
          received += frame.lines.length;
          for (var i = 0; i < frame.lines.length; i++) queue.push(frame.lines[i]);
          if (frame.lines.length) lastTs = frame.lines[frame.lines.length - 1][0];
          if (!following) held += frame.lines.length;
          if (queue.length > 2 * MAX_LINES) {
            // Paused through a flood: only the newest MAX_LINES can ever be shown.
            var drop = queue.length - MAX_LINES;
            queue.splice(0, drop);
            skipped += drop;
          }
          schedule();
        } else if (frame.type === "end") {
          ended = true;
          setStatus("The container is not running: the log ended. It resumes when the container starts.");
        } else if (frame.type === "error") {
          setStatus("Error: " + String(frame.message || "unknown"));
        }
      };
      socket.onclose = function (event) {
        socket = null;
        if (ended || event.code === 1000) return;
        if (event.code === 4401 || event.code === 4403 || event.code === 4404) {
          setStatus("The log cannot be shown (" + (event.code === 4404 ? "container not found" : "not allowed") + ").");
          return;
        }
        setStatus("Connection lost — reconnecting…");
        window.setTimeout(function () {
          connect(true);
        }, retry);
        retry = Math.min(retry * 2, 15000);
      };
    }

    function schedule() {
      if (following && !drawScheduled) {
        drawScheduled = true;
        window.requestAnimationFrame(draw);
      }
      updateFollowLabel();
    }

    function lineElement(item) {
      var el = document.createElement("div");
      el.className = item[1] === "stderr" ? "log-line log-line--stderr" : "log-line";
      var ts = document.createElement("span");
      ts.className = "log-ts";
      ts.textContent = String(item[0]).slice(0, 23).replace("T", " ");
      el.appendChild(ts);
      var text = item[2];
      if (typeof text === "string") {
        el.appendChild(document.createTextNode(text));
      } else if (Array.isArray(text)) {
        for (var i = 0; i < text.length; i++) {
          var part = text[i];
          if (!Array.isArray(part)) continue;
          var classes = String(part[1] || "")
            .split(" ")
            .filter(function (c) {
              return CLASS_OK.test(c);
            });
          if (classes.length) {
            var span = document.createElement("span");
            span.className = classes.join(" ");
            span.textContent = String(part[0]);
            el.appendChild(span);
          } else {
            el.appendChild(document.createTextNode(String(part[0])));
          }
        }
      }
      return el;
    }

    function draw() {
      drawScheduled = false;
      if (!queue.length) return;
      var items = queue;
      queue = [];
      if (items.length > MAX_LINES) {
        skipped += items.length - MAX_LINES;
        items = items.slice(items.length - MAX_LINES);
      }
      var fragment = document.createDocumentFragment();
      for (var i = 0; i < items.length; i++) {
        var el = lineElement(items[i]);
        if (query) highlight(el);
        fragment.appendChild(el);
      }
      view.appendChild(fragment);
      trim();
      held = 0;
      if (following) view.scrollTop = view.scrollHeight;
      if (query) refreshMarks();
      updateFollowLabel();
    }

    function trim() {
      var excess = view.childElementCount - MAX_LINES;
      if (excess <= 0) return;
      var range = document.createRange();
      range.setStartBefore(view.firstChild);
      range.setEndAfter(view.children[excess - 1]);
      range.deleteContents();
      skipped += excess;
      var note = view.querySelector(".log-note");
      if (!note) {
        note = document.createElement("div");
        note.className = "log-note";
      }
      note.textContent = skipped + " earlier lines are not shown here (download the log to see them all)";
      view.insertBefore(note, view.firstChild);
    }

    function setFollowing(on) {
      following = on;
      followButton.setAttribute("aria-pressed", on ? "true" : "false");
      if (on) {
        drawScheduled = false;
        schedule();
        draw();
        view.scrollTop = view.scrollHeight;
      }
      updateFollowLabel();
    }

    function updateFollowLabel() {
      if (following) followButton.textContent = "Following";
      else followButton.textContent = held ? "Paused — " + held + " new line" + (held === 1 ? "" : "s") : "Paused";
    }

    followButton.addEventListener("click", function () {
      setFollowing(!following);
    });

    // Scrolling up pauses; scrolling back to the bottom follows again.
    view.addEventListener("scroll", function () {
      var atBottom = view.scrollHeight - view.scrollTop - view.clientHeight < 24;
      if (following && !atBottom) setFollowing(false);
      else if (!following && atBottom && !marks.length) setFollowing(true);
    });

    wrapBox.addEventListener("change", function () {
      view.classList.toggle("is-wrapped", wrapBox.checked);
    });
    tsBox.addEventListener("change", function () {
      view.classList.toggle("show-ts", tsBox.checked);
    });
    tailSelect.addEventListener("change", function () {
      view.replaceChildren();
      queue = [];
      skipped = 0;
      lastTs = null;
      connect(false);
    });

    // ---------- search ----------
    function highlight(el) {
      var needle = query.toLowerCase();
      var walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      var nodes = [];
      while (walker.nextNode()) {
        if (!walker.currentNode.parentNode.classList || !walker.currentNode.parentNode.classList.contains("log-ts")) {
          nodes.push(walker.currentNode);
        }
      }
      nodes.forEach(function (node) {
        var text = node.nodeValue;
        var lower = text.toLowerCase();
        var at = lower.indexOf(needle);
        if (at < 0) return;
        var fragment = document.createDocumentFragment();
        var from = 0;
        while (at >= 0) {
          fragment.appendChild(document.createTextNode(text.slice(from, at)));
          var mark = document.createElement("mark");
          mark.className = "log-mark";
          mark.textContent = text.slice(at, at + needle.length);
          fragment.appendChild(mark);
          from = at + needle.length;
          at = lower.indexOf(needle, from);
        }
        fragment.appendChild(document.createTextNode(text.slice(from)));
        node.parentNode.replaceChild(fragment, node);
      });
    }

    function clearMarks() {
      view.querySelectorAll("mark.log-mark").forEach(function (mark) {
        var parent = mark.parentNode;
        parent.replaceChild(document.createTextNode(mark.textContent), mark);
        parent.normalize();
      });
      marks = [];
      current = -1;
    }

    function refreshMarks() {
      marks = Array.prototype.slice.call(view.querySelectorAll("mark.log-mark"), -MAX_MARKS);
      matchesLabel.textContent = query ? marks.length + " match" + (marks.length === 1 ? "" : "es") : "";
    }

    function runSearch() {
      clearMarks();
      query = searchBox.value;
      if (query) {
        var lines = view.querySelectorAll(".log-line");
        for (var i = 0; i < lines.length; i++) {
          if (lines[i].textContent.toLowerCase().indexOf(query.toLowerCase()) >= 0) highlight(lines[i]);
        }
      }
      refreshMarks();
      if (marks.length) jump(marks.length - 1);
    }

    function jump(index) {
      if (!marks.length) return;
      if (following) setFollowing(false);
      if (current >= 0 && marks[current]) marks[current].classList.remove("is-current");
      current = (index + marks.length) % marks.length;
      marks[current].classList.add("is-current");
      marks[current].scrollIntoView({ block: "center" });
      matchesLabel.textContent = current + 1 + " of " + marks.length;
    }

    var searchTimer = null;
    searchBox.addEventListener("input", function () {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(runSearch, 200);
    });
    searchBox.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        jump(event.shiftKey ? current - 1 : current + 1);
      }
    });
    root.querySelector("[data-logs-next]").addEventListener("click", function () {
      jump(current + 1);
    });
    root.querySelector("[data-logs-prev]").addEventListener("click", function () {
      jump(current - 1);
    });

    // The container started again: follow its new lines.
    document.addEventListener("berth:event", function (event) {
      var data = event.detail || {};
      if (data.object_id === containerId && (data.action === "start" || data.action === "restart") && !socket) {
        connect(true);
      }
    });

    window.addEventListener("beforeunload", function () {
      if (socket) {
        socket.onclose = null;
        socket.close();
      }
    });

    root.berthLogs = {
      received: function () {
        return received;
      },
    };
    connect(false);
  }

  function start() {
    document.querySelectorAll("[data-logs]").forEach(init);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
