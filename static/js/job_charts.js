// Chart.js curves of the job page and of the compare page. The first data comes from a
// json_script block (#chart-data, #compare-data); on the job page every htmx poll answer carries
// #chart-update with only the points after the last ones drawn, appended here. No inline script:
// the Content-Security-Policy allows this server's files only.
(function () {
  "use strict";
  if (typeof Chart === "undefined") return;
  var COLORS = ["#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a"];

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function points(rows, column) {
    var out = [];
    rows.forEach(function (row) { if (row[column] !== null) out.push({x: row[0], y: row[column]}); });
    return out;
  }

  function lineChart(canvas, datasets, xLabel) {
    return new Chart(canvas, {
      type: "line",
      data: {datasets: datasets},
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        normalized: true,
        interaction: {mode: "nearest", intersect: false},
        elements: {point: {radius: 0, hitRadius: 6}, line: {borderWidth: 2}},
        scales: {
          x: {type: "linear", title: {display: true, text: xLabel}},
          y: {type: "linear", ticks: {callback: function (v, i, ticks) {
            // Learning rates read better as 5.0e-5 than as 0.00005.
            return Math.abs(v) < 0.01 && v !== 0 ? v.toExponential(1) : Chart.Ticks.formatters.numeric.call(this, v, i, ticks);
          }}}
        },
        plugins: {legend: {display: datasets.length > 1}}
      }
    });
  }

  function dataset(label, data, color, withPoints) {
    return {label: label, data: data, borderColor: color, backgroundColor: color,
            pointRadius: withPoints ? 3 : 0, showLine: true};
  }

  // --- the job page ------------------------------------------------------------------------
  var initial = readJson("chart-data");
  var lossCanvas = document.getElementById("chart-loss");
  if (initial && lossCanvas) {
    var L = initial.labels;
    var loss = lineChart(lossCanvas, [
      dataset(L.train_loss, points(initial.train, 1), COLORS[0], false),
      dataset(L.valid_loss, points(initial.eval, 1), COLORS[1], true)
    ], L.step);
    var metric = lineChart(document.getElementById("chart-metric"), [
      dataset(L.metric, points(initial.eval, 2), COLORS[2], true)
    ], L.step);
    var lr = lineChart(document.getElementById("chart-lr"), [
      dataset(L.learning_rate, points(initial.train, 2), COLORS[3], false)
    ], L.step);

    var append = function (update) {
      if (!update) return;
      loss.data.datasets[0].data.push.apply(loss.data.datasets[0].data, points(update.train, 1));
      loss.data.datasets[1].data.push.apply(loss.data.datasets[1].data, points(update.eval, 1));
      metric.data.datasets[0].data.push.apply(metric.data.datasets[0].data, points(update.eval, 2));
      lr.data.datasets[0].data.push.apply(lr.data.datasets[0].data, points(update.train, 2));
      if (update.train.length || update.eval.length) { loss.update("none"); metric.update("none"); lr.update("none"); }
    };
    document.body.addEventListener("htmx:afterSettle", function (event) {
      var node = event.target && event.target.querySelector && event.target.querySelector("#chart-update");
      if (!node && event.target && event.target.id === "chart-update") node = event.target;
      if (!node || node.dataset.applied) return;
      node.dataset.applied = "1";
      append(JSON.parse(node.textContent));
    });
  }

  // --- the compare page --------------------------------------------------------------------
  var compare = readJson("compare-data");
  if (compare && document.getElementById("compare-train-loss")) {
    var CL = compare.labels;
    var per = function (rows, column, withPoints) {
      return compare.series.map(function (s, i) {
        return dataset(s.job, points(s[rows], column), COLORS[i % COLORS.length], withPoints);
      });
    };
    lineChart(document.getElementById("compare-train-loss"), per("train", 1, false), CL.step);
    lineChart(document.getElementById("compare-valid-loss"), per("eval", 1, true), CL.step);
    lineChart(document.getElementById("compare-metric"), per("eval", 2, true), CL.step);
  }
})();
