/* Metrics history charts: the Stats tab (one container) and the overview (the host).
 *
 * Markup: an element with data-history="<JSON URL>" and data-history-kind="container"|"host", holding
 * window buttons (data-window="hour"|"day"|"week"), a status line (data-history-status), the empty
 * state (data-history-empty) and one element per chart (data-history-chart="<name>"). The URL answers
 * metrics.history(…).to_dict() for ?window=…. Charts share their x scale: dragging across one zooms
 * all of them, a double-click resets. Without uPlot nothing is drawn and the status line says so. */
(function () {
  "use strict";

  var HEIGHT = 180;
  var REFRESH_MS = 60000;
  var KB = 1024;
  // Round byte steps (1, 2, 5 × powers of 1024 and of ten within each unit) for the y axes.
  var BYTE_INCRS = (function () {
    var out = [];
    [1, KB, KB * KB, KB * KB * KB, KB * KB * KB * KB].forEach(function (unit) {
      [1, 2, 5, 10, 20, 50, 100, 200, 500].forEach(function (m) {
        out.push(m * unit);
      });
    });
    return out;
  })();

  function bytes(n) {
    if (n === null || n === undefined || isNaN(n)) return "—";
    var units = ["B", "KB", "MB", "GB", "TB"];
    var i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    var digits = Math.abs(n) >= 100 || i === 0 ? 0 : 1;
    return n.toFixed(digits).replace(/\.0$/, "") + " " + units[i];
  }
  function rate(n) {
    return n === null || n === undefined ? "—" : bytes(n) + "/s";
  }
  function pct(n) {
    if (n === null || n === undefined || isNaN(n)) return "—";
    return (n < 10 ? n.toFixed(1).replace(/\.0$/, "") : n.toFixed(0)) + " %";
  }

  function colour(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  // name → {series: [[key, label, colour var, dashed]], format, bytes (round binary ticks)}
  var CHARTS = {
    cpu: { series: [["cpu_percent", "CPU", "--accent", false]], format: pct },
    memory: {
      series: [
        ["memory_bytes", "used", "--green", false],
        ["memory_limit", "limit", "--red", true],
      ],
      format: bytes,
      bytes: true,
    },
    net: {
      series: [
        ["net_rx_bps", "rx", "--accent", false],
        ["net_tx_bps", "tx", "--amber", false],
      ],
      format: rate,
      bytes: true,
    },
    block: {
      series: [
        ["blk_read_bps", "read", "--green", false],
        ["blk_write_bps", "write", "--red", false],
      ],
      format: rate,
      bytes: true,
    },
    host_memory: {
      series: [
        ["memory_bytes", "used", "--green", false],
        ["memory_total", "total", "--red", true],
      ],
      format: bytes,
      bytes: true,
    },
    disk: {
      series: [
        ["disk_free_bytes", "free", "--accent", false],
        ["disk_total_bytes", "total", "--red", true],
      ],
      format: bytes,
      bytes: true,
    },
  };

  function maxOf(values) {
    var best = 0;
    (values || []).forEach(function (v) {
      if (v !== null && v !== undefined && v > best) best = v;
    });
    return best;
  }

  function init(root) {
    var url = root.getAttribute("data-history");
    var status = root.querySelector("[data-history-status]");
    var empty = root.querySelector("[data-history-empty]");
    var grid = root.querySelector("[data-history-charts]");
    var buttons = root.querySelectorAll("[data-window]");
    var charts = {};
    var syncing = false;
    var zoomed = false;
    var windowName = root.getAttribute("data-history-window") || "hour";
    var timer = null;

    function setStatus(text) {
      if (status) status.textContent = text;
    }

    function syncScale(source) {
      if (syncing) return;
      var x = source.scales.x;
      syncing = true;
      Object.keys(charts).forEach(function (name) {
        var other = charts[name];
        if (other !== source) other.setScale("x", { min: x.min, max: x.max });
      });
      syncing = false;
    }

    function build(name, el, data) {
      var spec = CHARTS[name];
      var axis = colour("--muted", "#5b6470");
      var gridColour = colour("--border", "#e1e4e9");
      var series = [{}];
      spec.series.forEach(function (s) {
        var stroke = colour(s[2], "#2563eb");
        var values = data[s[0]] || [];
        // A limit far above the line would flatten it: start with it hidden (the legend toggles it).
        var hideLimit = s[3] && maxOf(values) > 4 * maxOf(data[spec.series[0][0]]);
        series.push({
          label: s[1],
          stroke: stroke,
          width: s[3] ? 1 : 2,
          dash: s[3] ? [4, 4] : undefined,
          fill: s[3] || spec.series.length > 1 ? undefined : stroke + "22",
          show: !hideLimit,
          spanGaps: false,
          value: function (u, v) {
            return spec.format(v);
          },
        });
      });
      var yAxis = {
        stroke: axis,
        grid: { stroke: gridColour, width: 1 },
        ticks: { stroke: gridColour },
        size: 76,
        values: function (u, values) {
          return values.map(spec.format);
        },
      };
      if (spec.bytes) yAxis.incrs = BYTE_INCRS;
      var opts = {
        width: Math.max(el.clientWidth, 220),
        height: HEIGHT,
        legend: { show: true, live: true },
        cursor: { drag: { x: true, y: false, setScale: true }, sync: { key: "berth-history-" + url } },
        scales: {
          x: { time: true },
          y: {
            range: function (u, min, max) {
              var top = Math.max(max || 0, name === "cpu" ? 5 : 1);
              return [0, top * 1.05];
            },
          },
        },
        axes: [{ stroke: axis, grid: { stroke: gridColour, width: 1 }, ticks: { stroke: gridColour } }, yAxis],
        series: series,
        hooks: {
          setScale: [
            function (u, key) {
              if (key !== "x" || syncing) return;
              var times = u.data[0];
              zoomed = times.length > 1 && (u.scales.x.min > times[0] || u.scales.x.max < times[times.length - 1]);
              root.toggleAttribute("data-zoomed", zoomed);
              syncScale(u);
            },
          ],
        },
      };
      var plot = new window.uPlot(opts, columns(name, data), el);
      plot.berthEl = el;
      return plot;
    }

    function columns(name, data) {
      return [data.times || []].concat(
        CHARTS[name].series.map(function (s) {
          return data[s[0]] || [];
        })
      );
    }

    // Stretch the series over the whole window (null ends), so a week with one day of samples is drawn
    // as a week, and a double-click resets the zoom to the window rather than to the samples.
    function padded(data) {
      var times = data.times || [];
      if (times.length < 2 || !data.since) return data;
      var end = Date.now() / 1000;
      var start = end - data.since;
      var step = data.resolution || 10;
      var out = {};
      Object.keys(data).forEach(function (key) {
        out[key] = Array.isArray(data[key]) ? data[key].slice() : data[key];
      });
      var lists = Object.keys(out).filter(function (key) {
        return Array.isArray(out[key]) && key !== "times";
      });
      if (times[0] > start + step) {
        out.times.unshift(start);
        lists.forEach(function (key) {
          out[key].unshift(null);
        });
      }
      if (times[times.length - 1] < end - 2 * step) {
        out.times.push(end);
        lists.forEach(function (key) {
          out[key].push(null);
        });
      }
      return out;
    }

    var lastRaw = null;

    function draw(raw) {
      lastRaw = raw;
      var data = padded(raw);
      var times = raw.times || [];
      var hasData = times.length >= 2;
      if (empty) empty.hidden = hasData;
      if (grid) grid.hidden = !hasData;
      if (!hasData) {
        setStatus("");
        return;
      }
      var resolution = data.resolution ? " · one point per " + duration(data.resolution) : "";
      setStatus("Last " + windowName + resolution + ". Drag across a chart to zoom, double-click to reset.");
      root.querySelectorAll("[data-history-chart]").forEach(function (el) {
        var name = el.getAttribute("data-history-chart");
        if (!CHARTS[name]) return;
        if (charts[name]) {
          charts[name].setData(columns(name, data));
        } else {
          charts[name] = build(name, el, data);
        }
      });
      zoomed = false;
      root.removeAttribute("data-zoomed");
    }

    function duration(seconds) {
      if (seconds < 60) return seconds + " s";
      if (seconds < 3600) return Math.round(seconds / 60) + " min";
      return Math.round(seconds / 3600) + " h";
    }

    function load() {
      clearTimeout(timer);
      root.setAttribute("aria-busy", "true");
      fetch(url + "?window=" + encodeURIComponent(windowName), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          root.setAttribute("data-history-loaded", windowName);
          draw(data);
        })
        .catch(function (error) {
          setStatus("History is not available (" + error.message + ").");
        })
        .finally(function () {
          root.removeAttribute("aria-busy");
          timer = setTimeout(function () {
            if (!zoomed && !document.hidden) load();
            else timer = setTimeout(load, REFRESH_MS);
          }, REFRESH_MS);
        });
    }

    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        windowName = button.getAttribute("data-window");
        buttons.forEach(function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
        load();
      });
    });

    var resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        Object.keys(charts).forEach(function (name) {
          var el = charts[name].berthEl;
          charts[name].setSize({ width: Math.max(el.clientWidth, 220), height: HEIGHT });
        });
      }, 100);
    });

    // Colours are read when a chart is built, so a theme change rebuilds the charts from the last data.
    document.addEventListener("berth:theme", function () {
      Object.keys(charts).forEach(function (name) {
        charts[name].destroy();
        delete charts[name];
      });
      if (lastRaw) draw(lastRaw);
    });

    if (!window.uPlot) {
      setStatus("Charts need uPlot, which did not load.");
      return;
    }
    load();
  }

  function start() {
    document.querySelectorAll("[data-history]").forEach(init);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
