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

  // A dashed vertical line at the step whose weights were exported (options.plugins.keptStep.step),
  // labelled at the top, with that step's point ringed on each curve that has one.
  var keptStepPlugin = {
    id: "keptStep",
    afterDatasetsDraw: function (chart, args, opts) {
      if (opts.step === null || opts.step === undefined) return;
      var x = chart.scales.x.getPixelForValue(opts.step), area = chart.chartArea, ctx = chart.ctx;
      if (x < area.left || x > area.right) return;
      ctx.save();
      ctx.strokeStyle = opts.color;
      ctx.lineWidth = 1.5;
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      ctx.moveTo(x, area.top);
      ctx.lineTo(x, area.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      chart.data.datasets.forEach(function (ds) {
        if (!ds.pointRadius) return;
        ds.data.forEach(function (p) {
          if (p.x !== opts.step) return;
          ctx.beginPath();
          ctx.arc(x, chart.scales.y.getPixelForValue(p.y), 6, 0, 2 * Math.PI);
          ctx.stroke();
        });
      });
      if (opts.label) {
        ctx.fillStyle = opts.color;
        ctx.font = "12px sans-serif";
        ctx.textAlign = x > (area.left + area.right) / 2 ? "right" : "left";
        ctx.fillText(opts.label, x + (ctx.textAlign === "right" ? -4 : 4), area.top + 12);
      }
      ctx.restore();
    }
  };

  function lineChart(canvas, datasets, xLabel, kept) {
    return new Chart(canvas, {
      plugins: [keptStepPlugin],
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
        plugins: {legend: {display: datasets.length > 1},
                  keptStep: {step: kept ? kept.step : null, label: kept ? kept.label : "", color: "#212529"}}
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
    var kept = {step: initial.kept_step, label: L.kept_step};
    var loss = lineChart(lossCanvas, [
      dataset(L.train_loss, points(initial.train, 1), COLORS[0], false),
      dataset(L.valid_loss, points(initial.eval, 1), COLORS[1], true)
    ], L.step, kept);
    var metric = lineChart(document.getElementById("chart-metric"), [
      dataset(L.metric, points(initial.eval, 2), COLORS[2], true)
    ], L.step, kept);
    var lr = lineChart(document.getElementById("chart-lr"), [
      dataset(L.learning_rate, points(initial.train, 2), COLORS[3], false)
    ], L.step, kept);

    var append = function (update) {
      if (!update) return;
      loss.data.datasets[0].data.push.apply(loss.data.datasets[0].data, points(update.train, 1));
      loss.data.datasets[1].data.push.apply(loss.data.datasets[1].data, points(update.eval, 1));
      metric.data.datasets[0].data.push.apply(metric.data.datasets[0].data, points(update.eval, 2));
      lr.data.datasets[0].data.push.apply(lr.data.datasets[0].data, points(update.train, 2));
      var keptChanged = update.kept_step !== undefined && update.kept_step !== kept.step;
      if (keptChanged) {
        kept.step = update.kept_step;
        [loss, metric, lr].forEach(function (c) { c.options.plugins.keptStep.step = kept.step; });
      }
      if (update.train.length || update.eval.length || keptChanged) { loss.update("none"); metric.update("none"); lr.update("none"); }
    };
    document.body.addEventListener("htmx:afterSettle", function (event) {
      var node = event.target && event.target.querySelector && event.target.querySelector("#chart-update");
      if (!node && event.target && event.target.id === "chart-update") node = event.target;
      if (!node || node.dataset.applied) return;
      node.dataset.applied = "1";
      append(JSON.parse(node.textContent));
    });
  }

  // --- the budgeted search's trials: one curve per trial and rung, the winner drawn thicker ------
  var search = readJson("search-data");
  var searchLoss = document.getElementById("chart-search-loss");
  if (search && searchLoss) {
    var SL = search.labels;
    var trialSets = function (series, column) {
      return series.map(function (s, i) {
        var ds = dataset(s.label, points(s[column], 1), COLORS[i % COLORS.length], column === "eval");
        ds.borderWidth = s.winner ? 4 : 1.5;
        return ds;
      });
    };
    var sLoss = lineChart(searchLoss, trialSets(search.series, "train"), SL.step);
    var sMetric = lineChart(document.getElementById("chart-search-metric"), trialSets(search.series, "eval"), SL.step);
    [sLoss, sMetric].forEach(function (c) { c.options.plugins.legend.display = true; });
    sLoss.update("none"); sMetric.update("none");
    // Every poll brings all the trials (a few hundred points at most): replace, do not append.
    document.body.addEventListener("htmx:afterSettle", function (event) {
      var node = event.target && event.target.querySelector && event.target.querySelector("#search-update");
      if (!node || node.dataset.applied) return;
      node.dataset.applied = "1";
      var update = JSON.parse(node.textContent);
      sLoss.data.datasets = trialSets(update.series, "train");
      sMetric.data.datasets = trialSets(update.series, "eval");
      sLoss.update("none"); sMetric.update("none");
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
