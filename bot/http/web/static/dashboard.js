// Draws every chart on a page from the JSON beside its canvas (no inline script: the
// Content-Security-Policy allows this site's files only). A chart's JSON says its type,
// labels, series and how to write values: "number" (a count), "percent" (0 to 1) or
// "seconds".
(function () {
  "use strict";

  // Eight: a cohort's funnel has eight stages, each series its own colour.
  var PALETTE = [
    "#2f6f9f", "#d08c2f", "#2d7a4f", "#8e5ba8", "#b42318", "#5f7c8a", "#1b9aaa", "#c2417a"
  ];
  var lang = document.documentElement.lang || "en";

  function formatter(scale) {
    if (scale === "percent") {
      var pct = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 });
      return function (v) { return v === null || v === undefined ? "–" : pct.format(v); };
    }
    var num = new Intl.NumberFormat(lang, { maximumFractionDigits: 2 });
    if (scale === "seconds") {
      var unit = new Intl.NumberFormat(lang, { style: "unit", unit: "second", unitDisplay: "short" });
      return function (v) { return v === null || v === undefined ? "–" : unit.format(v); };
    }
    return function (v) { return v === null || v === undefined ? "–" : num.format(v); };
  }

  function config(spec) {
    var format = formatter(spec.scale);
    var valueAxis = spec.horizontal ? "x" : "y";
    var scales = {};
    scales[valueAxis] = {
      beginAtZero: true,
      ticks: { callback: function (v) { return format(v); } },
      grid: { color: "#e4e7eb" }
    };
    if (spec.scale === "percent") {
      scales[valueAxis].max = 1;
    } else if (spec.scale === "number") {
      scales[valueAxis].ticks.precision = 0; // counts: whole steps (no 2.5 cohorts)
    }
    scales[spec.horizontal ? "y" : "x"] = { grid: { display: false } };
    return {
      type: spec.type || "bar",
      data: {
        labels: spec.labels,
        datasets: spec.series.map(function (s, i) {
          var colour = s.colour || PALETTE[i % PALETTE.length];
          return {
            label: s.label,
            data: s.data,
            backgroundColor: colour,
            borderColor: colour,
            borderRadius: 4,
            maxBarThickness: 48
          };
        })
      },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: scales,
        plugins: {
          legend: { display: spec.series.length > 1 },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var value = spec.horizontal ? ctx.parsed.x : ctx.parsed.y;
                return ctx.dataset.label + ": " + format(value);
              }
            }
          }
        }
      }
    };
  }

  function draw() {
    if (typeof Chart === "undefined") {
      return;
    }
    Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
    Chart.defaults.color = "#616e7c";
    var canvases = document.querySelectorAll("canvas[data-chart]");
    Array.prototype.forEach.call(canvases, function (canvas) {
      var source = document.getElementById(canvas.getAttribute("data-chart"));
      if (!source) {
        return;
      }
      new Chart(canvas, config(JSON.parse(source.textContent)));
      canvas.setAttribute("data-drawn", "true");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
