// Every colour, label and look of the page, in one place.

// Actor colours by kind, as control maps use them: state forces in reds,
// foreign states in blues, non-state groups in greens, ambers and purples.
// Within a kind, colours go to actors in id order; a member of another actor
// wears its group's colour (an army and its government are drawn alike).
// Chosen to stay apart for colour-blind readers and against the pale land.
export const PALETTES = {
  state_forces: ["#c0392b", "#e67e22", "#922b21"],
  foreign_state: ["#2e6fd1", "#117a8b", "#5b2c6f", "#1a5276"],
  non_state_group: ["#1e8449", "#d4ac0d", "#8e44ad", "#16a085", "#6e2c00", "#7d8f00"],
  coalition: ["#34495e", "#5d6d7e"],
  other: ["#a0522d", "#d6336c", "#566573"],
};

export const UNKNOWN = "#9aa0a6";
export const LAND = "#f4f1ea";
export const BORDER = "#b9b2a3";
export const SEA = "#dfe8ee";
export const CHANGED = "#111827";

// How a status is drawn: one style per case. `claimed` adds the dash.
export const LOOK = {
  controlled: { weight: 1.5, fillOpacity: 0.92, color: "#1f2937" },
  contested: { weight: 1.5, fillOpacity: 1, color: "#1f2937" },
  unknown: { weight: 1, fillOpacity: 0.85, color: "#4b5563" },
  claimedDash: "3 3",
  changedRing: { weight: 3, color: CHANGED, dashArray: "2 4", fill: false },
  selectedRing: { weight: 3, color: "#f59e0b", fill: false },
};

// Marker radius by location kind: bigger for what a reader looks for first.
export const RADIUS = {
  country: 11, region: 10, governorate: 10, city: 9, town: 7, village: 5,
  district: 6, subdistrict: 6, neighbourhood: 5, airport: 7, airbase: 7,
  military_base: 7, border_crossing: 6, other: 6,
};

// Label priority when labels crowd: lower wins.
export const LABEL_RANK = {
  country: 0, region: 1, governorate: 2, city: 3, airbase: 4, airport: 4,
  military_base: 5, town: 5, border_crossing: 6, district: 7, subdistrict: 8,
  village: 8, neighbourhood: 9, other: 9,
};

export const STATUS_TEXT = {
  controlled: "held",
  contested: "contested",
  unknown: "unknown",
};

export const CONFIDENCE_TEXT = {
  claimed: "claimed by a party, not independently reported",
  reported: "reported",
};

export const PRECISION_TEXT = {
  instant: "exact time", hour: "to the hour", day: "to the day",
  week: "to the week", month: "to the month", year: "to the year",
};

export const PLACE_PRECISION_TEXT = {
  exact: "exact place", near: "in the vicinity", region: "only the wider area is known",
};

export const SOURCE_KIND_TEXT = {
  official: "official", party_statement: "party statement", news_agency: "news agency",
  witness: "witness", monitor: "monitor", other: "other",
};

// Admiralty grading, as analysts read it.
export const RELIABILITY_TEXT = {
  A: "completely reliable", B: "usually reliable", C: "fairly reliable",
  D: "not usually reliable", E: "unreliable", F: "reliability cannot be judged",
};
export const CREDIBILITY_TEXT = {
  1: "confirmed", 2: "probably true", 3: "possibly true",
  4: "doubtful", 5: "improbable", 6: "truth cannot be judged",
};

// What each development type is called, and the data members the reporter's
// form asks for (each: member, label, input kind).
export const TYPES = {
  control_established: { label: "Control established", fields: [["actor", "Actor", "actor"]] },
  forces_entered: { label: "Forces entered", fields: [["actor", "Actor", "actor"]] },
  forces_withdrew: {
    label: "Forces withdrew",
    fields: [["actor", "Actor", "actor"], ["temporary", "Temporary (a tactical withdrawal)", "bool"]],
  },
  clashes_reported: { label: "Clashes reported", fields: [["actors", "Actors (two or more)", "actors"]] },
  attack_repelled: {
    label: "Attack repelled",
    fields: [["defender", "Defender", "actor"], ["attacker", "Attacker", "actor"]],
  },
  facility_closed: { label: "Facility closed", fields: [["reason", "Reason", "text"]] },
  facility_reopened: { label: "Facility reopened", fields: [["reason", "Reason", "text"]] },
  air_support_provided: {
    label: "Air support provided",
    fields: [["provider", "Provider", "actor"], ["supported", "Supported", "actor"]],
  },
  casualties_reported: {
    label: "Casualties reported",
    fields: [
      ["actor", "Actor (whose losses)", "actor?"],
      ["killed", "Killed (best estimate)", "int"], ["killed_low", "Killed, at least", "int"],
      ["killed_high", "Killed, at most", "int"],
      ["wounded", "Wounded (best estimate)", "int"], ["wounded_low", "Wounded, at least", "int"],
      ["wounded_high", "Wounded, at most", "int"],
      ["approximate", "Approximate figures", "bool"],
    ],
  },
  report: { label: "Report", fields: [["summary", "Summary", "textarea"]] },
  event_retracted: {
    label: "Retraction",
    fields: [["event_id", "Event id to retract", "text"], ["reason", "Reason", "text"]],
  },
};

export const REGISTRATION_LABEL = {
  location_registered: "Location registered",
  location_amended: "Location amended",
  actor_registered: "Actor registered",
  actor_amended: "Actor amended",
};

export function typeLabel(type) {
  return TYPES[type]?.label ?? REGISTRATION_LABEL[type] ?? type.replaceAll("_", " ");
}
