// The step graph: cytoscape.js with the dagre layout (vendored, see vendor/README.md).
// Nodes are steps coloured by phase; edges go from a dependency to its dependant; finally
// steps sit in a dashed box after the main steps; a fan-out (withItems) shows its count.

export const PHASE_COLOURS = {
  Pending: "#b0b7c3", Running: "#2e86de", Retrying: "#e67e22", PendingApproval: "#8e44ad",
  Queued: "#f1c40f", Succeeded: "#27ae60", Failed: "#c0392b", Skipped: "#7f8c8d",
  Paused: "#8e44ad", Suspended: "#95a5a6",  // flow phases shown as tags
};
export const colour = (phase) => PHASE_COLOURS[phase] || "#b0b7c3";

function label(node) {
  let text = node.id;
  if (node.fanout !== null && node.fanout !== undefined) text += node.fanout ? ` \u00d7${node.fanout}` : " \u00d7n";
  if (node.conditional) text += " ?";
  if (node.attempts > 1) text += ` #${node.attempts}`;
  return text;
}

function elements(graph) {
  const els = [];
  if (graph.nodes.some((n) => n.group === "finally")) {
    els.push({ data: { id: "__finally", label: "finally" }, classes: "group" });
  }
  for (const n of graph.nodes) {
    els.push({
      data: { id: n.id, label: label(n), phase: n.phase, colour: colour(n.phase),
        parent: n.group === "finally" ? "__finally" : undefined },
      classes: [n.kind === "Manual" ? "manual" : "", n.fanout != null ? "fanout" : ""].join(" "),
    });
  }
  for (const e of graph.edges) {
    els.push({ data: { id: `${e.source}->${e.target}`, source: e.source, target: e.target },
      classes: e.kind });
  }
  return els;
}

const STYLE = [
  { selector: "node", style: {
    shape: "round-rectangle", "background-color": "data(colour)", label: "data(label)",
    color: "#fff", "text-valign": "center", "text-halign": "center", "font-size": 12,
    width: (n) => 7 * n.data("label").length + 18, height: 26, padding: "8px", "text-outline-width": 0 } },
  { selector: "node.manual", style: { shape: "hexagon" } },
  { selector: "node.fanout", style: { "border-width": 3, "border-style": "double", "border-color": "#1d2330" } },
  { selector: "node.group", style: {
    "background-color": "#f4f1fa", "background-opacity": 0.6, "border-style": "dashed",
    "border-width": 1, "border-color": "#8e44ad", label: "data(label)", color: "#8e44ad",
    "text-valign": "top", "text-halign": "center", "font-size": 11 } },
  { selector: "node:selected", style: { "border-width": 3, "border-color": "#f39c12" } },
  { selector: "edge", style: {
    width: 1.5, "line-color": "#8a93a6", "target-arrow-color": "#8a93a6",
    "target-arrow-shape": "triangle", "curve-style": "bezier" } },
  { selector: "edge.finally", style: { "line-style": "dashed", "line-color": "#c3b5d6", "target-arrow-color": "#c3b5d6" } },
];

const shape = (graph) => JSON.stringify([graph.nodes.map((n) => [n.id, n.group]), graph.edges]);

// Draw ``graph`` in ``container``; ``onSelect(step)`` when a step is clicked. Returns an
// object whose update(graph) recolours in place (and redraws only if the steps changed).
export function drawGraph(container, graph, onSelect) {
  let drawn = shape(graph);
  const big = graph.nodes.length > 60;
  const layout = { name: "dagre", rankDir: big ? "TB" : "LR", nodeSep: 12, rankSep: big ? 40 : 60,
    edgeSep: 6, fit: true, padding: 20 };
  const cy = cytoscape({ container, elements: elements(graph), style: STYLE, layout,
    minZoom: 0.1, maxZoom: 2.5, autoungrabify: true });
  cy.on("tap", "node", (ev) => { if (!ev.target.hasClass("group")) onSelect(ev.target.id()); });
  return {
    cy,
    update(next) {
      if (shape(next) !== drawn) {
        drawn = shape(next);
        cy.elements().remove();
        cy.add(elements(next));
        cy.layout(layout).run();
        return;
      }
      for (const n of next.nodes) {
        const node = cy.getElementById(n.id);
        node.data({ phase: n.phase, colour: colour(n.phase), label: label(n) });
      }
    },
  };
}
