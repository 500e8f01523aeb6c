/* Live logs as a virtual list: one container's (the Logs tab) or several merged by time (/logs/?c=…).
 *
 * Protocol: ws/containers/<id>/logs/ (dashboard/consumers/logs.py) for the live end; pages and search
 * over the whole log through dashboard/views_logs.py (lines/ and search/, cursors "<inode>-<offset>").
 *
 * Only the rows in sight exist in the DOM (ROW px each; padding stands for the rest), lines
 * that arrive are queued and added once per animation frame, and the page holds at most MAX_WINDOW
 * lines: older ones leave the window at the top and come back in pages from the server when the
 * reader scrolls up, so memory is bounded however long the log is. Search runs on the server over
 * the whole file (From/To bound it) and each match is shown by loading the lines around it; Follow
 * returns to the live end. Pause, search and scrolling touch only a few dozen rows, so they answer
 * at once during a flood.
 *
 * Over 400 lines because the virtual list, the paging, the search and the live sockets share one
 * window of lines and its invariants; split, each part would reach into the others' state.
 *
 * Log text is attacker-controlled: it only ever becomes text nodes (textContent); ANSI colours arrive
 * as [text, classes] pairs whose classes the server took from a whitelist (dashboard/ansi.py), and
 * are checked again here.
 */
(function () {
  "use strict";

  var ROW = 18; // px: .log-line's height in containers.css
  var MAX_WINDOW = 20000;
  var PAGE = 1000;
  var OVERSCAN = 10;
  var CLASS_OK = /^ansi-(?:[bdius]|[fg](?:1[0-5]|[0-9]))$/;

  function fmt(n) {
    return Number(n).toLocaleString("en-US");
  }

  function init(root) {
    var $ = function (sel) {
      return root.querySelector(sel);
    };
    var view = $("[data-logs-view]");
    var rowsBox = document.createElement("div");
    rowsBox.className = "logs__rows";
    view.replaceChildren(rowsBox);
    var status = $("[data-logs-status]");
    var note = $("[data-logs-note]");
    var followButton = $("[data-logs-follow]");
    var tailSelect = $("[data-logs-tail]");
    var tsBox = $("[data-logs-timestamps]");
    var searchBox = $("[data-logs-search]");
    var sinceBox = $("[data-logs-since]");
    var untilBox = $("[data-logs-until]");
    var matchesLabel = $("[data-logs-matches]");
    var sourcesId = root.getAttribute("data-sources");
    var sources = sourcesId
      ? JSON.parse(document.getElementById(sourcesId).textContent)
      : [{ id: root.getAttribute("data-container"), name: "", ws: root.getAttribute("data-ws") }];
    var merged = sources.length > 1;
    sources.forEach(function (src, i) {
      src.index = i;
      src.lines = "/containers/" + src.id + "/logs/lines/";
      src.search = "/containers/" + src.id + "/logs/search/";
      src.socket = null;
      src.lastTs = null;
      src.retry = 1000;
      src.ended = false;
    });

    // The window: items [time, stream, text, cursor or null, source index], oldest first.
    var lines = [];
    var pending = [];
    var following = true;
    var live = true; // the window's bottom is the live end of the log
    var held = 0; // lines that arrived but are not in the window (paused with a full window, or away)
    var earlier = 0; // lines known to exist before the window; -1: some, how many unknown
    var topCursor = null;
    var topDone = false; // the window starts at the start of the log
    var bottomCursor = null;
    var moreAfter = false;
    var loading = false;
    var scheduled = false;
    var shown = [-1, -1];
    var received = 0;
    var query = "";
    var matches = [];
    var current = -1;
    var currentCursor = null;
    var awayNote = "";

    // ---------- the live end ----------
    function setStatus(text) {
      status.textContent = text;
    }

    function url(src, resume) {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var params =
        resume && src.lastTs ? "since=" + encodeURIComponent(src.lastTs) : "tail=" + encodeURIComponent(tailSelect.value);
      return scheme + window.location.host + src.ws + "?" + params;
    }

    function connect(src, resume) {
      if (src.socket) {
        src.socket.onclose = null;
        src.socket.close();
      }
      src.ended = false;
      setStatus(resume ? "Reconnecting…" : "Connecting…");
      var socket = new WebSocket(url(src, resume));
      src.socket = socket;
      socket.onopen = function () {
        src.retry = 1000;
        setStatus("Live");
      };
      socket.onmessage = function (message) {
        var frame;
        try {
          frame = JSON.parse(message.data);
        } catch (e) {
          return;
        }
        if (frame.type === "lines" && Array.isArray(frame.lines) && frame.lines.length) {
          var batch = frame.lines;
          received += batch.length;
          src.lastTs = batch[batch.length - 1][0];
          if (!live) {
            held += batch.length;
            updateLabels();
            return;
          }
          for (var i = 0; i < batch.length; i++) {
            var item = batch[i]; // [time, stream, text] → [time, stream, text, cursor, source], in place
            item[3] = null;
            item[4] = src.index;
            pending.push(item);
          }
          schedule();
        } else if (frame.type === "end") {
          src.ended = true;
          setStatus(
            (merged ? src.name + ": " : "") + "The container is not running: the log ended. It resumes when the container starts."
          );
        } else if (frame.type === "error") {
          setStatus("Error: " + String(frame.message || "unknown"));
        }
      };
      socket.onclose = function (event) {
        if (src.socket === socket) src.socket = null;
        if (src.ended || event.code === 1000) return;
        if (event.code === 4401 || event.code === 4403 || event.code === 4404) {
          setStatus("The log cannot be shown (" + (event.code === 4404 ? "container not found" : "not allowed") + ").");
          return;
        }
        setStatus("Connection lost — reconnecting…");
        window.setTimeout(function () {
          if (!src.socket) connect(src, true);
        }, src.retry);
        src.retry = Math.min(src.retry * 2, 15000);
      };
    }

    function goLive() {
      lines = [];
      pending = [];
      held = 0;
      // With "all", every line before the window was received and dropped, so the count is exact.
      earlier = tailSelect.value === "all" ? 0 : -1;
      topCursor = null;
      topDone = false;
      bottomCursor = null;
      moreAfter = false;
      live = true;
      following = true;
      currentCursor = null;
      awayNote = "";
      sources.forEach(function (src) {
        src.lastTs = null;
        connect(src, false);
      });
      changed();
    }

    // ---------- the window ----------
    function insertByTime(item) {
      var lo = 0;
      var hi = lines.length;
      while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (lines[mid][0] <= item[0]) lo = mid + 1;
        else hi = mid;
      }
      lines.splice(lo, 0, item);
    }

    function append(items) {
      for (var i = 0; i < items.length; i++) {
        var item = items[i];
        if (merged && lines.length && item[0] < lines[lines.length - 1][0]) insertByTime(item);
        else lines.push(item);
      }
    }

    function flush() {
      var add = pending;
      pending = [];
      if (!following && lines.length + add.length > MAX_WINDOW) {
        // Paused with a full window: what the reader looks at stays; the rest waits on the server.
        var room = Math.max(0, MAX_WINDOW - lines.length);
        append(add.slice(0, room));
        held += add.length - room;
        live = false;
        bottomCursor = null;
        moreAfter = false;
        awayNote = "Paused: newer lines are not loaded; Follow shows the live end.";
        return;
      }
      append(add);
      var drop = lines.length - MAX_WINDOW;
      if (drop > 0) {
        lines.splice(0, drop);
        if (earlier >= 0) earlier += drop;
        topCursor = null;
        topDone = false;
      }
    }

    function schedule() {
      if (!scheduled) {
        scheduled = true;
        window.requestAnimationFrame(frame);
      }
    }

    function changed() {
      shown = [-1, -1];
      schedule();
    }

    function frame() {
      scheduled = false;
      if (pending.length) {
        flush();
        shown = [-1, -1];
      }
      render();
      updateLabels();
    }

    var pads = [0, 0];

    function viewHeight() {
      return view.clientHeight;
    }

    function render() {
      var total = lines.length;
      var height = viewHeight();
      var top = following ? Math.max(0, total * ROW - height) : view.scrollTop;
      var first = Math.max(0, Math.min(total, Math.floor(top / ROW) - OVERSCAN));
      var last = Math.min(total, Math.ceil((top + height) / ROW) + OVERSCAN);
      if (pads[0] !== first * ROW || pads[1] !== (total - last) * ROW) {
        pads = [first * ROW, (total - last) * ROW];
        rowsBox.style.paddingTop = pads[0] + "px";
        rowsBox.style.paddingBottom = pads[1] + "px";
      }
      if (first !== shown[0] || last !== shown[1]) {
        var fragment = document.createDocumentFragment();
        for (var i = first; i < last; i++) fragment.appendChild(row(lines[i]));
        rowsBox.replaceChildren(fragment);
        shown = [first, last];
      }
      if (following && view.scrollTop !== top) {
        view.scrollTop = top;
        // A scroll set in the same frame as a new padding is sometimes not kept: check next frame.
        if (view.scrollTop !== top) schedule();
        else window.requestAnimationFrame(function () {
          if (following && view.scrollTop !== top) changed();
        });
      }
    }

    function addText(el, text) {
      if (!query) {
        el.appendChild(document.createTextNode(text));
        return;
      }
      var lower = text.toLowerCase();
      var needle = query.toLowerCase();
      var from = 0;
      var at = lower.indexOf(needle);
      while (at >= 0) {
        el.appendChild(document.createTextNode(text.slice(from, at)));
        var mark = document.createElement("mark");
        mark.className = "log-mark";
        mark.textContent = text.slice(at, at + needle.length);
        el.appendChild(mark);
        from = at + needle.length;
        at = lower.indexOf(needle, from);
      }
      el.appendChild(document.createTextNode(text.slice(from)));
    }

    function row(item) {
      var el = document.createElement("div");
      el.className = item[1] === "stderr" ? "log-line log-line--stderr" : "log-line";
      if (currentCursor && item[3] === currentCursor) el.className += " is-current";
      var ts = document.createElement("span");
      ts.className = "log-ts";
      ts.textContent = String(item[0]).slice(0, 23).replace("T", " ");
      el.appendChild(ts);
      if (merged) {
        var src = document.createElement("span");
        src.className = "log-src log-src--" + (item[4] % 6);
        src.textContent = sources[item[4]].name;
        el.appendChild(src);
      }
      var text = item[2];
      if (typeof text === "string") {
        addText(el, text);
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
            addText(span, String(part[0]));
            el.appendChild(span);
          } else {
            addText(el, String(part[0]));
          }
        }
      }
      return el;
    }

    function updateLabels() {
      if (following) followButton.textContent = "Following";
      else followButton.textContent = held ? "Paused — " + fmt(held) + " new line" + (held === 1 ? "" : "s") : "Paused";
      followButton.setAttribute("aria-pressed", following ? "true" : "false");
      var text;
      if (topDone) text = "Start of the log." + (awayNote ? " " + awayNote : "");
      else if (awayNote) text = awayNote;
      else if (merged) text = "The newest " + fmt(MAX_WINDOW) + " lines at most; open one container's log to read further back.";
      else if (earlier > 0 && live) text = fmt(earlier) + " earlier line" + (earlier === 1 ? "" : "s") + " — scroll up to load them.";
      else if (lines.length) text = "Scroll up for earlier lines.";
      else text = "";
      if (note.textContent !== text) note.textContent = text;
    }

    // ---------- pages from the server ----------
    function getJSON(address) {
      return fetch(address, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.error || body.message || "HTTP " + r.status);
          return body;
        });
      });
    }

    function tag(items, index) {
      return items.map(function (l) {
        return [l[0], l[1], l[2], l[3], index];
      });
    }

    function loadOlder() {
      if (loading || topDone || merged || !lines.length) return;
      var params;
      if (topCursor) {
        params = "before=" + encodeURIComponent(topCursor);
      } else {
        var t = lines[0][0];
        var skip = 0;
        while (skip < lines.length && lines[skip][0] === t) skip++;
        params = "before_time=" + encodeURIComponent(t) + "&skip=" + skip;
      }
      loading = true;
      getJSON(sources[0].lines + "?" + params + "&limit=" + PAGE)
        .then(function (page) {
          var add = tag(page.lines, 0);
          var beforeTop = view.scrollTop;
          lines = add.concat(lines);
          topCursor = page.start;
          topDone = !page.more_before;
          if (earlier > 0) earlier = Math.max(0, earlier - add.length);
          var cut = lines.length - MAX_WINDOW;
          if (cut > 0) {
            var first = lines[lines.length - cut];
            lines.length = MAX_WINDOW;
            if (first[3]) {
              bottomCursor = first[3];
              moreAfter = true;
            } else {
              awayNote = "Reading back: newer lines are not loaded; Follow shows the live end.";
            }
            if (live) held += pending.length;
            pending = [];
            live = false;
          }
          following = false;
          shown = [-1, -1];
          render();
          view.scrollTop = beforeTop + add.length * ROW;
          updateLabels();
        })
        .catch(function (err) {
          setStatus("Earlier lines could not be loaded: " + err.message);
        })
        .finally(function () {
          loading = false;
        });
    }

    function loadNewer() {
      if (loading || !moreAfter || !bottomCursor) return;
      loading = true;
      var src = awaySource;
      getJSON(src.lines + "?after=" + encodeURIComponent(bottomCursor) + "&limit=" + PAGE)
        .then(function (page) {
          var add = tag(page.lines, src.index);
          lines = lines.concat(add);
          bottomCursor = page.end;
          moreAfter = page.more_after;
          var drop = lines.length - MAX_WINDOW;
          if (drop > 0) {
            var beforeTop = view.scrollTop;
            topCursor = lines[drop][3];
            topDone = false;
            lines.splice(0, drop);
            shown = [-1, -1];
            render();
            view.scrollTop = beforeTop - drop * ROW;
          }
          changed();
        })
        .catch(function (err) {
          setStatus("Newer lines could not be loaded: " + err.message);
        })
        .finally(function () {
          loading = false;
        });
    }

    // ---------- search ----------
    var awaySource = sources[0];
    var searchSeq = 0;

    function isoOf(box) {
      if (!box || !box.value) return "";
      var when = new Date(box.value);
      return isNaN(when.getTime()) ? "" : when.toISOString();
    }

    function runSearch() {
      query = searchBox.value;
      matches = [];
      current = -1;
      var seq = ++searchSeq;
      if (!query.trim()) {
        matchesLabel.textContent = "";
        changed();
        return;
      }
      matchesLabel.textContent = "Searching…";
      var params = "q=" + encodeURIComponent(query);
      if (isoOf(sinceBox)) params += "&since=" + encodeURIComponent(isoOf(sinceBox));
      if (isoOf(untilBox)) params += "&until=" + encodeURIComponent(isoOf(untilBox));
      Promise.all(
        sources.map(function (src) {
          return getJSON(src.search + "?" + params).then(function (found) {
            return { src: src, found: found };
          });
        })
      )
        .then(function (results) {
          if (seq !== searchSeq) return;
          var more = false;
          results.forEach(function (r) {
            more = more || !!r.found.next;
            r.found.matches.forEach(function (m) {
              matches.push({ line: m, src: r.src });
            });
          });
          matches.sort(function (a, b) {
            return a.line[0] < b.line[0] ? -1 : a.line[0] > b.line[0] ? 1 : 0;
          });
          matchesLabel.textContent = matches.length
            ? fmt(matches.length) + (more ? "+" : "") + " match" + (matches.length === 1 ? "" : "es")
            : "No matches";
          matchesLabel.setAttribute("data-more", more ? "1" : "0");
          if (matches.length) jump(0);
          else changed();
        })
        .catch(function (err) {
          if (seq === searchSeq) matchesLabel.textContent = "Search failed: " + err.message;
        });
    }

    function jump(index) {
      if (!matches.length) return;
      current = (index + matches.length) % matches.length;
      var match = matches[current];
      var src = match.src;
      var seq = searchSeq;
      following = false;
      updateLabels();
      getJSON(src.lines + "?around=" + encodeURIComponent(match.line[3]) + "&limit=400").then(function (page) {
        if (seq !== searchSeq) return;
        lines = tag(page.lines, src.index);
        pending = [];
        if (live) held = 0;
        live = false;
        awaySource = src;
        topCursor = page.start;
        topDone = !page.more_before;
        bottomCursor = page.end;
        moreAfter = page.more_after;
        earlier = -1;
        currentCursor = match.line[3];
        awayNote =
          "Match " + (current + 1) + " of " + fmt(matches.length) + (merged ? " in " + src.name : "") + " — Follow returns to the live end.";
        var at = 0;
        for (var i = 0; i < lines.length; i++) {
          if (lines[i][3] === currentCursor) {
            at = i;
            break;
          }
        }
        shown = [-1, -1];
        render();
        view.scrollTop = Math.max(0, at * ROW - viewHeight() / 2);
        matchesLabel.textContent =
          current + 1 + " of " + fmt(matches.length) + (matchesLabel.getAttribute("data-more") === "1" ? "+" : "");
        changed();
        updateLabels();
      });
    }

    // ---------- controls ----------
    followButton.addEventListener("click", function () {
      if (following) {
        following = false;
        // Draw the rows for where the view is now, at once: a scroll the browser had not yet
        // applied must not leave the reader looking at padding until the next frame.
        shown = [-1, -1];
        render();
        updateLabels();
        return;
      }
      if (!live) {
        goLive();
        return;
      }
      following = true;
      held = 0;
      awayNote = "";
      changed();
      updateLabels();
    });

    // Only the reader's own scrolling pauses (the page's scrolling while it follows must not).
    var touched = -1e9;
    function touch() {
      touched = performance.now();
    }
    ["wheel", "touchstart", "pointerdown", "keydown"].forEach(function (name) {
      view.addEventListener(name, touch, { passive: true });
    });

    view.addEventListener("scroll", function () {
      var top = view.scrollTop;
      var atBottom = top + viewHeight() >= lines.length * ROW - 4;
      var byReader = performance.now() - touched < 1000;
      if (following && !atBottom && byReader) {
        following = false;
        updateLabels();
      } else if (!following && atBottom && byReader && live && !currentCursor && !pending.length) {
        // Only the reader's own scroll back to the end resumes: a late scroll event from the page's
        // own following (it arrives after a click on Pause) must not undo the pause.
        following = true;
        held = 0;
        updateLabels();
      }
      if (!following && top < 40 * ROW) loadOlder();
      if (!live && atBottom) loadNewer();
      schedule();
    });

    tsBox.addEventListener("change", function () {
      view.classList.toggle("show-ts", tsBox.checked);
    });
    tailSelect.addEventListener("change", goLive);

    var searchTimer = null;
    function later() {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(runSearch, 250);
    }
    searchBox.addEventListener("input", later);
    if (sinceBox) sinceBox.addEventListener("change", later);
    if (untilBox) untilBox.addEventListener("change", later);
    searchBox.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        if (query !== searchBox.value) runSearch();
        else jump(event.shiftKey ? current - 1 : current + 1);
      }
    });
    $("[data-logs-next]").addEventListener("click", function () {
      jump(current + 1);
    });
    $("[data-logs-prev]").addEventListener("click", function () {
      jump(current - 1);
    });

    window.addEventListener("resize", changed);
    // The view's height can change with no window resize (the toolbar wraps, fonts load).
    if (window.ResizeObserver) new ResizeObserver(changed).observe(view);

    // A container started again: follow its new lines.
    document.addEventListener("berth:event", function (event) {
      var data = event.detail || {};
      sources.forEach(function (src) {
        if (data.object_id === src.id && (data.action === "start" || data.action === "restart") && !src.socket) {
          connect(src, true);
        }
      });
    });

    window.addEventListener("beforeunload", function () {
      sources.forEach(function (src) {
        if (src.socket) {
          src.socket.onclose = null;
          src.socket.close();
        }
      });
    });

    root.berthLogs = {
      received: function () {
        return received;
      },
      held: function () {
        return lines.length;
      },
      following: function () {
        return following;
      },
      // The window's line i as plain text (tests and bench/dashboard.py read the window through it).
      line: function (i) {
        var item = lines[i];
        if (!item) return null;
        var text = item[2];
        return typeof text === "string"
          ? text
          : text
              .map(function (part) {
                return String(part[0]);
              })
              .join("");
      },
    };
    goLive();
  }

  function start() {
    document.querySelectorAll("[data-logs]").forEach(init);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
