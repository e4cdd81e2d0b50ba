// The console's live charts: each [data-chart] element is drawn with uPlot from its
// JSON ({data: [[t...], [y...]...], labels: [...]}) and redrawn every 5 seconds.
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#b5470b", "#146c2e", "#7a3fb0", "#a8161b", "#00727a", "#6b6b00", "#5a5a5a"];

  function draw(box, answer) {
    box.textContent = "";
    if (answer.error) {
      var p = document.createElement("p");
      p.className = "bad";
      p.textContent = answer.error;
      box.appendChild(p);
      return;
    }
    if (!answer.data || answer.data[0].length === 0) {
      var empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "No data yet.";
      box.appendChild(empty);
      return;
    }
    var series = [{}].concat(answer.labels.map(function (label, i) {
      return {label: label, stroke: COLOURS[i % COLOURS.length], width: 2};
    }));
    var width = Math.max(box.clientWidth, 240);
    new uPlot({width: width, height: 200, series: series, legend: {live: false}}, answer.data, box);
  }

  function refresh(box) {
    fetch(box.dataset.chart, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (answer) { draw(box, answer); })
      .catch(function () { box.textContent = "The chart could not be loaded."; });
  }

  function start() {
    var boxes = document.querySelectorAll("[data-chart]");
    boxes.forEach(refresh);
    setInterval(function () { boxes.forEach(refresh); }, 5000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
