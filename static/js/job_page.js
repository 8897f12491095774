// The job page's small behaviours, bound by event delegation so the parts htmx swaps in later
// (the results section when the job ends, a page of misclassified examples) need no set-up:
//   <input data-level-filter="warn">      shows or hides the events of that level;
//   <button data-zoom="1|-1">             zooms the confusion matrix in or out;
//   <table data-sortable> <button.sort>   sorts the table by that column (again: reversed).
(function () {
  "use strict";
  var ZOOMS = ["zoom-0", "zoom-1", "zoom-2", "zoom-3"];

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("[data-level-filter]")) return;
    var list = document.getElementById("event-list");
    if (list) list.classList.toggle("hide-" + box.dataset.levelFilter, !box.checked);
  });

  function zoom(step) {
    var table = document.getElementById("heatmap");
    if (!table) return;
    var now = ZOOMS.findIndex(function (z) { return table.classList.contains(z); });
    var next = Math.max(0, Math.min(ZOOMS.length - 1, (now < 0 ? 2 : now) + step));
    ZOOMS.forEach(function (z) { table.classList.remove(z); });
    table.classList.add(ZOOMS[next]);
  }

  function sortBy(button) {
    var th = button.closest("th");
    var table = button.closest("table");
    var column = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var numeric = button.dataset.sortType === "number";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column], y = b.cells[column];
      var order = numeric
        ? parseFloat(x.dataset.value) - parseFloat(y.dataset.value)
        : x.textContent.trim().localeCompare(y.textContent.trim());
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(th.parentNode.children, function (cell) { cell.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-zoom], table[data-sortable] button.sort") : null;
    if (!target) return;
    if (target.dataset.zoom) zoom(parseInt(target.dataset.zoom, 10));
    else sortBy(target);
  });
})();
