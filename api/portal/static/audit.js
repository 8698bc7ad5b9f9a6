/* The genealogy graph may be wider than the page: start with the object in question in view
 * (the one whose events are listed, else the subject). No data, no requests: layout only. */
(function () {
  "use strict";
  var graph = document.getElementById("graph");
  if (!graph) return;
  var node = graph.querySelector(".node.selected rect") || graph.querySelector(".node.root rect");
  if (!node) return;
  var box = node.getBBox();
  graph.scrollLeft = Math.max(0, box.x + box.width / 2 - graph.clientWidth / 2);
})();
