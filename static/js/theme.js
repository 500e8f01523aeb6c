/* Light, dark or the OS's choice. Loaded in <head> without defer (CSP forbids inline script), so the
 * theme is on <html> before the first paint and a dark page never flashes white.
 *
 * - localStorage "berth-theme": "light" | "dark"; absent means "system" (follow the OS)
 * - <html data-theme="light|dark">       what the CSS uses (berth.css), resolved here
 * - <html data-theme-choice="…">         the stored choice, for the toggle
 * - [data-theme-set="light|dark|system"] buttons that choose (aria-pressed marks the current one)
 * - "berth:theme" on document            fired when the resolved theme changes (charts recolour)
 * Other tabs follow through the storage event.
 */
(function () {
  "use strict";

  var KEY = "berth-theme";
  var CHOICES = { light: true, dark: true, system: true };
  var root = document.documentElement;
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value && CHOICES[value] ? value : "system";
    } catch (e) {
      return "system"; // storage disabled: follow the OS
    }
  }

  function resolve(choice) {
    if (choice === "light" || choice === "dark") return choice;
    return media && media.matches ? "dark" : "light";
  }

  function mark(choice) {
    var buttons = document.querySelectorAll("[data-theme-set]");
    for (var i = 0; i < buttons.length; i++) {
      var on = buttons[i].getAttribute("data-theme-set") === choice;
      buttons[i].setAttribute("aria-pressed", on ? "true" : "false");
    }
  }

  function apply(choice) {
    var theme = resolve(choice);
    var changed = root.getAttribute("data-theme") !== theme;
    root.setAttribute("data-theme", theme);
    root.setAttribute("data-theme-choice", choice);
    mark(choice);
    if (changed) document.dispatchEvent(new CustomEvent("berth:theme", { detail: { theme: theme, choice: choice } }));
  }

  function set(choice) {
    if (!CHOICES[choice]) return;
    try {
      if (choice === "system") window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, choice);
    } catch (e) {
      // Not remembered, but this page still switches.
    }
    apply(choice);
  }

  apply(stored());

  if (media) {
    var follow = function () {
      if (stored() === "system") apply("system");
    };
    if (media.addEventListener) media.addEventListener("change", follow);
    else if (media.addListener) media.addListener(follow);
  }

  window.addEventListener("storage", function (event) {
    if (event.key === KEY || event.key === null) apply(stored());
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    var button = target instanceof Element ? target.closest("[data-theme-set]") : null;
    if (button) set(button.getAttribute("data-theme-set"));
  });

  document.addEventListener("DOMContentLoaded", function () {
    mark(stored());
  });

  window.BerthTheme = { set: set, choice: stored };
})();
