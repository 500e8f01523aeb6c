/* Containers list: row selection and the bulk bar, filter chips, live additions.
 *
 * - [data-select] row checkboxes (form="bulk-form") and [data-select-all]; the bulk bar [data-bulk]
 *   shows when rows are selected, and each bulk button's confirmation lists the selected names.
 * - Selection survives a row being refreshed in place by a live event.
 * - Rows, counts and the table follow engine events through live.js (the live-state model); this
 *   file only keeps the selection across those refreshes.
 * Names are written with textContent / JSON only, never as HTML.
 */
(function () {
  "use strict";

  var selected = new Map(); // id -> name

  function bulkForm() {
    return document.querySelector("[data-bulk]");
  }

  function updateBulk() {
    var form = bulkForm();
    if (!form) return;
    var names = Array.from(selected.values());
    form.hidden = names.length === 0;
    var count = form.querySelector("[data-bulk-count]");
    if (count) count.textContent = names.length + " selected";
    form.querySelectorAll("[data-bulk-action]").forEach(function (button) {
      var action = button.getAttribute("data-bulk-action");
      var verb = action.charAt(0).toUpperCase() + action.slice(1);
      var noun = names.length === 1 ? "container" : names.length + " containers";
      var question = verb + " " + noun + "?";
      if (action === "remove") question += " Running ones are killed first.";
      button.setAttribute("data-confirm", question);
      button.setAttribute("data-confirm-items", JSON.stringify(names));
    });
    var all = document.querySelector("[data-select-all]");
    if (all) {
      var boxes = document.querySelectorAll("[data-select]");
      var checked = document.querySelectorAll("[data-select]:checked");
      all.checked = boxes.length > 0 && checked.length === boxes.length;
      all.indeterminate = checked.length > 0 && checked.length < boxes.length;
    }
  }

  function rowOf(box) {
    return box.closest("tr[data-container]");
  }

  function setSelected(box, on) {
    var row = rowOf(box);
    if (!row) return;
    box.checked = on;
    row.classList.toggle("is-selected", on);
    if (on) selected.set(row.getAttribute("data-container"), row.getAttribute("data-name"));
    else selected.delete(row.getAttribute("data-container"));
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLInputElement)) return;
    if (target.matches("[data-select]")) {
      setSelected(target, target.checked);
      updateBulk();
    } else if (target.matches("[data-select-all]")) {
      document.querySelectorAll("[data-select]").forEach(function (box) {
        setSelected(box, target.checked);
      });
      updateBulk();
    } else if (target.matches(".chip-radio")) {
      document.querySelectorAll(".chip--radio").forEach(function (chip) {
        var radio = chip.querySelector("input");
        chip.classList.toggle("is-active", !!(radio && radio.checked));
      });
      syncBulkFilters();
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target instanceof Element && event.target.matches("#container-search")) syncBulkFilters();
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target instanceof Element && target.closest("[data-bulk-clear]")) {
      document.querySelectorAll("[data-select]").forEach(function (box) {
        setSelected(box, false);
      });
      selected.clear();
      updateBulk();
    }
  });

  function syncBulkFilters() {
    var form = bulkForm();
    if (!form) return;
    var search = document.getElementById("container-search");
    var state = document.querySelector(".chip-radio:checked");
    form.querySelector("[data-bulk-q]").value = search ? search.value : "";
    form.querySelector("[data-bulk-state]").value = state ? state.value : "all";
  }

  // New rows (a live refresh of one row, or a whole new table) keep or reset the selection.
  document.addEventListener("htmx:load", function (event) {
    var el = event.target;
    if (!(el instanceof Element)) return;
    if (el.id === "container-table") {
      // A new table (search, page, a live refresh): keep only selected rows that are still on it.
      selected.forEach(function (_name, id) {
        if (!el.querySelector('tr[data-container="' + id + '"]')) selected.delete(id);
      });
    }
    if (el.matches("[data-select]")) restore(el);
    el.querySelectorAll("[data-select]").forEach(restore);
    updateBulk();
  });

  function restore(box) {
    var row = rowOf(box);
    if (row && selected.has(row.getAttribute("data-container"))) {
      box.checked = true;
      row.classList.add("is-selected");
    }
  }
})();
