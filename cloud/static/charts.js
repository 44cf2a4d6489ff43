// Locker health charts: every element with data-chart becomes an Apache ECharts line over a time axis.
// The data comes with the page (no further request); ECharts itself is served from /static/vendor/echarts/.
(function () {
  "use strict";
  if (typeof echarts === "undefined") { return; }
  var en = document.documentElement.lang === "en";
  var charts = [];
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var c = JSON.parse(el.getAttribute("data-chart"));
    var few = c.points.filter(function (p) { return p[1] !== null; }).length < 40;
    var chart = echarts.init(el, null, { renderer: "canvas", locale: en ? "EN" : "ZH" });
    chart.setOption({
      animation: false,
      grid: { left: 8, right: 16, top: 28, bottom: 8, containLabel: true },
      tooltip: {
        trigger: "axis",
        valueFormatter: function (v) { return v === null || v === undefined ? "—" : v + " " + c.unit; }
      },
      xAxis: {
        type: "time", min: c.since, max: c.until,
        axisLabel: { hideOverlap: true, fontSize: 10 }, splitLine: { show: false }
      },
      yAxis: {
        type: "value", scale: true, name: c.unit, nameTextStyle: { fontSize: 10, align: "left" },
        axisLabel: { fontSize: 10 }, minInterval: c.integer ? 1 : 0
      },
      series: [{
        name: c.name, type: "line", data: c.points, showSymbol: few, symbolSize: 4,
        connectNulls: false, lineStyle: { width: 2 }, itemStyle: { color: "#1f6f43" }
      }]
    });
    el.setAttribute("data-drawn", String(c.points.length));
    charts.push(chart);
  });
  window.addEventListener("resize", function () { charts.forEach(function (ch) { ch.resize(); }); });
}());
