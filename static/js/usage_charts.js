// The usage page's charts: Chart.js line charts per endpoint and per key, drawn from the page's
// json_script block "usage-data" ({labels, endpoint: {name: {requests, tokens, errors,
// latency_p50_ms, latency_p95_ms}}, key: {...}}).
(function () {
  "use strict";
  var node = document.getElementById("usage-data");
  if (!node || typeof Chart === "undefined") return;
  var data = JSON.parse(node.textContent);
  var palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

  function datasets(by, metric) {
    var groups = data[by] || {};
    var out = [];
    Object.keys(groups).sort().forEach(function (name, i) {
      var color = palette[i % palette.length];
      if (metric === "latency") {
        out.push({label: name + " p50", data: groups[name].latency_p50_ms, borderColor: color, spanGaps: true});
        out.push({label: name + " p95", data: groups[name].latency_p95_ms, borderColor: color,
                  borderDash: [4, 3], spanGaps: true});
      } else {
        out.push({label: name, data: groups[name][metric], borderColor: color, backgroundColor: color});
      }
    });
    return out;
  }

  document.querySelectorAll("canvas[data-usage-chart]").forEach(function (canvas) {
    new Chart(canvas, {
      type: canvas.dataset.metric === "latency" ? "line" : "bar",
      data: {labels: data.labels, datasets: datasets(canvas.dataset.by, canvas.dataset.metric)},
      options: {
        responsive: true,
        // The chart fills its .chart-box (a fixed height), so charts in one grid row line up.
        maintainAspectRatio: false,
        animation: false,
        plugins: {title: {display: true, text: canvas.dataset.title}},
        scales: {
          x: {stacked: canvas.dataset.metric !== "latency"},
          y: {stacked: canvas.dataset.metric !== "latency", beginAtZero: true},
        },
      },
    });
  });
})();
