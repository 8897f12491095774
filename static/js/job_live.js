// The job page refreshes its live part (status, steps, metrics) every 2 s while the job is active.
(function () {
  "use strict";
  var box = document.getElementById("job-live");
  if (!box) return;
  function tick() {
    var marker = box.querySelector("[data-active]");
    if (marker && marker.dataset.active !== "1") return;
    fetch(box.dataset.liveUrl, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { box.innerHTML = html; } setTimeout(tick, 2000); })
      .catch(function () { setTimeout(tick, 5000); });
  }
  if (box.dataset.active === "1") setTimeout(tick, 2000);
})();
