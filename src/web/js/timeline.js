// The time controls: a slider over the log's development times (`as_of`), with
// play and step; a second slider over log positions (`at_seq`, "as the log knew
// it then"); an exact time box; and the switch into compare mode.

import { iso, when } from "./view.js";

// Time between steps while playing.
const PLAY_STEP_MS = 1200;

export class Timeline {
  constructor(root, onChange) {
    this.onChange = onChange;
    this.instants = []; // sorted distinct occurred_at, in ms
    this.log = []; // seq - 1 -> { recorded_at }
    this.view = null;
    this.timer = null;
    const $ = (sel) => root.querySelector(sel);
    this.el = {
      slider: $("#tl-slider"), date: $("#tl-date"), back: $("#tl-back"), fwd: $("#tl-fwd"),
      play: $("#tl-play"), seq: $("#seq-slider"), seqLabel: $("#seq-label"), latest: $("#seq-latest"),
      exact: $("#asof-input"), now: $("#asof-now"), compare: $("#compare-btn"), ticks: $("#tl-ticks"),
    };
    const e = this.el;
    e.slider.addEventListener("input", () => this.fromSlider());
    e.back.addEventListener("click", () => this.step(-1));
    e.fwd.addEventListener("click", () => this.step(1));
    e.play.addEventListener("click", () => (this.timer ? this.pause() : this.play()));
    e.seq.addEventListener("input", () => {
      const v = Number(e.seq.value);
      this.onChange({ at_seq: v >= this.log.length ? null : v });
    });
    e.latest.addEventListener("click", () => this.onChange({ at_seq: null }));
    e.exact.addEventListener("change", () => {
      const v = e.exact.value;
      if (v) this.onChange({ as_of: iso(Date.parse(`${v.length === 16 ? `${v}:00` : v}Z`)) });
    });
    e.now.addEventListener("click", () => this.onChange({ as_of: null }));
  }

  // The log's developments and positions: each { seq, occurred_at?, recorded_at }.
  addEvents(events) {
    let grew = false;
    for (const ev of events) {
      this.log[ev.seq - 1] = { recorded_at: ev.recorded_at };
      if (ev.occurred_at && !ev.type.endsWith("_registered") && !ev.type.endsWith("_amended")) {
        const t = Date.parse(ev.occurred_at);
        const i = lowerBound(this.instants, t);
        if (this.instants[i] !== t) {
          this.instants.splice(i, 0, t);
          grew = true;
        }
      }
    }
    if (grew) this.drawTicks();
    if (this.view) this.show(this.view);
  }

  // Where the slider sits for `as_of`: the last development time at or before it.
  index(as_of) {
    if (!as_of) return this.instants.length;
    return lowerBound(this.instants, Date.parse(as_of) + 1) - 1;
  }

  show(view) {
    this.view = view;
    const e = this.el;
    const n = this.instants.length;
    e.slider.max = String(n);
    const i = this.index(view.as_of);
    e.slider.value = String(Math.max(0, i));
    const label = view.as_of ? when(view.as_of) : "now (live)";
    e.date.textContent = label;
    e.slider.setAttribute("aria-valuetext", label);
    e.back.disabled = i <= 0 && !!view.as_of;
    e.fwd.disabled = !view.as_of;
    e.exact.value = view.as_of ? view.as_of.slice(0, 19) : "";
    const head = this.log.length;
    e.seq.max = String(Math.max(1, head));
    e.seq.value = String(view.at_seq ?? head);
    e.seq.disabled = head === 0;
    const rec = view.at_seq && this.log[view.at_seq - 1]?.recorded_at;
    const seqText = view.at_seq
      ? `seq ${view.at_seq} of ${head}${rec ? `, recorded ${when(rec)}` : ""}`
      : `latest (seq ${head})`;
    e.seqLabel.textContent = seqText;
    e.seq.setAttribute("aria-valuetext", seqText);
    e.latest.disabled = !view.at_seq;
    e.compare.setAttribute("aria-pressed", String(view.cmp));
    e.compare.textContent = view.cmp ? "Stop comparing" : "Compare from here";
    if (!view.as_of && this.timer) this.pause();
  }

  fromSlider() {
    const i = Number(this.el.slider.value);
    this.onChange({ as_of: i >= this.instants.length ? null : iso(this.instants[i]) });
  }

  step(by) {
    const n = this.instants.length;
    const at = this.index(this.view?.as_of);
    // Stepping back from "now" lands on the last development.
    const i = Math.min(n, Math.max(0, at + by));
    this.onChange({ as_of: i >= n ? null : iso(this.instants[i]) });
  }

  play() {
    if (!this.view?.as_of) this.onChange({ as_of: this.instants.length ? iso(this.instants[0]) : null });
    this.el.play.textContent = "❚❚";
    this.el.play.setAttribute("aria-label", "Pause");
    this.el.play.setAttribute("aria-pressed", "true");
    this.timer = setInterval(() => {
      if (!this.view?.as_of) this.pause();
      else this.step(1);
    }, PLAY_STEP_MS);
  }

  pause() {
    clearInterval(this.timer);
    this.timer = null;
    this.el.play.textContent = "▶";
    this.el.play.setAttribute("aria-label", "Play");
    this.el.play.setAttribute("aria-pressed", "false");
  }

  // A tick under the slider for each development time, at its slider position.
  drawTicks() {
    const box = this.el.ticks;
    box.replaceChildren();
    const n = this.instants.length;
    if (!n) return;
    const years = new Set();
    this.instants.forEach((t, i) => {
      const y = new Date(t).getUTCFullYear();
      if (years.has(y) && i !== n - 1) return;
      years.add(y);
      const tick = document.createElement("span");
      tick.className = "tick";
      tick.textContent = i === n - 1 ? when(iso(t), "day") : String(y);
      tick.style.left = `${(i / n) * 100}%`;
      box.appendChild(tick);
    });
  }
}

function lowerBound(list, value) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
