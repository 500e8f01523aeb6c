/* Live resource charts for one container: ws/containers/<id>/stats/ (one sample a second, protocol
 * in dashboard/consumers/stats.py), drawn with uPlot over the last WINDOW seconds.
 * The x axis is seconds before the newest sample ("-60 s" … "now"); the y axes tick only at round
 * values (1-2-5 steps; powers of 1024 for bytes, so "512 KB", "1 MB", never "976.6 KB"). The charts
 * are rebuilt in the new colours when the theme changes (static/js/theme.js's "berth:theme"). */
(function () {
  "use strict";

  var WINDOW = 300;
  var TIME_STEPS = [5, 10, 15, 30, 60, 120, 300];
  var PERCENT_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 2000, 5000];
  // 1-2-5 steps within each binary unit, so every tick reads as a whole number of B, KB, MB, GB, TB.
  var BYTE_STEPS = [];
  [1, 1024, Math.pow(1024, 2), Math.pow(1024, 3), Math.pow(1024, 4)].forEach(function (unit) {
    [1, 2, 5, 10, 20, 50, 100, 200, 500].forEach(function (m) {
      BYTE_STEPS.push(m * unit);
    });
  });

  // The smallest step multiple ≥ value, so the top grid line is a round number too.
  function roundUp(value, incrs) {
    for (var i = 0; i < incrs.length; i++) {
      var step = incrs[i];
      var top = Math.ceil(value / step) * step;
      if (top / step <= 5) return top;
    }
    return value;
  }

  function ago(seconds) {
    var s = Math.round(seconds);
    return s === 0 ? "now" : "\u2212" + Math.abs(s) + " s";
  }

  function bytes(n) {
    if (n === null || n === undefined || isNaN(n)) return "—";
    var units = ["B", "KB", "MB", "GB", "TB"];
    var i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    var digits = i ? 1 : n > 0 && n < 10 ? 1 : 0;
    return n.toFixed(digits).replace(/\.0$/, "") + " " + units[i];
  }

  function colour(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  // The labels each axis drew last, per chart: window.BerthStats.ticks() (tests/e2e/test_polish.py).
  var drawn = {};
  var sampleCount = 0;
  window.BerthStats = {
    ticks: function () {
      return drawn;
    },
    samples: function () {
      return sampleCount;
    },
  };

  function labelled(name, axis, format) {
    return function (u, values) {
      var labels = values.map(format);
      drawn[name] = drawn[name] || {};
      drawn[name][axis] = labels;
      return labels;
    };
  }

  function init(root) {
    if (!window.uPlot) return;
    var status = root.querySelector("[data-stats-status]");
    var now = {};
    root.querySelectorAll("[data-stat]").forEach(function (el) {
      now[el.getAttribute("data-stat")] = el;
    });
    var data = { t: [], cpu: [], mem: [], limit: [], rx: [], tx: [], br: [], bw: [] };
    var charts = {};

    function pct(v) {
      return v === null || v === undefined ? "—" : v.toFixed(0) + " %";
    }
    function rate(v) {
      return bytes(v) + "/s";
    }

    function build() {
      Object.keys(charts).forEach(function (k) {
        charts[k].destroy();
      });
      var blue = colour("--accent", "#2563eb");
      var green = colour("--green", "#17803d");
      var amber = colour("--amber", "#9a6400");
      var red = colour("--red", "#b42318");
      var palette = { axis: colour("--muted", "#5b6470"), grid: colour("--border", "#e1e4e9") };
      charts = {
        cpu: chart("cpu", palette, [{ label: "CPU", stroke: blue, width: 2, fill: blue + "22", value: function (u, v) { return pct(v); } }], pct, PERCENT_STEPS),
        memory: chart("memory", palette, [
          { label: "used", stroke: green, width: 2, value: function (u, v) { return bytes(v); } },
          { label: "limit", stroke: red, width: 1, dash: [4, 4], value: function (u, v) { return bytes(v); } },
        ], bytes, BYTE_STEPS),
        net: chart("net", palette, [
          { label: "rx", stroke: blue, width: 2, value: function (u, v) { return rate(v); } },
          { label: "tx", stroke: amber, width: 2, value: function (u, v) { return rate(v); } },
        ], rate, BYTE_STEPS),
        block: chart("block", palette, [
          { label: "read", stroke: green, width: 2, value: function (u, v) { return rate(v); } },
          { label: "write", stroke: red, width: 2, value: function (u, v) { return rate(v); } },
        ], rate, BYTE_STEPS),
      };
      redraw();
    }

    function chart(name, palette, series, format, steps) {
      var el = root.querySelector('[data-chart="' + name + '"]');
      var opts = {
        width: Math.max(el.clientWidth, 200),
        height: 170,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: {
          // Seconds before the newest sample: the grid stays put and the lines move left.
          x: { time: false, range: [-WINDOW, 0] },
          y: {
            range: function (u, min, max) {
              return [0, roundUp(Math.max(max || 0, name === "cpu" ? 5 : 1), steps)];
            },
          },
        },
        axes: [
          { stroke: palette.axis, grid: { stroke: palette.grid, width: 1 }, ticks: { stroke: palette.grid }, incrs: TIME_STEPS, space: 50, values: labelled(name, "x", ago) },
          {
            stroke: palette.axis,
            grid: { stroke: palette.grid, width: 1 },
            ticks: { stroke: palette.grid },
            size: 70,
            incrs: steps,
            values: labelled(name, "y", format),
          },
        ],
        series: [{ label: "time", value: function (u, v) { return v === null || v === undefined ? "—" : ago(v); } }].concat(series),
      };
      var plot = new window.uPlot(opts, [[]].concat(series.map(function () { return []; })), el);
      plot.berthEl = el;
      return plot;
    }
    function push(key, value) {
      data[key].push(value);
      if (data[key].length > WINDOW) data[key].shift();
    }

    function redraw() {
      if (!charts.cpu) return;
      var last = data.t.length ? data.t[data.t.length - 1] : 0;
      var x = data.t.map(function (t) {
        return t - last;
      });
      charts.cpu.setData([x, data.cpu]);
      charts.memory.setData([x, data.mem, data.limit]);
      charts.net.setData([x, data.rx, data.tx]);
      charts.block.setData([x, data.br, data.bw]);
    }

    function onSample(s) {
      sampleCount++;
      push("t", s.time);
      push("cpu", s.cpu_percent);
      push("mem", s.memory);
      // Without a limit the "limit" is the host's memory: drawing it would flatten the usage line.
      push("limit", s.memory_limited === false ? null : s.memory_limit);
      push("rx", s.net_rx_rate);
      push("tx", s.net_tx_rate);
      push("br", s.block_read_rate);
      push("bw", s.block_write_rate);
      redraw();
      now.cpu.textContent = pct(s.cpu_percent);
      now.memory.textContent = bytes(s.memory);
      now.memory.title = "limit " + bytes(s.memory_limit);
      if (now.limit) now.limit.textContent = "of " + bytes(s.memory_limit);
      now.net.textContent = rate(s.net_rx_rate) + " / " + rate(s.net_tx_rate);
      now.block.textContent = rate(s.block_read_rate) + " / " + rate(s.block_write_rate);
    }

    var socket = null;
    var retry = 1000;
    function connect() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + window.location.host + root.getAttribute("data-ws"));
      socket.onmessage = function (message) {
        var frame;
        try {
          frame = JSON.parse(message.data);
        } catch (e) {
          return;
        }
        if (frame.type === "stats") {
          retry = 1000;
          status.textContent = "Live, one sample a second (last " + WINDOW / 60 + " minutes).";
          onSample(frame);
        } else if (frame.type === "stopped") {
          status.textContent = "The container is not running.";
        }
      };
      socket.onclose = function (event) {
        socket = null;
        if (event.code >= 4400 && event.code < 4500) {
          status.textContent = "Stats are not available (" + event.code + ").";
          return;
        }
        status.textContent = "Connection lost — reconnecting…";
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 15000);
      };
    }

    var resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        Object.keys(charts).forEach(function (k) {
          charts[k].setSize({ width: Math.max(charts[k].berthEl.clientWidth, 200), height: 170 });
        });
      }, 100);
    });
    document.addEventListener("berth:theme", build);
    build();
    connect();
  }

  function start() {
    document.querySelectorAll("[data-stats]").forEach(init);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
