/* Live resource charts for one container: ws/containers/<id>/stats/ (one sample a second, protocol
 * in dashboard/consumers/stats.py), drawn with uPlot over the last WINDOW seconds. */
(function () {
  "use strict";

  var WINDOW = 300;

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

  function init(root) {
    if (!window.uPlot) return;
    var status = root.querySelector("[data-stats-status]");
    var now = {};
    root.querySelectorAll("[data-stat]").forEach(function (el) {
      now[el.getAttribute("data-stat")] = el;
    });
    var blue = colour("--accent", "#2563eb");
    var green = colour("--green", "#17803d");
    var amber = colour("--amber", "#9a6400");
    var red = colour("--red", "#b42318");
    var axisColour = colour("--muted", "#5b6470");
    var grid = colour("--border", "#e1e4e9");

    var data = { t: [], cpu: [], mem: [], limit: [], rx: [], tx: [], br: [], bw: [] };

    function axes(format) {
      return [
        { stroke: axisColour, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        {
          stroke: axisColour,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          size: 70,
          values: function (u, values) {
            return values.map(format);
          },
        },
      ];
    }

    function chart(name, series, format) {
      var el = root.querySelector('[data-chart="' + name + '"]');
      var opts = {
        width: Math.max(el.clientWidth, 200),
        height: 170,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max || 0, name === "cpu" ? 5 : 1)]; } } },
        axes: axes(format),
        series: [{}].concat(series),
      };
      var plot = new window.uPlot(opts, [[]].concat(series.map(function () { return []; })), el);
      plot.berthEl = el;
      return plot;
    }

    function pct(v) {
      return v === null || v === undefined ? "—" : v.toFixed(0) + " %";
    }
    function rate(v) {
      return bytes(v) + "/s";
    }

    var charts = {
      cpu: chart("cpu", [{ label: "CPU", stroke: blue, width: 2, fill: blue + "22", value: function (u, v) { return pct(v); } }], pct),
      memory: chart("memory", [
        { label: "used", stroke: green, width: 2, value: function (u, v) { return bytes(v); } },
        { label: "limit", stroke: red, width: 1, dash: [4, 4], value: function (u, v) { return bytes(v); } },
      ], bytes),
      net: chart("net", [
        { label: "rx", stroke: blue, width: 2, value: function (u, v) { return rate(v); } },
        { label: "tx", stroke: amber, width: 2, value: function (u, v) { return rate(v); } },
      ], rate),
      block: chart("block", [
        { label: "read", stroke: green, width: 2, value: function (u, v) { return rate(v); } },
        { label: "write", stroke: red, width: 2, value: function (u, v) { return rate(v); } },
      ], rate),
    };

    function push(key, value) {
      data[key].push(value);
      if (data[key].length > WINDOW) data[key].shift();
    }

    function redraw() {
      charts.cpu.setData([data.t, data.cpu]);
      charts.memory.setData([data.t, data.mem, data.limit]);
      charts.net.setData([data.t, data.rx, data.tx]);
      charts.block.setData([data.t, data.br, data.bw]);
    }

    function onSample(s) {
      push("t", s.time);
      push("cpu", s.cpu_percent);
      push("mem", s.memory);
      push("limit", s.memory_limit);
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
    connect();
  }

  function start() {
    document.querySelectorAll("[data-stats]").forEach(init);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
