// The map: an offline basemap of country borders, one layer of locations with
// one style function from a status to a look, a legend, and labels that make
// room for each other. Leaflet (global `L`) and topojson-client (`topojson`)
// are loaded before this module.

import {
  BORDER, LAND, LABEL_RANK, LOOK, PALETTES, RADIUS, STATUS_TEXT, UNKNOWN,
} from "./theme.js";

// Most labels drawn at once: beyond this the map is a cloud of text anyway.
const MAX_LABELS = 300;
// Label box height and gap from its point, in pixels.
const LABEL_HEIGHT = 15;
const LABEL_GAP = 4;
const LABEL_FONT = "600 12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
// The zoom the map starts at around one point, and at most when fitting.
const FIT_MAX_ZOOM = 10;
// Country names show from this zoom on (below it they would cover the map).
const COUNTRY_LABEL_MIN_ZOOM = 4;
const SVG_NS = "http://www.w3.org/2000/svg";

// Colours: one per actor that is a member of nobody, from its kind's palette;
// members wear their group's.
export class Colours {
  constructor() {
    this.byActor = new Map();
  }
  update(actors) {
    const used = new Map(); // kind -> roots seen, in id order
    const roots = [...new Set(actors.map((a) => rootOf(a, actors)))].sort();
    const colourOfRoot = new Map();
    for (const id of roots) {
      const kind = actors.find((a) => a.id === id)?.kind ?? "other";
      const palette = PALETTES[kind] ?? PALETTES.other;
      const n = used.get(kind) ?? 0;
      used.set(kind, n + 1);
      colourOfRoot.set(id, palette[n % palette.length]);
    }
    for (const a of actors) this.byActor.set(a.id, colourOfRoot.get(rootOf(a, actors)));
  }
  of(actor) {
    return this.byActor.get(actor) ?? UNKNOWN;
  }
}

// Is (x, y) inside the ring of [lon, lat] points? (Ray casting.)
function inRing(x, y, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function rootOf(actor, actors) {
  let a = actor;
  for (let i = 0; i < 16 && a?.member_of; i++) {
    const up = actors.find((x) => x.id === a.member_of);
    if (!up) break;
    a = up;
  }
  return a.id;
}

// SVG patterns for contested places: stripes of each present actor's colour.
// They live in one hidden <svg> of the document; any SVG on the page can use them.
class Hatches {
  constructor() {
    this.svg = document.createElementNS(SVG_NS, "svg");
    this.svg.setAttribute("class", "defs");
    this.svg.setAttribute("aria-hidden", "true");
    this.defs = document.createElementNS(SVG_NS, "defs");
    this.svg.appendChild(this.defs);
    document.body.appendChild(this.svg);
    this.made = new Set();
  }
  fill(present, colours) {
    const ids = [...(present || [])].sort();
    const colourList = ids.length ? ids.map((a) => colours.of(a)) : [UNKNOWN, "#ffffff"];
    const id = `hatch_${ids.join("_") || "none"}_${colourList.join("").replaceAll("#", "")}`;
    if (!this.made.has(id)) {
      const size = 8;
      const p = document.createElementNS(SVG_NS, "pattern");
      p.setAttribute("id", id);
      p.setAttribute("patternUnits", "userSpaceOnUse");
      p.setAttribute("width", size);
      p.setAttribute("height", size);
      p.setAttribute("patternTransform", "rotate(45)");
      const w = size / colourList.length;
      colourList.forEach((c, i) => {
        const r = document.createElementNS(SVG_NS, "rect");
        r.setAttribute("x", i * w);
        r.setAttribute("y", 0);
        r.setAttribute("width", w);
        r.setAttribute("height", size);
        r.setAttribute("fill", c);
        p.appendChild(r);
      });
      this.defs.appendChild(p);
      this.made.add(id);
    }
    return `url(#${id})`;
  }
}

// One style function: from a location's status to how it is drawn.
export function look(loc, colours, hatches) {
  const c = loc.control || {};
  const status = c.status || "unknown";
  let fillColor = UNKNOWN;
  if (status === "controlled") fillColor = colours.of(c.controller);
  if (status === "contested") fillColor = hatches.fill(c.present, colours);
  return {
    ...LOOK[status],
    fillColor,
    dashArray: c.confidence === "claimed" ? LOOK.claimedDash : null,
  };
}

export function describe(loc, actorName) {
  const c = loc.control || {};
  if (c.status === "controlled") return `held by ${actorName(c.controller)}`;
  if (c.status === "contested") return `contested (${(c.present || []).map(actorName).join(", ")})`;
  return STATUS_TEXT.unknown;
}

// The point where a location is drawn: its lat/lon, else its shape's centre.
export function positionOf(loc) {
  if (typeof loc.lat === "number" && typeof loc.lon === "number") return [loc.lat, loc.lon];
  const g = loc.geometry;
  if (g?.type === "Point") return [g.coordinates[1], g.coordinates[0]];
  if (g?.type === "Polygon" || g?.type === "MultiPolygon") {
    const b = L.geoJSON(g).getBounds();
    return b.isValid() ? [b.getCenter().lat, b.getCenter().lng] : null;
  }
  return null;
}

export class MapView {
  constructor(el, { onSelect, actorName }) {
    this.onSelect = onSelect;
    this.actorName = actorName;
    this.colours = new Colours();
    this.hatches = new Hatches();
    this.layers = new Map(); // id -> { layer, loc }
    this.rings = new Map(); // id -> compare ring
    this.selected = null;
    this.fitted = false;
    this.map = L.map(el, {
      zoomSnap: 0.25,
      minZoom: 2,
      maxZoom: 15,
      worldCopyJump: true,
      attributionControl: true,
    }).setView([35, 38], 5);
    this.map.attributionControl.setPrefix(false);
    this.map.attributionControl.addAttribution("Borders: Natural Earth");
    this.map.createPane("basemap").classList.add("basemap-pane");
    this.map.createPane("labels").classList.add("labels-pane");
    this.shapes = L.svg({ pane: "overlayPane" });
    this.points = L.svg({ pane: "markerPane" });
    this.labels = this.map.getPane("labels");
    this.measure = document.createElement("canvas").getContext("2d");
    this.measure.font = LABEL_FONT;
    this.map.on("zoomstart", () => this.labels.classList.add("hidden"));
    this.map.on("zoomend moveend resize", () => this.placeLabels());
    this.legend = L.control({ position: "bottomright" });
    this.legend.onAdd = () => {
      const div = L.DomUtil.create("div", "legend");
      div.setAttribute("aria-label", "Legend");
      L.DomEvent.disableClickPropagation(div);
      return div;
    };
    this.legend.addTo(this.map);
  }

  setBasemap(topology) {
    const land = topojson.feature(topology, topology.objects.countries);
    // A name for each country, at the middle of its largest polygon.
    this.countries = land.features.map((f) => {
      const g = f.geometry;
      const polys = g.type === "MultiPolygon" ? g.coordinates : [g.coordinates];
      const largest = polys.reduce((a, b) => (b[0].length > a[0].length ? b : a));
      return { name: f.properties.name, ring: largest[0], bounds: L.polygon(largest[0].map(([x, y]) => [y, x])).getBounds() };
    });
    this.placeLabels();
    L.geoJSON(land, {
      pane: "basemap",
      renderer: L.canvas({ pane: "basemap" }),
      interactive: false,
      style: { color: BORDER, weight: 0.8, fillColor: LAND, fillOpacity: 1 },
    }).addTo(this.map);
  }

  setActors(actors) {
    this.colours.update(actors);
  }

  // Draw `locations` (a Map id -> location); `changed`: ids that differ from
  // the compared moment (or null outside compare mode).
  render(locations, changed = null) {
    for (const [id, entry] of this.layers) {
      if (!locations.has(id)) {
        entry.layer.remove();
        this.layers.delete(id);
      }
    }
    for (const loc of locations.values()) this.draw(loc);
    for (const [id, ring] of this.rings) {
      if (!changed?.has(id)) {
        ring.remove();
        this.rings.delete(id);
      }
    }
    for (const id of changed || []) {
      const pos = this.layers.get(id) && positionOf(this.layers.get(id).loc);
      if (!pos || this.rings.has(id)) continue;
      const ring = L.circleMarker(pos, {
        ...LOOK.changedRing,
        radius: (RADIUS[this.layers.get(id).loc.kind] ?? 6) + 6,
        renderer: this.points,
        interactive: false,
      }).addTo(this.map);
      ring.getElement().setAttribute("data-changed", id);
      ring.getElement().classList.add("changed-ring");
      this.rings.set(id, ring);
    }
    this.renderLegend(locations, changed);
    if (!this.fitted) this.fit(locations);
    this.placeLabels();
  }

  // Add or restyle one location.
  draw(loc) {
    const style = look(loc, this.colours, this.hatches);
    const entry = this.layers.get(loc.id);
    const shape = loc.geometry && loc.geometry.type !== "Point" ? loc.geometry : null;
    if (entry && !!entry.shape === !!shape) {
      entry.loc = loc;
      entry.layer.setStyle(style);
      this.mark(entry.layer, loc);
      return;
    }
    entry?.layer.remove();
    const pos = positionOf(loc);
    if (!pos) {
      this.layers.delete(loc.id);
      return;
    }
    const layer = shape
      ? L.geoJSON(shape, { style: () => style, renderer: this.shapes })
      : L.circleMarker(pos, { ...style, radius: RADIUS[loc.kind] ?? 6, renderer: this.points });
    layer.on("click", () => this.onSelect(loc.id));
    layer.bindTooltip(() => this.tooltip(loc.id), { sticky: true, direction: "top", className: "hover-tip" });
    layer.addTo(this.map);
    this.layers.set(loc.id, { layer, loc, shape });
    this.mark(layer, loc);
  }

  tooltip(id) {
    const loc = this.layers.get(id)?.loc;
    if (!loc) return "";
    const div = document.createElement("div");
    const b = document.createElement("strong");
    b.textContent = loc.name;
    div.append(b, document.createElement("br"), describe(loc, this.actorName));
    return div;
  }

  // What a test (and a screen reader) can read off the drawn element.
  mark(layer, loc) {
    const els = layer.getElement ? [layer.getElement()] : layer.getLayers().map((l) => l.getElement());
    const c = loc.control || {};
    for (const el of els) {
      if (!el) continue;
      el.setAttribute("data-loc", loc.id);
      el.setAttribute("data-status", c.status || "unknown");
      el.setAttribute("data-controller", c.controller || "");
      el.setAttribute("data-confidence", c.confidence || "");
      el.setAttribute("data-geometry", loc.geometry?.type || "");
      el.classList.toggle("selected", loc.id === this.selected);
    }
  }

  select(id) {
    const prev = this.layers.get(this.selected);
    this.selected = id;
    if (prev) this.mark(prev.layer, prev.loc);
    this.halo?.remove();
    this.halo = null;
    const entry = this.layers.get(id);
    if (entry) {
      this.mark(entry.layer, entry.loc);
      const pos = positionOf(entry.loc);
      this.halo = L.circleMarker(pos, {
        ...LOOK.selectedRing, radius: (RADIUS[entry.loc.kind] ?? 6) + 4, renderer: this.points, interactive: false,
      }).addTo(this.map);
      if (pos && !this.map.getBounds().pad(-0.1).contains(pos)) this.map.panTo(pos);
    }
    this.placeLabels();
  }

  fit(locations) {
    // Shapes count whole, so a city drawn as its outline starts in view.
    const bounds = L.latLngBounds([]);
    for (const loc of locations.values()) {
      if (loc.geometry && loc.geometry.type !== "Point") bounds.extend(L.geoJSON(loc.geometry).getBounds());
      else if (positionOf(loc)) bounds.extend(positionOf(loc));
    }
    if (!bounds.isValid()) return;
    this.fitted = true;
    this.map.fitBounds(bounds.pad(0.15), { maxZoom: FIT_MAX_ZOOM, animate: false });
  }

  renderLegend(locations, changed) {
    const div = this.legend.getContainer();
    div.replaceChildren();
    const shown = new Set();
    let contested = null;
    let claimed = false;
    let unknown = false;
    for (const { loc } of this.layers.values()) {
      const c = loc.control || {};
      if (c.controller) shown.add(c.controller);
      for (const a of c.present || []) shown.add(a);
      if (c.status === "contested") contested ??= c.present;
      if (c.status !== "controlled" && c.status !== "contested") unknown = true;
      if (c.confidence === "claimed") claimed = true;
    }
    const title = L.DomUtil.create("div", "legend-title", div);
    title.textContent = "Forces";
    const roots = new Map();
    for (const actor of [...shown].sort()) {
      const colour = this.colours.of(actor);
      if (!roots.has(colour)) roots.set(colour, []);
      roots.get(colour).push(actor);
    }
    for (const [colour, actors] of roots) {
      const row = this.legendRow(div, colour, actors.map(this.actorName).join(" · "));
      row.dataset.actor = actors.join(" ");
      row.dataset.colour = colour;
    }
    if (!roots.size) this.legendRow(div, null, "none reported yet");
    if (contested) {
      this.legendRow(div, this.hatches.fill(contested, this.colours), "contested (stripes: who is there)")
        .dataset.status = "contested";
    }
    if (unknown) this.legendRow(div, UNKNOWN, "unknown").dataset.status = "unknown";
    if (claimed) this.legendRow(div, "#ffffff", "claimed only (dashed)", LOOK.claimedDash).dataset.status = "claimed";
    if (changed?.size) this.legendRow(div, null, `changed (${changed.size})`, "2 4", true).dataset.status = "changed";
  }

  legendRow(div, fill, text, dash = null, ring = false) {
    const row = L.DomUtil.create("div", "legend-row", div);
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("width", 18);
    svg.setAttribute("height", 18);
    svg.setAttribute("aria-hidden", "true");
    if (fill || ring || dash) {
      const c = document.createElementNS(SVG_NS, "circle");
      c.setAttribute("cx", 9);
      c.setAttribute("cy", 9);
      c.setAttribute("r", ring ? 7 : 6.5);
      c.setAttribute("fill", fill || "none");
      c.setAttribute("stroke", "#1f2937");
      c.setAttribute("stroke-width", ring ? 2 : 1.3);
      if (dash) c.setAttribute("stroke-dasharray", dash);
      svg.appendChild(c);
    }
    const label = document.createElement("span");
    label.textContent = text;
    row.append(svg, label);
    return row;
  }

  // Greedy label placement: by rank, each label takes the first of four spots
  // around its point that overlaps no label already placed; else it is left out
  // (its point and hover tooltip remain).
  placeLabels() {
    const pane = this.labels;
    pane.replaceChildren();
    pane.classList.remove("hidden");
    const view = this.map.getBounds().pad(0.05);
    const items = [];
    for (const { loc } of this.layers.values()) {
      const pos = positionOf(loc);
      if (pos && view.contains(pos)) items.push(loc);
    }
    items.sort((a, b) =>
      (a.id === this.selected ? -1 : 0) - (b.id === this.selected ? -1 : 0)
      || (LABEL_RANK[a.kind] ?? 9) - (LABEL_RANK[b.kind] ?? 9)
      || a.name.localeCompare(b.name));
    const placed = [];
    const overlaps = (r) => placed.some((p) => r.x < p.x + p.w && p.x < r.x + r.w && r.y < p.y + p.h && p.y < r.y + r.h);
    // A label stays inside the map and off the legend and the zoom buttons.
    const origin = this.map.containerPointToLayerPoint([0, 0]);
    const size = this.map.getSize();
    const inside = (r) => r.x >= origin.x && r.y >= origin.y && r.x + r.w <= origin.x + size.x && r.y + r.h <= origin.y + size.y;
    const box = this.map.getContainer().getBoundingClientRect();
    for (const el of this.map.getContainer().querySelectorAll(".leaflet-control")) {
      const r = el.getBoundingClientRect();
      placed.push({ x: origin.x + r.left - box.left, y: origin.y + r.top - box.top, w: r.width, h: r.height });
    }
    // Every drawn point is an obstacle for labels, so a label never hides a dot.
    const dots = items.slice(0, MAX_LABELS * 4).map((loc) => {
      const p = this.map.latLngToLayerPoint(positionOf(loc));
      const r = RADIUS[loc.kind] ?? 6;
      return { x: p.x - r, y: p.y - r, w: 2 * r, h: 2 * r };
    });
    placed.push(...dots);
    let count = 0;
    for (const loc of items) {
      if (count >= MAX_LABELS) break;
      const p = this.map.latLngToLayerPoint(positionOf(loc));
      const r = (RADIUS[loc.kind] ?? 6) + LABEL_GAP;
      const w = Math.ceil(this.measure.measureText(loc.name).width) + 8;
      const h = LABEL_HEIGHT;
      const spots = [
        { x: p.x + r, y: p.y - h / 2 },
        { x: p.x - r - w, y: p.y - h / 2 },
        { x: p.x - w / 2, y: p.y - r - h },
        { x: p.x - w / 2, y: p.y + r },
      ];
      const spot = spots.find((s) => inside({ ...s, w, h }) && !overlaps({ ...s, w, h }));
      if (!spot) continue;
      placed.push({ ...spot, w, h });
      const el = document.createElement("div");
      el.className = `loc-label rank-${LABEL_RANK[loc.kind] ?? 9}`;
      if (loc.id === this.selected) el.classList.add("selected");
      el.dataset.loc = loc.id;
      el.textContent = loc.name;
      L.DomUtil.setPosition(el, L.point(Math.round(spot.x), Math.round(spot.y)));
      pane.appendChild(el);
      count++;
    }
    if (this.map.getZoom() < COUNTRY_LABEL_MIN_ZOOM) return;
    const shown = this.map.getBounds();
    for (const c of this.countries || []) {
      // The middle of the part of the country in view, if that is in the country.
      if (!shown.intersects(c.bounds)) continue;
      const part = L.latLngBounds(
        [Math.max(shown.getSouth(), c.bounds.getSouth()), Math.max(shown.getWest(), c.bounds.getWest())],
        [Math.min(shown.getNorth(), c.bounds.getNorth()), Math.min(shown.getEast(), c.bounds.getEast())],
      ).getCenter();
      if (!inRing(part.lng, part.lat, c.ring)) continue;
      const p = this.map.latLngToLayerPoint(part);
      const w = Math.ceil(this.measure.measureText(c.name).width * 1.25) + 12;
      const r = { x: p.x - w / 2, y: p.y - LABEL_HEIGHT / 2, w, h: LABEL_HEIGHT };
      if (!inside(r) || overlaps(r)) continue;
      placed.push(r);
      const el = document.createElement("div");
      el.className = "country-label";
      el.textContent = c.name;
      L.DomUtil.setPosition(el, L.point(Math.round(r.x), Math.round(r.y)));
      pane.appendChild(el);
    }
  }
}
