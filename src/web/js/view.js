// The view a URL holds: `#as_of=…&at_seq=…&loc=…` (and `cmp_as_of`,
// `cmp_at_seq`, `cmp=1` in compare mode), so a link reproduces what its sender saw.

const KEYS = ["as_of", "at_seq", "loc", "cmp", "cmp_as_of", "cmp_at_seq"];

export function emptyView() {
  return { as_of: null, at_seq: null, loc: null, cmp: false, cmp_as_of: null, cmp_at_seq: null };
}

export function parseHash(hash) {
  const q = new URLSearchParams(hash.replace(/^#/, ""));
  const view = emptyView();
  const time = (v) => (v && !Number.isNaN(Date.parse(v)) ? iso(Date.parse(v)) : null);
  const seq = (v) => (/^\d+$/.test(v || "") && Number(v) > 0 ? Number(v) : null);
  view.as_of = time(q.get("as_of"));
  view.at_seq = seq(q.get("at_seq"));
  view.loc = q.get("loc") || null;
  view.cmp = q.get("cmp") === "1";
  view.cmp_as_of = view.cmp ? time(q.get("cmp_as_of")) : null;
  view.cmp_at_seq = view.cmp ? seq(q.get("cmp_at_seq")) : null;
  return view;
}

export function toHash(view) {
  const q = new URLSearchParams();
  for (const k of KEYS) {
    const v = view[k];
    if (v === null || v === false || v === undefined) continue;
    q.set(k, v === true ? "1" : String(v));
  }
  // Keep `:` readable in links; URLSearchParams would escape it.
  return q.toString().replaceAll("%3A", ":");
}

export function iso(ms) {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

const FORMAT = new Intl.DateTimeFormat("en-GB", {
  timeZone: "UTC", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
});
const DAY = new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", day: "numeric", month: "short", year: "numeric" });

// "30 Nov 2024, 12:00 UTC"; a time at midnight with day precision shows the day only.
export function when(value, precision = null) {
  if (!value) return "—";
  const d = new Date(value);
  if (precision && precision !== "instant" && precision !== "hour") {
    if (precision === "day") return DAY.format(d);
    if (precision === "week") return `week of ${DAY.format(d)}`;
    if (precision === "month") return d.toLocaleString("en-GB", { timeZone: "UTC", month: "long", year: "numeric" });
    if (precision === "year") return String(d.getUTCFullYear());
  }
  return `${FORMAT.format(d)} UTC`;
}

// Describe a moment: "as of 30 Nov 2024, 12:00 UTC, as the log knew it at seq 20".
export function moment(as_of, at_seq) {
  const t = as_of ? `as of ${when(as_of)}` : "now";
  return at_seq ? `${t}, as the log knew it at seq ${at_seq}` : t;
}
