// The panel of one location: its status (since, precision, settled), the event
// that changed it and the source behind it, subdivisions, casualties with
// ranges, and its history with retractions struck through.

import * as api from "./api.js";
import {
  CONFIDENCE_TEXT, CREDIBILITY_TEXT, PLACE_PRECISION_TEXT, PRECISION_TEXT, RELIABILITY_TEXT,
  SOURCE_KIND_TEXT, STATUS_TEXT, typeLabel,
} from "./theme.js";
import { moment, when } from "./view.js";

// Build an element: h("p", {class: "x"}, "text", child…). Text is always text
// (never parsed as HTML), so nothing from the log can inject markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export class Panel {
  constructor(root, app) {
    this.root = root;
    this.app = app; // actorName, colourOf, select, locations, view
    this.id = null;
    this.token = 0;
  }

  close() {
    this.id = null;
    this.root.hidden = true;
    this.root.replaceChildren();
  }

  // Show location `id` at the app's current view (and refresh it in place).
  async show(id, { focus = false } = {}) {
    this.id = id;
    const mine = ++this.token;
    const { as_of, at_seq } = this.app.view();
    const point = { as_of, at_seq };
    let loc;
    let history;
    try {
      [loc, history] = await Promise.all([
        api.get(`/v1/locations/${encodeURIComponent(id)}`, point),
        api.get(`/v1/locations/${encodeURIComponent(id)}/events`, { order: "occurred" }),
      ]);
    } catch (e) {
      if (mine !== this.token) return;
      this.root.hidden = false;
      this.root.replaceChildren(this.head(id, id), h("p", { class: "muted" },
        e.status === 404 ? `Not in the log ${moment(as_of, at_seq)}.` : `Could not load: ${e.message}`));
      return;
    }
    if (mine !== this.token) return;
    this.root.hidden = false;
    this.root.replaceChildren(...this.render(loc, history.events, point));
    if (focus) this.root.querySelector("#panel-title")?.focus();
  }

  head(title, id, loc = null) {
    const parent = loc?.parent;
    return h("header", { class: "panel-head" },
      h("div", {},
        h("h2", { id: "panel-title", tabindex: "-1" }, title),
        h("p", { class: "muted kind" },
          loc ? loc.kind.replaceAll("_", " ") : "",
          parent ? [" in ", h("button", { type: "button", class: "link", onclick: () => this.app.select(parent) },
            this.app.locationName(parent))] : "")),
      h("button", { type: "button", class: "icon close", "aria-label": "Close the panel",
        onclick: () => this.app.select(null) }, "✕"));
  }

  render(loc, events, point) {
    const out = [this.head(loc.name, loc.id, loc)];
    const names = loc.names && Object.entries(loc.names).filter(([, n]) => n !== loc.name);
    if (names?.length) {
      out.push(h("p", { class: "names" }, names.map(([lang, n]) =>
        h("span", { lang, dir: "auto", title: languageName(lang) }, n))));
    }
    if (loc.aliases?.length) {
      out.push(h("p", { class: "aliases muted" }, "Also known as ",
        loc.aliases.map((a, i) => [i ? ", " : "", h("span", { dir: "auto" }, a)])));
    }
    out.push(this.status(loc, events));
    const source = this.changedBy(loc, events);
    if (source) out.push(source);
    if (loc.subdivisions) out.push(this.subdivisions(loc));
    if (loc.casualties && loc.casualties.reports > 0) out.push(this.casualties(loc.casualties));
    out.push(this.history(events, point));
    return out;
  }

  status(loc, events) {
    const c = loc.control || {};
    const status = c.status || "unknown";
    const who = status === "controlled" ? `Held by ${this.app.actorName(c.controller)}`
      : status === "contested" ? "Contested" : "Unknown";
    const chip = h("span", { class: `chip status-${status}`, "data-status": status }, who);
    if (status === "controlled") chip.style.setProperty("--chip", this.app.colourOf(c.controller));
    const rows = [];
    if (status === "contested") {
      rows.push(["Forces present", (c.present || []).map(this.app.actorName).join(", ")]);
    }
    if (c.since) {
      const prec = c.since_precision && c.since_precision !== "instant"
        ? ` (${PRECISION_TEXT[c.since_precision] ?? c.since_precision})` : "";
      rows.push(["Since", `${when(c.since, c.since_precision)}${prec}`]);
    }
    if (c.settled === false) {
      rows.push(["Settled", "not yet: the change falls inside this moment's window"]);
    } else if (c.settled === true) {
      rows.push(["Settled", "yes"]);
    }
    if (c.confidence) rows.push(["Confidence", CONFIDENCE_TEXT[c.confidence] ?? c.confidence]);
    if (loc.operational) rows.push(["Operational", loc.operational === "open" ? "open" : "closed"]);
    // How precisely the change that set this status was placed.
    const place = events.find((e) => e.id === c.changed_by)?.place_precision;
    if (place && place !== "exact") rows.push(["Place", PLACE_PRECISION_TEXT[place] ?? place]);
    if (typeof loc.lat === "number") rows.push(["Position", `${loc.lat.toFixed(4)}, ${loc.lon.toFixed(4)}`]);
    return h("section", { class: "status", "aria-label": "Status" },
      chip, c.confidence === "claimed" ? h("span", { class: "chip claimed" }, "claimed") : null,
      h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  }

  changedBy(loc, events) {
    const id = loc.control?.changed_by;
    if (!id) return null;
    const ev = events.find((e) => e.id === id);
    if (!ev) return null;
    return h("section", { class: "changed-by", "aria-labelledby": "changed-by-title" },
      h("h3", { id: "changed-by-title" }, "What changed it"),
      h("p", {}, h("strong", {}, typeLabel(ev.type)), " — ", this.summary(ev),
        h("span", { class: "muted" }, ` · ${when(ev.occurred_at, ev.occurred_precision)} · seq ${ev.seq}`)),
      this.source(ev.source));
  }

  source(s) {
    if (!s) return null;
    const grading = [s.reliability, s.credibility].filter((x) => x !== undefined && x !== null).join("");
    const gradingText = [RELIABILITY_TEXT[s.reliability], CREDIBILITY_TEXT[s.credibility]].filter(Boolean).join(", ");
    let link = null;
    try {
      const u = s.url && new URL(s.url);
      if (u && (u.protocol === "https:" || u.protocol === "http:")) {
        link = h("a", { href: u.href, rel: "noopener noreferrer nofollow", target: "_blank" }, u.hostname);
      }
    } catch {
      link = null;
    }
    return h("div", { class: "source", "data-source": s.name },
      h("p", { class: "source-name" }, s.name),
      h("p", { class: "muted" },
        SOURCE_KIND_TEXT[s.kind] ?? s.kind,
        s.claimant ? [" · claim by ", h("strong", {}, this.app.actorName(s.claimant))] : "",
        grading ? [" · graded ", h("abbr", { title: gradingText }, grading)] : "",
        link ? [" · ", link] : ""));
  }

  subdivisions(loc) {
    const s = loc.subdivisions;
    const items = Object.entries(s.by_controller || {}).map(([actor, n]) => {
      const chip = h("span", { class: "chip status-controlled" }, `${this.app.actorName(actor)} ${n}`);
      chip.style.setProperty("--chip", this.app.colourOf(actor));
      return chip;
    });
    if (s.contested) items.push(h("span", { class: "chip status-contested" }, `contested ${s.contested}`));
    if (s.unknown) items.push(h("span", { class: "chip status-unknown" }, `unknown ${s.unknown}`));
    const children = this.app.children(loc.id);
    return h("section", { "aria-labelledby": "subs-title" },
      h("h3", { id: "subs-title" }, `Subdivisions (${s.total})`),
      h("p", { class: "chips" }, items),
      children.length ? h("ul", { class: "subs" }, children.map((c) =>
        h("li", {}, h("button", { type: "button", class: "link", onclick: () => this.app.select(c.id) }, c.name),
          h("span", { class: "muted" }, ` ${STATUS_TEXT[c.control?.status] ?? "unknown"}`
            + (c.control?.controller ? ` · ${this.app.actorName(c.control.controller)}` : ""))))) : null);
  }

  casualties(c) {
    const range = (best, low, high) => estimate(best ?? 0, low ?? best ?? 0, high === undefined ? best ?? 0 : high);
    return h("section", { "aria-labelledby": "cas-title" },
      h("h3", { id: "cas-title" }, "Casualties reported"),
      h("dl", { class: "facts" },
        h("dt", {}, "Killed"), h("dd", { "data-casualties": "killed" }, range(c.killed, c.killed_low, c.killed_high)),
        h("dt", {}, "Wounded"), h("dd", { "data-casualties": "wounded" }, range(c.wounded, c.wounded_low, c.wounded_high)),
        h("dt", {}, "Reports"), h("dd", {}, String(c.reports))));
  }

  history(events, { as_of, at_seq }) {
    const known = events.filter((e) => !at_seq || e.seq <= at_seq);
    const retracted = new Map();
    for (const e of known) {
      if (e.type === "event_retracted") retracted.set(e.data.event_id, e);
    }
    const limit = as_of ? Date.parse(as_of) : Infinity;
    const items = known.slice().reverse().map((e) => {
      const gone = retracted.get(e.id);
      const later = e.occurred_at && Date.parse(e.occurred_at) > limit;
      const body = [
        h("span", { class: "when" }, e.occurred_at ? when(e.occurred_at, e.occurred_precision) : "reference data"),
        h("span", { class: "what" }, h("strong", {}, typeLabel(e.type)), " ", this.summary(e)),
        e.place_precision && e.place_precision !== "exact"
          ? h("span", { class: "muted place" }, PLACE_PRECISION_TEXT[e.place_precision] ?? e.place_precision) : null,
        h("span", { class: "muted who" }, e.source ? e.source.name : "", ` · seq ${e.seq}`),
      ];
      return h("li", { class: [gone ? "retracted" : "", later ? "later" : ""].join(" ").trim() || null,
        "data-seq": e.seq, title: later ? "after the moment shown" : null },
      gone ? h("del", {}, body) : body,
      gone ? h("span", { class: "retraction-note" }, `retracted at seq ${gone.seq}: ${gone.data.reason}`) : null);
    });
    return h("section", { "aria-labelledby": "hist-title" },
      h("h3", { id: "hist-title" }, `History (${known.length})`),
      h("ol", { class: "history" }, items));
  }

  summary(e) {
    const d = e.data || {};
    const a = this.app.actorName;
    switch (e.type) {
      case "control_established": return `by ${a(d.actor)}`;
      case "forces_entered": return a(d.actor);
      case "forces_withdrew": return `${a(d.actor)}${d.temporary ? " (temporary)" : ""}`;
      case "clashes_reported": return (d.actors || []).map(a).join(" vs ");
      case "attack_repelled": return `${a(d.defender)} repelled ${a(d.attacker)}`;
      case "air_support_provided": return `${a(d.provider)} for ${a(d.supported)}`;
      case "facility_closed":
      case "facility_reopened": return d.reason || "";
      case "casualties_reported": {
        const parts = [];
        for (const what of ["killed", "wounded"]) {
          const [best, low, high] = [d[what], d[`${what}_low`], d[`${what}_high`]];
          if (best === undefined && low === undefined && high === undefined) continue;
          // One report's bounds, as the contract sums them: a missing low is
          // the best estimate; a missing high is too, unless a low was given.
          parts.push(`${what} ${estimate(best, low ?? best ?? 0, high ?? (low === undefined ? best ?? 0 : null))}`);
        }
        if (d.actor) parts.push(`among ${a(d.actor)}`);
        if (d.approximate) parts.push("approximate");
        return parts.join(", ") || "unquantified";
      }
      case "report": return d.summary || "";
      case "event_retracted": return `of ${String(d.event_id).slice(0, 8)}…: ${d.reason}`;
      case "location_amended":
      case "actor_amended": return Object.keys(d).join(", ");
      default: return d.name || "";
    }
  }
}

// A figure with its range: "12" when exact, "5 (3–9)" with a best estimate
// inside its range, "3–9" without one, "at least 12" when no upper bound is
// given (`high` null).
export function estimate(best, low, high) {
  if (high === null) return `at least ${low}`;
  if (low === high) return String(low);
  if (best !== undefined && best >= low && best <= high && best !== 0) return `${best} (${low}–${high})`;
  return `${low}–${high}`;
}

const LANGUAGES = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames(["en"], { type: "language" }) : null;

function languageName(tag) {
  try {
    return LANGUAGES?.of(tag) ?? tag;
  } catch {
    return tag;
  }
}
