// The dashboard: wires the map, the time controls, the panel, the reporter's
// form and the live feed to one view (what the URL holds) and the /v1 API.

import * as api from "./api.js";
import { ReportForm } from "./form.js";
import { MapView, describe } from "./map.js";
import { h, Panel } from "./panel.js";
import { typeLabel } from "./theme.js";
import { Timeline } from "./timeline.js";
import { emptyView, moment, parseHash, toHash, when } from "./view.js";

// Places listed in the side list at once; a filter narrows the rest.
const MAX_LISTED = 150;
// Live developments kept in the side list.
const MAX_FEED = 8;
// How long a toast stays.
const TOAST_MS = 5000;
// Quiet time after a keystroke before the places search asks the server.
const SEARCH_DELAY_MS = 200;

const ATLAS = new URL("../vendor/world-atlas/countries-50m.json", import.meta.url);
const $ = (sel) => document.querySelector(sel);

const state = {
  view: emptyView(),
  actors: new Map(),
  locations: new Map(), // at the view
  compared: null, // Map at the compared moment, in compare mode
  changed: null, // ids that differ between the two
  loading: 0,
  head: 0,
  found: { q: "", ids: new Set() }, // the server's answer to the places search
};

const map = new MapView($("#map"), { onSelect: (id) => select(id), actorName });
const timeline = new Timeline($("#timeline"), (change) => setView(change));
const panel = new Panel($("#panel"), {
  actorName,
  colourOf: (a) => map.colours.of(a),
  select: (id) => select(id),
  view: () => state.view,
  locationName: (id) => state.locations.get(id)?.name ?? id,
  children: (id) => [...state.locations.values()].filter((l) => l.parent === id)
    .sort((a, b) => a.name.localeCompare(b.name)),
});
const form = new ReportForm($("#report"), {
  actors: () => [...state.actors.values()].sort((a, b) => a.name.localeCompare(b.name)),
  locations: () => [...state.locations.values()].sort((a, b) => a.name.localeCompare(b.name)),
  selected: () => state.view.loc,
  toast,
});

function actorName(id) {
  return state.actors.get(id)?.name ?? id ?? "—";
}

// ---------------------------------------------------------------------------
// The view

function setView(change, { push = false, force = false } = {}) {
  const next = { ...state.view, ...change };
  const timeChanged = force
    || ["as_of", "at_seq", "cmp", "cmp_as_of", "cmp_at_seq"].some((k) => next[k] !== state.view[k]);
  state.view = next;
  const hash = `#${toHash(next)}`;
  if (hash !== window.location.hash && !(hash === "#" && !window.location.hash)) {
    history[push ? "pushState" : "replaceState"](null, "", hash === "#" ? window.location.pathname : hash);
  }
  timeline.show(next);
  if (timeChanged) refresh();
  else showPanel(false);
}

function select(id) {
  setView({ loc: id }, { push: true });
  map.select(id);
  showPanel(true);
}

function showPanel(focus) {
  if (state.view.loc) panel.show(state.view.loc, { focus });
  else panel.close();
  document.body.classList.toggle("panel-open", !!state.view.loc);
}

// Fetch what the view shows; a newer request wins over an older one.
async function refresh() {
  const mine = ++state.loading;
  const v = state.view;
  document.body.classList.add("busy");
  try {
    const now = api.get("/v1/locations", { as_of: v.as_of, at_seq: v.at_seq });
    const then = v.cmp ? api.get("/v1/locations", { as_of: v.cmp_as_of, at_seq: v.cmp_at_seq }) : null;
    const [a, b] = await Promise.all([now, then]);
    performance.mark("sitrep:statuses-read");
    if (mine !== state.loading) return;
    state.locations = new Map(a.locations.map((l) => [l.id, l]));
    state.compared = b ? new Map(b.locations.map((l) => [l.id, l])) : null;
    draw();
    showPanel(false);
    banner(null);
  } catch (e) {
    if (mine !== state.loading) return;
    if (e.status === 401 || e.status === 403) return askToken(e);
    banner(`Could not load ${moment(v.as_of, v.at_seq)}: ${e.message}`);
  } finally {
    if (mine === state.loading) document.body.classList.remove("busy");
  }
}

function draw() {
  state.changed = state.compared ? diff(state.compared, state.locations) : null;
  map.render(state.locations, state.changed);
  map.select(state.view.loc);
  drawSummary();
  drawList();
  drawCompare();
}

function key(loc) {
  const c = loc?.control || {};
  return `${c.status || "unknown"}|${c.controller || ""}|${[...(c.present || [])].sort().join(",")}`;
}

function diff(before, after) {
  const changed = new Set();
  for (const [id, loc] of after) if (key(before.get(id)) !== key(loc)) changed.add(id);
  return changed;
}

function drawSummary() {
  const v = state.view;
  const all = [...state.locations.values()];
  const held = all.filter((l) => l.control?.status === "controlled").length;
  const contested = all.filter((l) => l.control?.status === "contested").length;
  $("#summary").textContent = `${moment(v.as_of, v.at_seq)} · ${all.length} places: ${held} held, ${contested} contested`;
  document.title = `sitrep — ${v.as_of ? when(v.as_of) : "now"}`;
}

// A place matches the filter by what the list shows (name, kind, status,
// controller) or by what the server's `?q=` finds (id, any name or alias,
// ignoring Arabic diacritics and tatweel).
function drawList() {
  const typed = $("#places-filter").value.trim();
  const q = typed.toLowerCase();
  const found = state.found.q === typed ? state.found.ids : new Set();
  const all = [...state.locations.values()]
    .filter((l) => !q || found.has(l.id)
      || [l.name, l.id, l.kind, l.control?.status, actorName(l.control?.controller),
        ...Object.values(l.names || {}), ...(l.aliases || [])]
        .some((s) => s && s.toLowerCase().includes(q)))
    .sort((a, b) => a.name.localeCompare(b.name));
  $("#places-list").replaceChildren(...all.slice(0, MAX_LISTED).map((l) => {
    const status = l.control?.status || "unknown";
    const dot = h("span", { class: `dot status-${status}`, "aria-hidden": "true" });
    if (status === "controlled") dot.style.setProperty("--chip", map.colours.of(l.control.controller));
    return h("li", {}, h("button", {
      type: "button", class: "place", "data-loc": l.id, "aria-current": l.id === state.view.loc ? "true" : null,
      onclick: () => select(l.id),
    }, dot, h("span", { class: "place-name" }, l.name),
    h("span", { class: "muted" }, `${l.kind.replaceAll("_", " ")} · ${describe(l, actorName)}`),
    state.changed?.has(l.id) ? h("span", { class: "chip changed" }, "changed") : null));
  }));
  $("#places-more").textContent = all.length > MAX_LISTED
    ? `and ${all.length - MAX_LISTED} more: narrow the filter` : (all.length ? "" : "No place matches.");
}

let searchTimer = null;
function search() {
  drawList();
  clearTimeout(searchTimer);
  const typed = $("#places-filter").value.trim();
  if (!typed) return;
  searchTimer = setTimeout(async () => {
    const v = state.view;
    try {
      const { locations } = await api.get("/v1/locations", { q: typed, as_of: v.as_of, at_seq: v.at_seq });
      if ($("#places-filter").value.trim() !== typed) return;
      state.found = { q: typed, ids: new Set(locations.map((l) => l.id)) };
      drawList();
    } catch (e) {
      banner(`The search failed: ${e.message}`);
    }
  }, SEARCH_DELAY_MS);
}

function drawCompare() {
  const box = $("#compare");
  const v = state.view;
  box.hidden = !v.cmp;
  if (!v.cmp) return;
  $("#compare-between").textContent = `From ${moment(v.cmp_as_of, v.cmp_at_seq)} to ${moment(v.as_of, v.at_seq)}`;
  const items = [...(state.changed || [])].map((id) => {
    const a = state.compared.get(id);
    const b = state.locations.get(id);
    return h("li", { "data-loc": id }, h("button", { type: "button", class: "link", onclick: () => select(id) }, b.name),
      h("span", {}, `: ${a ? describe(a, actorName) : "not yet registered"} → ${describe(b, actorName)}`));
  });
  $("#compare-list").replaceChildren(...(items.length ? items : [h("li", { class: "muted" }, "Nothing changed.")]));
}

// ---------------------------------------------------------------------------
// Live

const feedTimes = [];
function onLiveEvent(ev) {
  state.head = Math.max(state.head, ev.seq);
  timeline.addEvents([ev]);
  addToFeed(ev);
  const v = state.view;
  // A pinned log position never changes; otherwise the view may have.
  if (v.at_seq) return;
  if (ev.type.startsWith("actor_")) return loadActors().then(draw);
  const ids = new Set([ev.location]);
  const parent = state.locations.get(ev.location)?.parent;
  if (parent) ids.add(parent);
  if (ev.type === "location_registered" && ev.data?.parent) ids.add(ev.data.parent);
  for (const id of ids) updateOne(id);
}

async function updateOne(id) {
  const v = state.view;
  try {
    const [loc, then] = await Promise.all([
      api.get(`/v1/locations/${encodeURIComponent(id)}`, { as_of: v.as_of }),
      v.cmp && !v.cmp_at_seq ? api.get(`/v1/locations/${encodeURIComponent(id)}`, { as_of: v.cmp_as_of }) : null,
    ]);
    if (v !== state.view) return;
    state.locations.set(id, loc);
    if (then && state.compared) state.compared.set(id, then);
    draw();
    if (state.view.loc === id) showPanel(false);
  } catch (e) {
    if (e.status !== 404) banner(`Live update of ${id} failed: ${e.message}`);
  }
}

function addToFeed(ev) {
  if (!ev.location) return;
  feedTimes.unshift(ev);
  feedTimes.length = Math.min(feedTimes.length, MAX_FEED);
  $("#feed-empty").hidden = true;
  $("#feed-list").replaceChildren(...feedTimes.map((e) => h("li", {},
    h("button", { type: "button", class: "link", onclick: () => select(e.location) },
      state.locations.get(e.location)?.name ?? e.location),
    h("span", {}, ` ${typeLabel(e.type).toLowerCase()}`),
    h("span", { class: "muted" }, ` · ${e.occurred_at ? when(e.occurred_at, e.occurred_precision) : "reference"} · seq ${e.seq}`))));
}

function setLive(s, status) {
  const el = $("#live");
  el.dataset.state = s;
  el.textContent = { live: "live", reconnecting: "reconnecting…", refused: "no feed", connecting: "connecting" }[s] ?? s;
  // The feed's token stopped working (removed from the server's tokens while
  // the page was open): what the map shows is no longer followed, so say so.
  if (s === "refused") askToken({ status });
}

// ---------------------------------------------------------------------------
// Token, banner, toast

const KEPT = "It is kept in this tab only (session storage) and sent in the Authorization header, never in a URL.";

function askToken(e) {
  const dlg = $("#token-dialog");
  const why = e?.status === 403 ? "The token in use may not read this. Give one with the reader role or more."
    : api.token() ? "The token in use is not accepted (it may have been removed from the server). Give another."
      : "This server asks for a bearer token.";
  $("#token-why").textContent = `${why} ${KEPT}`;
  banner(api.token() ? "The token in use is not accepted: the map is not being updated."
    : "This server needs a token to read the log.", "Enter a token", () => askToken(e));
  if (!dlg.open) {
    // Never offer back a token the server refused.
    $("#token-input").value = "";
    dlg.showModal();
  }
}

function banner(text, action = null, onAction = null) {
  const el = $("#banner");
  el.hidden = !text;
  el.replaceChildren(text || "", action ? h("button", { type: "button", onclick: onAction }, action) : "");
}

let toastTimer = null;
function toast(text) {
  const el = $("#toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), TOAST_MS);
}

// ---------------------------------------------------------------------------
// Start

async function loadActors() {
  const { actors } = await api.get("/v1/actors", { at_seq: state.view.at_seq });
  state.actors = new Map(actors.map((a) => [a.id, a]));
  map.setActors(actors);
}

let stopFeed = null;
async function start() {
  try {
    await loadActors();
  } catch (e) {
    if (e.status === 401 || e.status === 403) return askToken(e);
    banner(`Could not reach the log: ${e.message}`);
    return;
  }
  await refresh();
  if (state.view.loc) map.select(state.view.loc);
  document.documentElement.dataset.firstRender = String(Math.round(performance.now()));
  // The timeline and the feed after the first picture: they read the whole log.
  let last = 0;
  try {
    for await (const page of api.allEvents(0)) {
      timeline.addEvents(page);
      if (page.length) last = page[page.length - 1].seq;
    }
  } catch (e) {
    banner(`Could not read the log's timeline: ${e.message}`);
  }
  state.head = last;
  timeline.show(state.view);
  document.documentElement.dataset.timeline = "ready";
  stopFeed?.();
  stopFeed = api.follow(last, onLiveEvent, setLive);
}

function wire() {
  $("#places-filter").addEventListener("input", search);
  $("#report-open").addEventListener("click", () => form.open());
  $("#token-open").addEventListener("click", () => {
    $("#token-input").value = "";
    $("#token-dialog").showModal();
  });
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    api.setToken($("#token-input").value);
    $("#token-dialog").close();
    banner(null);
    start();
  });
  $("#token-forget").addEventListener("click", () => {
    api.setToken("");
    $("#token-input").value = "";
    toast("Token forgotten for this tab.");
  });
  for (const b of document.querySelectorAll("#token-dialog [data-close]")) {
    b.addEventListener("click", () => $("#token-dialog").close());
  }
  $("#compare-btn").addEventListener("click", () => {
    const v = state.view;
    setView(v.cmp ? { cmp: false, cmp_as_of: null, cmp_at_seq: null }
      : { cmp: true, cmp_as_of: v.as_of, cmp_at_seq: v.at_seq });
  });
  // A link pasted into this tab, or back and forward: the URL is the view.
  const fromUrl = () => {
    setView(parseHash(window.location.hash), { force: true });
    map.select(state.view.loc);
  };
  window.addEventListener("hashchange", fromUrl);
  window.addEventListener("popstate", fromUrl);
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea, dialog")) return;
    if (e.key === "Escape" && state.view.loc) select(null);
    if (e.key === "[") timeline.step(-1);
    if (e.key === "]") timeline.step(1);
  });
}

state.view = parseHash(window.location.hash);
timeline.show(state.view);
wire();
fetch(ATLAS).then((r) => r.json()).then((topology) => {
  map.setBasemap(topology);
  document.documentElement.dataset.basemap = String(Math.round(performance.now()));
}).catch((e) => banner(`The basemap did not load: ${e.message}`));
start();
