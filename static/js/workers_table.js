// The workers page refreshes its table every 5 s while the tab is visible.
(function () {
  "use strict";
  var box = document.getElementById("workers-table");
  if (!box) return;
  function refresh() {
    if (document.hidden) return;
    fetch(box.dataset.refreshUrl, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) box.innerHTML = html; })
      .catch(function () { /* the next tick retries */ });
  }
  setInterval(refresh, 5000);
})();
