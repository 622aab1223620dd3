// The reporter's form: posts one development to POST /v1/events and shows the
// server's field errors next to the fields they name. The server is the one
// judge of what is valid (the form does no validation of its own), so what the
// form says is what the API says.

import * as api from "./api.js";
import { h } from "./panel.js";
import {
  CREDIBILITY_TEXT, PLACE_PRECISION_TEXT, PRECISION_TEXT, RELIABILITY_TEXT, SOURCE_KIND_TEXT, TYPES,
} from "./theme.js";

export class ReportForm {
  constructor(dialog, app) {
    this.dialog = dialog;
    this.app = app; // actors(), locations(), toast(), selected()
    this.form = dialog.querySelector("form");
    this.summary = dialog.querySelector("#form-summary");
    this.dataBox = dialog.querySelector("#f-data");
    this.type = dialog.querySelector("#f-type");
    this.id = newId();
    for (const [value, t] of Object.entries(TYPES)) this.type.append(h("option", { value }, t.label));
    this.type.value = "forces_entered";
    fill(dialog.querySelector("#f-source-kind"), Object.entries(SOURCE_KIND_TEXT));
    fill(dialog.querySelector("#f-source-reliability"),
      [["", "not graded"], ...Object.entries(RELIABILITY_TEXT).map(([k, v]) => [k, `${k} — ${v}`])]);
    fill(dialog.querySelector("#f-source-credibility"),
      [["", "not graded"], ...Object.entries(CREDIBILITY_TEXT).map(([k, v]) => [k, `${k} — ${v}`])]);
    // Left unset, the server's defaults hold (an exact time, an exact place).
    fill(dialog.querySelector("#f-occurred-precision"),
      [["", "the exact time"], ...Object.entries(PRECISION_TEXT).filter(([k]) => k !== "instant")
        .map(([k, v]) => [k, `the ${k} (${v})`])]);
    fill(dialog.querySelector("#f-place-precision"),
      [["", "exact place"], ...Object.entries(PLACE_PRECISION_TEXT).filter(([k]) => k !== "exact")]);
    this.type.addEventListener("change", () => this.drawData());
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    // Editing a field clears what was said about it.
    this.form.addEventListener("input", (e) => this.clearError(e.target.name));
    for (const b of dialog.querySelectorAll("[data-close]")) b.addEventListener("click", () => dialog.close());
  }

  open() {
    const locations = this.app.locations();
    const actors = this.app.actors();
    const where = this.form.elements.location;
    const keep = where.value || this.app.selected() || "";
    where.replaceChildren(h("option", { value: "" }, "— choose a place —"),
      ...locations.map((l) => h("option", { value: l.id }, l.name)));
    where.value = keep;
    fill(this.form.elements["source.claimant"], [["", "none: not a party's claim"], ...actors.map((a) => [a.id, a.name])]);
    if (!this.form.elements.occurred_at.value) {
      this.form.elements.occurred_at.value = new Date().toISOString().slice(0, 19);
    }
    this.drawData();
    this.clearErrors();
    this.dialog.showModal();
    this.type.focus();
  }

  drawData() {
    const actors = this.app.actors();
    const fields = TYPES[this.type.value]?.fields ?? [];
    this.dataBox.replaceChildren(...fields.map(([member, label, kind]) => {
      const name = `data.${member}`;
      const id = `f-data-${member}`;
      let input;
      if (kind === "actor" || kind === "actor?") {
        input = h("select", { id, name },
          h("option", { value: "" }, kind === "actor?" ? "— not said —" : "— choose —"),
          actors.map((a) => h("option", { value: a.id }, a.name)));
      } else if (kind === "actors") {
        input = h("fieldset", { id, class: "checks", "data-name": name },
          h("legend", { class: "sr-only" }, label),
          actors.map((a) => h("label", { class: "check" },
            h("input", { type: "checkbox", name, value: a.id }), ` ${a.name}`)));
      } else if (kind === "bool") {
        return h("div", { class: "field check-field" },
          h("label", { class: "check" }, h("input", { type: "checkbox", id, name }), ` ${label}`),
          h("p", { class: "field-error", "data-error-for": name }));
      } else if (kind === "int") {
        input = h("input", { id, name, type: "number", min: "0", step: "1", inputmode: "numeric" });
      } else if (kind === "textarea") {
        input = h("textarea", { id, name, rows: "3" });
      } else {
        input = h("input", { id, name, autocomplete: "off" });
      }
      return h("div", { class: `field${kind === "textarea" || kind === "actors" ? " wide" : ""}` },
        kind === "actors" ? h("span", { class: "label" }, label) : h("label", { for: id }, label),
        input,
        h("p", { class: "field-error", "data-error-for": name }));
    }));
  }

  body() {
    const el = this.form.elements;
    const type = this.type.value;
    const data = {};
    for (const [member, , kind] of TYPES[type]?.fields ?? []) {
      const name = `data.${member}`;
      if (kind === "actors") {
        data[member] = [...this.form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
      } else if (kind === "bool") {
        if (el[name].checked) data[member] = true;
      } else if (kind === "int") {
        if (el[name].value !== "") data[member] = Number(el[name].value);
      } else if (el[name].value !== "") {
        data[member] = el[name].value;
      }
    }
    const source = { name: el["source.name"].value.trim(), kind: el["source.kind"].value };
    for (const k of ["claimant", "url", "reliability"]) {
      if (el[`source.${k}`].value) source[k] = el[`source.${k}`].value.trim();
    }
    if (el["source.credibility"].value) source.credibility = Number(el["source.credibility"].value);
    const body = { type, location: el.location.value, source, data };
    // A client-chosen id makes a resubmission after a lost answer a safe retry.
    if (this.id) body.id = this.id;
    const t = el.occurred_at.value;
    if (t) body.occurred_at = `${t.length === 16 ? `${t}:00` : t}Z`;
    for (const k of ["occurred_precision", "place_precision"]) {
      if (el[k].value) body[k] = el[k].value;
    }
    return body;
  }

  async submit() {
    this.clearErrors();
    const button = this.form.querySelector("#report-submit");
    button.disabled = true;
    try {
      const receipt = await api.post("/v1/events", this.body());
      this.id = newId();
      this.dialog.close();
      this.app.toast(`Recorded as seq ${receipt.seq}. The map follows the live feed.`);
    } catch (e) {
      this.showProblem(e);
    } finally {
      button.disabled = false;
    }
  }

  showProblem(e) {
    const problem = e.problem || {};
    const unplaced = [];
    for (const fe of problem.errors || []) {
      if (!this.showError(fe.field, fe.message)) unplaced.push(`${fe.field}: ${fe.message}`);
    }
    const lines = [problem.title ? `${problem.title}: ${problem.detail ?? ""}` : e.message];
    if (e.status === 401 || e.status === 403) lines.push("Set a token with the reporter role (the Token button).");
    this.summary.replaceChildren(...lines.map((l) => h("p", {}, l)),
      unplaced.length ? h("ul", {}, unplaced.map((u) => h("li", {}, u))) : "");
    this.summary.hidden = false;
    this.form.querySelector("[aria-invalid=true]")?.focus();
  }

  // Put a message next to the field the server named: the field itself, else
  // the member it belongs to (`data.actors[1]` -> `data.actors`).
  showError(field, message) {
    const candidates = [field, field.replace(/\[\d+\]$/, ""), field.replace(/\.[^.]*$/, "")];
    for (const name of candidates) {
      const slot = this.form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
      if (!slot) continue;
      slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
      const input = this.form.querySelector(`[name="${CSS.escape(name)}"]`)
        ?? this.form.querySelector(`[data-name="${CSS.escape(name)}"]`);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        if (!slot.id) slot.id = `err-${name.replace(/\W/g, "-")}`;
        input.setAttribute("aria-describedby", slot.id);
      }
      return true;
    }
    return false;
  }

  clearError(name) {
    if (!name) return;
    const slot = this.form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) slot.textContent = "";
    this.form.querySelector(`[name="${CSS.escape(name)}"]`)?.removeAttribute("aria-invalid");
  }

  clearErrors() {
    this.summary.hidden = true;
    this.summary.replaceChildren();
    for (const s of this.form.querySelectorAll(".field-error")) s.textContent = "";
    for (const i of this.form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  }
}

function fill(select, pairs) {
  select.replaceChildren(...pairs.map(([value, text]) => h("option", { value }, text)));
}

function newId() {
  return globalThis.crypto?.randomUUID ? crypto.randomUUID() : null;
}
