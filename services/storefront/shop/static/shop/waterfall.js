// Positions the trace waterfall's bars from their data attributes (the page's CSP
// allows no inline style, so the sizes are set here, through the CSSOM).
(function () {
  "use strict";
  document.querySelectorAll(".waterfall .span").forEach(function (bar) {
    bar.style.left = bar.dataset.left + "%";
    bar.style.width = bar.dataset.width + "%";
    bar.style.background = bar.dataset.colour;
  });
  document.querySelectorAll(".waterfall .name").forEach(function (name) {
    name.style.paddingLeft = (Number(name.dataset.depth) * 0.6) + "rem";
  });
  document.querySelectorAll(".swatch").forEach(function (swatch) {
    swatch.style.background = swatch.dataset.colour;
  });
})();
