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
 * Wrap (remembered, like Timestamps): a line takes as many ROW-high rows as its characters need.
 * The font is monospace, so that count is computed, not measured (one character's width and the
 * view's inner width give the characters per row; the timestamp and source name count on the first
 * row); each item keeps its count, `pre` sums them for scroll offset ↔ line, and each drawn row is
 * given exactly that height (overflow hidden), so the layout matches the model even where tabs or
 * wide characters make the count a little off. Following only walks back from the end.
 *
 * Whatever changes the window under a reader who is not following (an older page, a merged page, a
 * newer page, a width change with Wrap on) keeps the line at the top edge where it was (keepPlace).
 *
 * The merged view reads back too: each source keeps its own top (a cursor, or the time of its oldest
 * line in the window); an older page is asked of every source not yet at its start, and only lines
 * no older than the newest of those pages' oldest lines are merged in (older ones could still have
 * lines of another source between them), so every log is reachable, in time order, to its first line.
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
    var wrapBox = $("[data-logs-wrap]");
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
      src.top = null; // cursor of its oldest line in the window, once a page brought one
      src.done = false; // its oldest line in the window is the first of its log
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
    var placed = -1; // a scroll offset the page set and the browser did not keep yet (-1: none)
    var single = null; // the source whose lines alone fill the window (a merged view's search match)

    // Wrap: item[5] its width in characters, item[6] the layout generation item[7] (its rows) is for.
    var wrap = false;
    var layoutKey = "";
    var layoutGen = 0;
    var charW = 0;
    var availW = 0;
    var leadTs = 0;
    var cols = 1;
    var totalRows = -1; // the window's rows (Wrap on); -1: to be summed
    var pre = null; // pre[i]: rows before line i (Wrap on); null: to be rebuilt
    var WIDE = /[\u1100-\u115f\u2e80-\u303e\u3041-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/g;

    function remembered(key) {
      try {
        return window.localStorage.getItem(key) === "1";
      } catch (e) {
        return false;
      }
    }

    function remember(key, on) {
      try {
        window.localStorage.setItem(key, on ? "1" : "0");
      } catch (e) {
        /* private mode: the choice lasts for this page only */
      }
    }

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
      single = null;
      placed = -1;
      reshaped();
      sources.forEach(function (src) {
        src.lastTs = null;
        src.top = null;
        src.done = false;
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
        if (wrap && totalRows >= 0) totalRows += rowsOf(item);
      }
      pre = null;
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
        if (wrap && totalRows >= 0) totalRows -= rowsIn(lines, 0, drop);
        lines.splice(0, drop);
        if (earlier >= 0) earlier += drop;
        topCursor = null;
        topDone = false;
        sources.forEach(function (src) {
          src.top = null;
          src.done = false;
        });
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

    // ---------- rows (Wrap) ----------
    function widthOf(text) {
      var n = text.length;
      if (/[^\x20-\x7e]/.test(text)) {
        var wide = text.match(WIDE);
        if (wide) n += wide.length; // two columns each
        var tabs = text.split("\t").length - 1;
        n += 7 * tabs; // up to eight columns each: rather a row too many than a cut line
      }
      return n;
    }

    function charsOf(item) {
      var text = item[2];
      if (typeof text === "string") return widthOf(text);
      var n = 0;
      if (Array.isArray(text)) {
        for (var i = 0; i < text.length; i++) if (Array.isArray(text[i])) n += widthOf(String(text[i][0]));
      }
      return n;
    }

    function rowsOf(item) {
      if (item[6] === layoutGen) return item[7];
      if (item[5] === undefined) item[5] = charsOf(item);
      var lead = leadTs + (merged ? sources[item[4]].name.length * charW + 8 : 0);
      var first = Math.max(0, Math.floor((availW - lead) / charW + 0.01));
      var n = item[5];
      item[6] = layoutGen;
      item[7] = n <= first ? 1 : 1 + Math.ceil((n - first) / cols);
      return item[7];
    }

    function rowsIn(items, from, to) {
      if (!wrap) return to - from;
      var n = 0;
      for (var i = from; i < to; i++) n += rowsOf(items[i]);
      return n;
    }

    // The window changed other than at its end: sums are redone when next needed.
    function reshaped() {
      pre = null;
      totalRows = -1;
    }

    function totalOf() {
      if (!wrap) return lines.length;
      if (totalRows < 0) totalRows = rowsIn(lines, 0, lines.length);
      return totalRows;
    }

    function prefix() {
      if (!pre) {
        pre = new Array(lines.length + 1);
        pre[0] = 0;
        for (var i = 0; i < lines.length; i++) pre[i + 1] = pre[i] + rowsOf(lines[i]);
        totalRows = pre[lines.length];
      }
      return pre;
    }

    function rowOf(index) {
      return wrap ? prefix()[index] : index;
    }

    // The line covering visual row r.
    function lineAt(r) {
      if (!lines.length) return 0;
      if (!wrap) return Math.max(0, Math.min(lines.length - 1, r));
      var p = prefix();
      var lo = 0;
      var hi = lines.length - 1;
      while (lo < hi) {
        var mid = (lo + hi + 1) >> 1;
        if (p[mid] <= r) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    }

    // Characters per row from the view's inner width; true when that changed (the rows are redone).
    function widthKey() {
      return view.clientWidth + (view.classList.contains("show-ts") ? "t" : "");
    }

    function measure() {
      var key = widthKey();
      if (key === layoutKey) return false;
      if (!charW) {
        var probe = document.createElement("span");
        probe.className = "log-probe";
        probe.textContent = "0123456789".repeat(8);
        view.appendChild(probe);
        charW = probe.getBoundingClientRect().width / 80 || 7.5;
        view.removeChild(probe);
      }
      layoutKey = key;
      layoutGen++;
      availW = view.clientWidth - 24; // .log-line's padding
      leadTs = view.classList.contains("show-ts") ? 23 * charW + 8 : 0;
      cols = Math.max(1, Math.floor(availW / charW + 0.01));
      reshaped();
      return true;
    }

    // The line at offset px of the list and how many px of it are above that offset.
    function anchorAt(px) {
      var i = lineAt(Math.floor(px / ROW));
      return [i, px - rowOf(i) * ROW];
    }

    // Change the window under a reader who is not following, keeping the line at the top edge (and
    // how far into it the edge cuts) in place. The new scroll offset is set after the rows and
    // padding for it are in the DOM and laid out: set against the old height, it would be clamped.
    function keepPlace(change) {
      var at = lines.length ? anchorAt(view.scrollTop) : null;
      var item = at ? lines[at[0]] : null;
      change();
      reshaped();
      following = false;
      var index = item ? lines.indexOf(item) : -1;
      var want = index >= 0 ? rowOf(index) * ROW + at[1] : view.scrollTop;
      scrollToPx(want);
    }

    function scrollToPx(want) {
      want = Math.max(0, Math.min(want, totalOf() * ROW - viewHeight()));
      shown = [-1, -1];
      render(want);
      void view.scrollHeight; // lay out the new padding before the scroll offset is set
      view.scrollTop = want;
      placed = Math.abs(view.scrollTop - want) < 1 ? -1 : want;
      schedule();
    }

    function render(at) {
      var total = lines.length;
      var height = viewHeight();
      if (wrap && !following && at === undefined && total && layoutKey && widthKey() !== layoutKey) {
        // The width changed under a reader: find their line with the old rows, show it with the new.
        var anchor = anchorAt(view.scrollTop);
        measure();
        scrollToPx(rowOf(anchor[0]) * ROW + Math.min(anchor[1], rowsOf(lines[anchor[0]]) * ROW - 1));
        return;
      }
      if (wrap) measure();
      var rows = totalOf();
      var top = following ? Math.max(0, rows * ROW - height) : at !== undefined ? at : view.scrollTop;
      var first;
      var last;
      var above;
      var below;
      if (!wrap) {
        first = Math.max(0, Math.min(total, Math.floor(top / ROW) - OVERSCAN));
        last = Math.min(total, Math.ceil((top + height) / ROW) + OVERSCAN);
        above = first;
        below = total - last;
      } else if (following) {
        // Walk back from the end: no sums over the window in a flood.
        var need = Math.ceil(height / ROW);
        var seen = 0;
        first = total;
        while (first > 0 && seen < need) seen += rowsOf(lines[--first]);
        for (var k = 0; k < OVERSCAN && first > 0; k++) seen += rowsOf(lines[--first]);
        last = total;
        above = rows - seen;
        below = 0;
      } else {
        var p = prefix();
        first = Math.max(0, lineAt(Math.floor(top / ROW)) - OVERSCAN);
        last = Math.min(total, lineAt(Math.ceil((top + height) / ROW)) + 1 + OVERSCAN);
        above = p[first];
        below = rows - p[last];
      }
      if (pads[0] !== above * ROW || pads[1] !== below * ROW) {
        pads = [above * ROW, below * ROW];
        rowsBox.style.paddingTop = pads[0] + "px";
        rowsBox.style.paddingBottom = pads[1] + "px";
      }
      if (first !== shown[0] || last !== shown[1]) {
        var fragment = document.createDocumentFragment();
        for (var i = first; i < last; i++) fragment.appendChild(row(lines[i]));
        rowsBox.replaceChildren(fragment);
        shown = [first, last];
      }
      if (!following && placed >= 0 && at === undefined && Math.abs(view.scrollTop - placed) >= 1) {
        // A scroll offset the page set was not kept (the browser clamped it to a stale height).
        view.scrollTop = placed;
      }
      if (placed >= 0 && Math.abs(view.scrollTop - placed) < 1) placed = -1;
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
      if (wrap) el.style.height = rowsOf(item) * ROW + "px";
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
      if (loading || topDone || !lines.length) return;
      if (merged && !single) {
        loadOlderMerged();
        return;
      }
      var src = single || sources[0];
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
      getJSON(src.lines + "?" + params + "&limit=" + PAGE)
        .then(function (page) {
          var add = tag(page.lines, src.index);
          keepPlace(function () {
            lines = add.concat(lines);
            topCursor = page.start;
            topDone = !page.more_before;
            if (earlier > 0) earlier = Math.max(0, earlier - add.length);
            cutBottom();
          });
          updateLabels();
        })
        .catch(function (err) {
          setStatus("Earlier lines could not be loaded: " + err.message);
        })
        .finally(function () {
          loading = false;
        });
    }

    // Past MAX_WINDOW after lines came in at the top: the newest leave the window.
    function cutBottom() {
      var cut = lines.length - MAX_WINDOW;
      if (cut <= 0) return;
      var first = lines[lines.length - cut];
      lines.length = MAX_WINDOW;
      if (first[3] && !(merged && !single)) {
        bottomCursor = first[3];
        moreAfter = true;
      } else {
        awayNote = "Reading back: newer lines are not loaded; Follow shows the live end.";
      }
      if (live) held += pending.length;
      pending = [];
      live = false;
    }

    // One older page from every source not at its start, merged into the window by time.
    function loadOlderMerged() {
      var asked = sources.filter(function (src) {
        return !src.done;
      });
      if (!asked.length) return;
      loading = true;
      Promise.all(
        asked.map(function (src) {
          var params;
          if (src.top) {
            params = "before=" + encodeURIComponent(src.top);
          } else {
            // Its oldest line in the window (by time, the window's order) and how many share its millisecond;
            // a source with none there: everything up to the window's first line.
            var t = null;
            var skip = 0;
            for (var i = 0; i < lines.length; i++) {
              if (lines[i][4] !== src.index) continue;
              if (t === null) t = lines[i][0];
              if (lines[i][0] !== t) break;
              skip++;
            }
            params = "before_time=" + encodeURIComponent(t === null ? lines[0][0] : t) + "&skip=" + skip;
          }
          return getJSON(src.lines + "?" + params + "&limit=" + PAGE).then(function (page) {
            return { src: src, page: page };
          });
        })
      )
        .then(function (results) {
          // Lines older than `floor` may still have lines of another source between them: they wait.
          var floor = "";
          results.forEach(function (r) {
            var got = r.page.lines;
            if (r.page.more_before && got.length && got[0][0] > floor) floor = got[0][0];
          });
          var add = [];
          results.forEach(function (r) {
            var got = r.page.lines;
            var from = 0;
            while (from < got.length && got[from][0] < floor) from++;
            if (from < got.length) r.src.top = got[from][3];
            if (from === 0) r.src.done = !r.page.more_before;
            add = add.concat(tag(got.slice(from), r.src.index));
          });
          add.sort(function (a, b) {
            return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
          });
          keepPlace(function () {
            lines = mergeByTime(add, lines);
            topDone = sources.every(function (src) {
              return src.done;
            });
            cutBottom();
          });
          updateLabels();
          return true;
        })
        .catch(function (err) {
          setStatus("Earlier lines could not be loaded: " + err.message);
        })
        .then(function (ok) {
          loading = false;
          // The page may have gone in below the reader (another source's lines between theirs):
          // nothing came above, the view did not move, and no scroll will ask again.
          if (ok && !following && !topDone && view.scrollTop < 40 * ROW) loadOlder();
        });
    }

    // Two time-ordered lists as one; at equal times the older page's lines come first.
    function mergeByTime(a, b) {
      var out = new Array(a.length + b.length);
      var i = 0;
      var j = 0;
      var k = 0;
      while (i < a.length && j < b.length) out[k++] = a[i][0] <= b[j][0] ? a[i++] : b[j++];
      while (i < a.length) out[k++] = a[i++];
      while (j < b.length) out[k++] = b[j++];
      return out;
    }

    function loadNewer() {
      if (loading || !moreAfter || !bottomCursor) return;
      loading = true;
      var src = awaySource;
      getJSON(src.lines + "?after=" + encodeURIComponent(bottomCursor) + "&limit=" + PAGE)
        .then(function (page) {
          var add = tag(page.lines, src.index);
          keepPlace(function () {
            lines = lines.concat(add);
            bottomCursor = page.end;
            moreAfter = page.more_after;
            var drop = lines.length - MAX_WINDOW;
            if (drop > 0) {
              topCursor = lines[drop][3];
              topDone = false;
              lines.splice(0, drop);
            }
          });
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
        single = src;
        reshaped();
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
        scrollToPx(rowOf(at) * ROW - viewHeight() / 2);
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
      placed = -1;
    }
    ["wheel", "touchstart", "pointerdown", "keydown"].forEach(function (name) {
      view.addEventListener(name, touch, { passive: true });
    });

    view.addEventListener("scroll", function () {
      var top = view.scrollTop;
      var atBottom = top + viewHeight() >= totalOf() * ROW - 4;
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

    // Timestamps and Wrap change how many rows a wrapped line takes: the reader's line stays put.
    function relayout(apply) {
      if (following || !lines.length) {
        apply();
        changed();
        return;
      }
      var at = anchorAt(view.scrollTop);
      apply();
      measure();
      reshaped();
      scrollToPx(rowOf(at[0]) * ROW + (at[1] < rowsOf(lines[at[0]]) * ROW ? at[1] : 0));
    }

    function setTimestamps(on) {
      tsBox.checked = on;
      view.classList.toggle("show-ts", on);
    }

    function setWrap(on) {
      wrapBox.checked = on;
      wrap = on;
      view.classList.toggle("is-wrap", on);
      layoutKey = "";
      reshaped();
    }

    tsBox.addEventListener("change", function () {
      remember("berth-logs-timestamps", tsBox.checked);
      relayout(function () {
        setTimestamps(tsBox.checked);
      });
    });
    wrapBox.addEventListener("change", function () {
      remember("berth-logs-wrap", wrapBox.checked);
      relayout(function () {
        setWrap(wrapBox.checked);
      });
    });
    setTimestamps(remembered("berth-logs-timestamps"));
    setWrap(remembered("berth-logs-wrap"));
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
      // [index of the line at offset px of the list, px of it above that offset] (the model's view).
      at: function (px) {
        return anchorAt(px);
      },
      // [time, source name, plain text] of the window's line i (a merged view's order and sources).
      entry: function (i) {
        var item = lines[i];
        return item ? [item[0], sources[item[4]].name, this.line(i)] : null;
      },
      // The visual rows line i takes (1 unless Wrap is on).
      rows: function (i) {
        return wrap ? rowsOf(lines[i]) : 1;
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
