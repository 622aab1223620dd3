// The page's only way to the server: the public /v1 API, with the reader's
// token (if any) in an Authorization header, never in a URL. The token lives
// in this tab's sessionStorage: it goes when the tab closes.

const TOKEN_KEY = "sitrep.token";
// How long the live feed waits before reconnecting, doubling up to the cap.
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
// Largest page the API gives (GET /v1/events limit).
export const PAGE_LIMIT = 1000;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value.trim());
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

// Build `/v1/...?a=b`, leaving out empty parameters.
export function url(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function answer(res) {
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json().catch(() => null) : null;
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

export async function get(path, params, init = {}) {
  const res = await fetch(url(path, params), { headers: headers(), ...init });
  return answer(res);
}

export async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  return answer(res);
}

// Every event of the log after `after`, page by page (the API's own paging).
export async function* allEvents(after = 0, signal) {
  let cursor = after;
  for (;;) {
    const page = await get("/v1/events", { after: cursor, limit: PAGE_LIMIT }, { signal });
    yield page.events;
    if (page.next_after === null || page.events.length === 0) return;
    cursor = page.next_after;
  }
}

// The live feed, read with fetch (EventSource cannot send a header). Calls
// `onEvent(event)` for each stored event after `after`, `onState(state, status)`
// with "live", "reconnecting" or "refused" (with the HTTP status: the token is
// missing, removed or may not read); reconnects with the last seq seen.
// Returns a function that stops it.
export function follow(after, onEvent, onState) {
  const stop = new AbortController();
  let last = after;
  let wait = RETRY_FIRST_MS;
  (async () => {
    while (!stop.signal.aborted) {
      try {
        const res = await fetch(url("/v1/events/stream", { after: last }), {
          headers: headers({ Accept: "text/event-stream" }),
          signal: stop.signal,
          cache: "no-store",
        });
        if (res.status === 401 || res.status === 403) {
          onState("refused", res.status);
          return;
        }
        if (!res.ok || !res.body) throw new Error(`feed answered ${res.status}`);
        onState("live");
        wait = RETRY_FIRST_MS;
        for await (const message of messages(res.body)) {
          if (!message.data) continue;
          const event = JSON.parse(message.data);
          if (event.seq > last) {
            last = event.seq;
            onEvent(event);
          }
        }
      } catch (e) {
        if (stop.signal.aborted) return;
      }
      onState("reconnecting");
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
  })();
  return () => stop.abort();
}

// Server-sent events (the WHATWG parsing rules we need: `id`, `data`, comments).
async function* messages(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message = { id: null, data: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (message.data !== null) yield message;
        message = { id: null, data: null };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let v = colon < 0 ? "" : line.slice(colon + 1);
      if (v.startsWith(" ")) v = v.slice(1);
      if (field === "data") message.data = message.data === null ? v : `${message.data}\n${v}`;
      else if (field === "id") message.id = v;
    }
  }
}
