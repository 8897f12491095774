// The dataset version page's charts (Chart.js): label distribution (training + validation stacked,
// one bar per label, so 77 Banking77 intents stay readable) and the token-length histogram with the
// tokenizer's limit marked. The numbers come from the page's json_script block.
(function () {
  "use strict";
  var source = document.getElementById("dataset-chart-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var words = data.words || {};
  var TRAIN = "#4c6ef5", VALIDATION = "#fab005", LIMIT = "#c92a2a";

  if (data.labels && document.getElementById("label-chart")) {
    // One row per label: the box grows with the number of labels (CSSOM, not a style attribute).
    var box = document.getElementById("label-chart-box");
    box.style.height = Math.max(160, data.labels.names.length * 20 + 60) + "px";
    new Chart(document.getElementById("label-chart"), {
      type: "bar",
      data: {
        labels: data.labels.names,
        datasets: [
          {label: words.training, data: data.labels.train, backgroundColor: TRAIN},
          {label: words.validation, data: data.labels.validation, backgroundColor: VALIDATION}
        ]
      },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        animation: false,
        scales: {x: {stacked: true, title: {display: true, text: words.rows}}, y: {stacked: true, ticks: {autoSkip: false}}},
        plugins: {legend: {position: "top"}}
      }
    });
  }

  if (data.tokens && document.getElementById("token-chart")) {
    var limitBin = data.tokens.limit_bin;
    // Chart.js has no vertical marker line built in: this small plugin draws the limit's.
    var limitLine = {
      id: "tokenLimit",
      afterDatasetsDraw: function (chart) {
        if (limitBin === null || limitBin === undefined) return;
        var x = chart.scales.x.getPixelForValue(limitBin);
        var ctx = chart.ctx, area = chart.chartArea;
        ctx.save();
        ctx.strokeStyle = LIMIT;
        ctx.lineWidth = 2;
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(x, area.top);
        ctx.lineTo(x, area.bottom);
        ctx.stroke();
        ctx.fillStyle = LIMIT;
        ctx.fillText(words.limit + " " + data.tokens.max_length, Math.min(x + 4, area.right - 90), area.top + 12);
        ctx.restore();
      }
    };
    new Chart(document.getElementById("token-chart"), {
      type: "bar",
      data: {labels: data.tokens.bins, datasets: [{label: words.rows, data: data.tokens.counts, backgroundColor: TRAIN}]},
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: {x: {title: {display: true, text: words.tokens}}, y: {beginAtZero: true, title: {display: true, text: words.rows}}},
        plugins: {legend: {display: false}}
      },
      plugins: [limitLine]
    });
  }
})();
