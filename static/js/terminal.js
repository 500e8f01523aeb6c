/* A terminal into a running container: xterm.js over ws/containers/<id>/terminal/ (protocol in
 * dashboard/consumers/terminal.py).
 *
 * Connecting first POSTs (with the CSRF token) for a single-use token, then opens the socket with it.
 * The screen fills the tab (fit add-on) and follows window resizes; each new size is sent to the pty.
 * Typed and pasted input goes out in chunks, waiting while the socket's buffer is full, so pasting
 * thousands of characters works. OSC 52 (clipboard writes) and OSC 8 (hyperlinks) from the container
 * are swallowed: a program in the container must not write the user's clipboard or open pages.
 * Copy on selection, Ctrl+Shift+C / Ctrl+Shift+V.
 */
(function () {
  "use strict";

  var CHUNK = 4096;
  var HIGH_WATER = 256 * 1024;

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function init(root) {
    if (!window.Terminal || !window.FitAddon) return;
    var form = root.querySelector("[data-terminal-form]");
    var screen = root.querySelector("[data-terminal-screen]");
    var state = root.querySelector("[data-terminal-state]");
    var connectButton = root.querySelector("[data-terminal-connect]");
    var disconnectButton = root.querySelector("[data-terminal-disconnect]");
    var choice = root.querySelector("[data-terminal-command]");
    var customField = root.querySelector("[data-terminal-custom-field]");
    var customInput = root.querySelector("[data-terminal-custom]");
    var userField = root.querySelector("[data-terminal-user-field]");

    // Custom shows its command field; Attach (the main process of a -t container) takes no user.
    function showChoice() {
      var value = choice ? choice.value : "";
      if (customField) customField.hidden = value !== "custom";
      if (userField) userField.hidden = value === "attach";
      if (value === "custom" && customInput && document.activeElement === choice) customInput.focus();
    }
    if (choice) choice.addEventListener("change", showChoice);
    showChoice();

    var term = new window.Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 5000,
      theme: { background: "#0d1117", foreground: "#d6dde6" },
    });
    var fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(screen);
    // Swallow clipboard writes and hyperlinks sent by the container (SECURITY.md web checklist 10).
    term.parser.registerOscHandler(52, function () {
      return true;
    });
    term.parser.registerOscHandler(8, function () {
      return true;
    });
    fit.fit();

    var socket = null;
    var outgoing = [];
    var draining = false;
    var exited = false;
    var closedByUser = false;
    var attached = false;

    function setState(text, kind) {
      state.textContent = text;
      state.classList.toggle("is-connected", kind === "connected");
      state.classList.toggle("is-lost", kind === "lost");
    }

    function setConnected(on) {
      connectButton.disabled = on;
      disconnectButton.disabled = !on;
      connectButton.textContent = on ? "Connect" : exited || socket === null ? "Reconnect" : "Connect";
    }

    function sendJson(data) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(data));
    }

    function sendInput(data) {
      for (var i = 0; i < data.length; i += CHUNK) outgoing.push(data.slice(i, i + CHUNK));
      drain();
    }

    function drain() {
      if (draining) return;
      draining = true;
      (function step() {
        while (outgoing.length && socket && socket.readyState === WebSocket.OPEN) {
          if (socket.bufferedAmount > HIGH_WATER) {
            window.setTimeout(step, 20);
            return;
          }
          sendJson({ type: "stdin", data: outgoing.shift() });
        }
        draining = false;
      })();
    }

    function sendSize() {
      sendJson({ type: "resize", rows: term.rows, cols: term.cols });
    }

    term.onData(sendInput);
    term.onResize(sendSize);
    term.onSelectionChange(function () {
      var text = term.getSelection();
      if (text && navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).catch(function () {});
    });
    term.attachCustomKeyEventHandler(function (event) {
      if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
      if (event.code === "KeyC") {
        var text = term.getSelection();
        if (text && navigator.clipboard) navigator.clipboard.writeText(text).catch(function () {});
        return false;
      }
      if (event.code === "KeyV") {
        if (navigator.clipboard && navigator.clipboard.readText) {
          navigator.clipboard.readText().then(function (text) {
            term.paste(text);
          });
        }
        return false;
      }
      return true;
    });

    var resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        fit.fit();
      }, 80);
    });

    function connect() {
      // A new session starts on a clean screen: output of the last one is not mistaken for its own.
      term.reset();
      exited = false;
      closedByUser = false;
      setState("Connecting…");
      connectButton.disabled = true;
      var body = new FormData(form);
      fetch(root.getAttribute("data-token-url"), {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
      })
        .then(function (response) {
          if (response.ok) return response.json();
          // Errors come back as the toast partial; its HX-Trigger header carries the engine's message.
          var message = response.status + " " + response.statusText;
          try {
            message = JSON.parse(response.headers.get("HX-Trigger") || "{}").toast.message || message;
          } catch (e) {
            /* keep the status line */
          }
          throw new Error(message);
        })
        .then(function (grant) {
          var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
          open(scheme + window.location.host + grant.url);
        })
        .catch(function (error) {
          setState("Could not connect: " + error.message, "lost");
          setConnected(false);
        });
    }

    function open(url) {
      socket = new WebSocket(url);
      socket.binaryType = "arraybuffer";
      socket.onmessage = function (message) {
        if (typeof message.data !== "string") {
          term.write(new Uint8Array(message.data));
          return;
        }
        var frame;
        try {
          frame = JSON.parse(message.data);
        } catch (e) {
          return;
        }
        if (frame.type === "ready") {
          attached = !!frame.attached;
          setState(attached ? "Attached to the main process" : "Connected", "connected");
          setConnected(true);
          fit.fit();
          sendSize();
          term.focus();
        } else if (frame.type === "exit") {
          exited = true;
          var code = frame.code === null || frame.code === undefined ? "" : " with code " + frame.code;
          setState(frame.attached ? "The container's main process ended." : "The command exited" + code + ".");
          term.write("\r\n\x1b[2m[session ended]\x1b[0m\r\n");
        } else if (frame.type === "error") {
          setState(String(frame.message || "error"), "lost");
          // A command that could not start says so in the screen too, in words rather than runc's.
          if (frame.notRunnable) term.write("\r\n\x1b[31m" + String(frame.message) + "\x1b[0m\r\n");
        }
      };
      socket.onclose = function (event) {
        socket = null;
        outgoing = [];
        setConnected(false);
        if (exited || closedByUser) return;
        if (event.code === 4403 || event.code === 4401) {
          if (!state.classList.contains("is-lost")) setState("Not allowed (the token was refused or your session ended).", "lost");
        } else if (event.code === 4408) {
          setState("Closed after a long idle time — reconnect.", "lost");
        } else if (!state.classList.contains("is-lost")) {
          setState("Connection lost — reconnect.", "lost");
        }
      };
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!socket) connect();
    });
    disconnectButton.addEventListener("click", function () {
      if (socket) {
        closedByUser = true;
        socket.close(1000);
        setState(attached ? "Detached; the container keeps running." : "Disconnected.");
      }
    });
    window.addEventListener("beforeunload", function () {
      if (socket) socket.close(1000);
    });

    root.berthTerminal = { term: term, fit: fit };
    // Connect straight away only when the container has a shell to offer; otherwise wait for a choice.
    if (root.getAttribute("data-autoconnect") === "1") connect();
  }

  function start() {
    document.querySelectorAll("[data-terminal]").forEach(init);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
