//! `sitrep acled import`: an ACLED export (and a deletions file) into a running
//! server, through its public API only (CONTRACT section 11).
//!
//! The importer keeps no state of its own. Before writing it reads the log once
//! (`GET /v1/events`): the registered actors and locations, and every event it
//! imported earlier, which its ids mark with their row and version (see
//! [`row::event_id`]). From that it decides per row: unchanged, new, or newer
//! than the imported version (retract the old developments, post the new).
//! Registrations go first, then each row's retractions and developments in
//! atomic batches, so a row lands whole or not at all.

pub mod row;

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::limits::{MAX_BATCH_EVENTS, MAX_BODY_BYTES, MAX_PAGE_EVENTS};
use row::{parse_event_id, Deletion, Header, Row, RowKey, COLUMNS, DELETION_COLUMNS};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest body the importer sends: half the server's default limit, leaving
/// room for a server configured lower than the default.
const MAX_BATCH_BYTES: usize = MAX_BODY_BYTES / 2;
/// Most times a request refused with `429` is tried again.
const MAX_RATE_LIMIT_RETRIES: u32 = 30;
/// Wait before a retry when the server gives no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Without a terminal, a progress line every this many rows.
const PLAIN_PROGRESS_EVERY: u64 = 1000;

pub struct Options {
    pub file: Option<PathBuf>,
    pub deletions: Option<PathBuf>,
    pub server: String,
    pub token: Option<String>,
}

/// What happened to the rows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Rows read from the export and the deletions file.
    pub read: u64,
    /// Rows whose developments (or retractions) were written.
    pub written: u64,
    /// Rows already imported as they are (or older than what was imported).
    pub unchanged: u64,
    /// Rows whose earlier import was retracted: updated or deleted.
    pub retracted: u64,
    /// Malformed rows, and rows the server refused.
    pub refused: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rows read {}, written {}, unchanged {}, retracted {}, refused {}",
            self.read, self.written, self.unchanged, self.retracted, self.refused
        )
    }
}

/// An event the importer wrote before, as the log shows it.
#[derive(Clone, Debug)]
struct Imported {
    id: Uuid,
    timestamp: u64,
    location: String,
    retracted: bool,
}

/// What the log already holds, as far as the import is concerned.
#[derive(Default)]
struct Known {
    actors: HashSet<String>,
    locations: HashSet<String>,
    imported: HashMap<RowKey, Vec<Imported>>,
}

/// One row's writes: atomic together.
struct Unit {
    line: u64,
    what: &'static str,
    events: Vec<Value>,
    actors: Vec<String>,
    places: Vec<String>,
    retracts: bool,
}

/// How the server answered a post.
enum Answer {
    Created,
    Retried,
    Refused(String),
}

struct Client {
    server: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    fn send(&self, req: reqwest::blocking::RequestBuilder) -> anyhow::Result<reqwest::blocking::Response> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        for _ in 0..MAX_RATE_LIMIT_RETRIES {
            let res = req
                .try_clone()
                .expect("requests with a fixed body can be cloned")
                .send()
                .with_context(|| format!("cannot reach {}", self.server))?;
            if res.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
                return Ok(res);
            }
            let wait = res
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs);
            std::thread::sleep(wait);
        }
        bail!("the server kept answering 429 (rate limited) after {MAX_RATE_LIMIT_RETRIES} tries")
    }

    /// Read the whole log once: registrations, and the events this importer made.
    fn scan(&self) -> anyhow::Result<Known> {
        let mut known = Known::default();
        let mut retracted = HashSet::new();
        let mut after = 0u64;
        loop {
            let url = format!("{}/v1/events?after={after}&limit={MAX_PAGE_EVENTS}", self.server);
            let res = self.send(self.http.get(&url))?;
            let status = res.status();
            let body = res.text()?;
            if !status.is_success() {
                bail!("GET {url} answered {status}: {body}");
            }
            let page: Value = serde_json::from_str(&body).with_context(|| format!("GET {url} is not JSON"))?;
            for e in page["events"].as_array().into_iter().flatten() {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                match e["type"].as_str().unwrap_or_default() {
                    "actor_registered" => {
                        known.actors.insert(text("actor"));
                    }
                    "location_registered" => {
                        known.locations.insert(text("location"));
                    }
                    "event_retracted" => {
                        if let Some(target) = e["data"]["event_id"].as_str().and_then(|s| s.parse::<Uuid>().ok()) {
                            retracted.insert(target);
                        }
                    }
                    _ => {
                        let id = e["id"].as_str().and_then(|s| s.parse::<Uuid>().ok());
                        if let Some((id, (key, timestamp))) = id.and_then(|id| Some((id, parse_event_id(&id)?))) {
                            known.imported.entry(key).or_default().push(Imported {
                                id,
                                timestamp,
                                location: text("location"),
                                retracted: false,
                            });
                        }
                    }
                }
            }
            match page["next_after"].as_u64() {
                Some(next) => after = next,
                None => break,
            }
        }
        for versions in known.imported.values_mut() {
            for v in versions.iter_mut() {
                v.retracted = retracted.contains(&v.id);
            }
        }
        Ok(known)
    }

    /// Post events as one atomic batch.
    fn post(&self, events: &[&Value]) -> anyhow::Result<Answer> {
        let url = format!("{}/v1/events", self.server);
        let body = serde_json::to_vec(events)?;
        let res = self.send(
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body),
        )?;
        let status = res.status();
        let text = res.text()?;
        match status.as_u16() {
            201 => Ok(Answer::Created),
            200 => Ok(Answer::Retried),
            // No row would fare better: stop rather than refuse each one.
            401 | 403 => bail!("POST {url} answered {status}: {text}"),
            400..=499 => Ok(Answer::Refused(problem_text(status.as_u16(), &text))),
            _ => bail!("POST {url} answered {status}: {text}"),
        }
    }
}

/// A refusal in a line: the problem's detail and its field errors.
fn problem_text(status: u16, body: &str) -> String {
    let Ok(p) = serde_json::from_str::<Value>(body) else {
        return format!("{status}: {body}");
    };
    let mut s = format!(
        "{status} {}: {}",
        p["code"].as_str().unwrap_or("?"),
        p["detail"].as_str().unwrap_or_default()
    );
    for e in p["errors"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "; {}: {}",
            e["field"].as_str().unwrap_or_default(),
            e["message"].as_str().unwrap_or_default()
        ));
    }
    s
}

/// Progress on stderr: a bar on a terminal, else a plain line now and then.
struct Progress {
    bar: ProgressBar,
    plain: bool,
    done: u64,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let plain = !std::io::stderr().is_terminal();
        let bar = if plain {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} {msg}")
                    .expect("the template is valid"),
            );
            bar
        };
        Progress {
            bar,
            plain,
            done: 0,
            total,
        }
    }

    fn say(&self, line: &str) {
        if self.plain {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn advance(&mut self, n: u64) {
        let before = self.done / PLAIN_PROGRESS_EVERY;
        self.done += n;
        self.bar.inc(n);
        if self.plain && (self.done / PLAIN_PROGRESS_EVERY > before || self.done == self.total) {
            eprintln!("acled: {}/{} rows", self.done, self.total);
        }
    }
}

/// A record of a file with the line it starts on, or why it cannot be read.
type Record = (u64, Result<csv::StringRecord, String>);

/// The header and the records of a CSV file.
fn records(path: &Path) -> anyhow::Result<(csv::StringRecord, Vec<Record>)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header", path.display()))?
        .clone();
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(true) => out.push((record.position().map_or(line, |p| p.line()), Ok(record.clone()))),
            Ok(false) => break,
            Err(e) => {
                let at = e.position().map_or(line, |p| p.line());
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    out.push((at, Err(format!("{e}"))));
                    break;
                }
                out.push((at, Err("the row is not valid UTF-8".into())));
            }
        }
    }
    Ok((header, out))
}

/// Run an import; the summary says what happened to each row.
pub fn import(opts: &Options) -> anyhow::Result<Summary> {
    if opts.file.is_none() && opts.deletions.is_none() {
        bail!("give an export FILE, a --deletions FILE, or both");
    }
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut rows: Vec<Result<Row, (u64, String)>> = Vec::new();
    if let Some(path) = &opts.file {
        let (header, recs) = records(path)?;
        let header = Header::find(&header, COLUMNS).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (line, rec) in recs {
            rows.push(
                rec.and_then(|r| row::parse_row(&header, &r, line))
                    .map_err(|e| (line, e)),
            );
        }
    }
    let mut deletions: Vec<Result<Deletion, (u64, String)>> = Vec::new();
    if let Some(path) = &opts.deletions {
        let (header, recs) = records(path)?;
        let header = Header::find(&header, DELETION_COLUMNS).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (line, rec) in recs {
            deletions.push(
                rec.and_then(|r| row::parse_deletion(&header, &r, line))
                    .map_err(|e| (line, e)),
            );
        }
    }
    summary.read = (rows.len() + deletions.len()) as u64;
    let mut progress = Progress::new(summary.read);
    let file_name = |p: &Option<PathBuf>| p.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
    let (export_name, deletions_name) = (file_name(&opts.file), file_name(&opts.deletions));

    let client = Client {
        server: opts.server.trim_end_matches('/').to_owned(),
        token: opts.token.clone(),
        http: reqwest::blocking::Client::builder().timeout(REQUEST_TIMEOUT).build()?,
    };
    let mut known = client.scan()?;

    // A deletion also keeps the rows it deletes from being imported in this run.
    let mut deleted: HashMap<RowKey, u64> = HashMap::new();
    for d in deletions.iter().flatten() {
        let t = deleted.entry(d.key).or_default();
        *t = (*t).max(d.deleted_timestamp);
    }

    let mut units = Vec::new();
    let mut regs = Registrations::new();
    for r in rows {
        let row = match r {
            Ok(row) => row,
            Err((line, e)) => {
                summary.refused += 1;
                progress.say(&format!("{export_name}:{line}: refused, nothing written: {e}"));
                progress.advance(1);
                continue;
            }
        };
        if deleted.get(&row.key).is_some_and(|&t| t >= row.timestamp) {
            summary.unchanged += 1;
            progress.advance(1);
            continue;
        }
        match plan_row(&row, &mut known, &mut regs) {
            Some(unit) => units.push(unit),
            None => {
                summary.unchanged += 1;
                progress.advance(1);
            }
        }
    }
    for d in deletions {
        let d = match d {
            Ok(d) => d,
            Err((line, e)) => {
                summary.refused += 1;
                progress.say(&format!("{deletions_name}:{line}: refused, nothing written: {e}"));
                progress.advance(1);
                continue;
            }
        };
        match plan_deletion(&d, &mut known) {
            Some(unit) => units.push(unit),
            None => {
                summary.unchanged += 1;
                progress.advance(1);
            }
        }
    }

    let failed = register(&client, &regs)?;
    let mut ready = Vec::new();
    for unit in units {
        let missing = unit.actors.iter().chain(&unit.places).find(|s| failed.contains_key(*s));
        match missing {
            Some(slug) => {
                summary.refused += 1;
                let source = if unit.what == "export" {
                    &export_name
                } else {
                    &deletions_name
                };
                progress.say(&format!(
                    "{source}:{}: refused, nothing written: registering {slug} failed: {}",
                    unit.line, failed[slug]
                ));
                progress.advance(1);
            }
            None => ready.push(unit),
        }
    }
    post_units(&client, &ready, &mut summary, &mut progress, |u| {
        if u.what == "export" {
            export_name.clone()
        } else {
            deletions_name.clone()
        }
    })?;
    progress.bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "acled: {summary} in {secs:.1} s ({:.0} rows/s)",
        summary.read as f64 / secs.max(f64::EPSILON)
    );
    Ok(summary)
}

/// What a row needs written, given what the log holds; `None` when nothing.
/// The plan is entered into `known`, so a later row of the same event (or of
/// the same actors and places) sees it.
/// Registrations the rows need that the log lacks: (slug, event), parents first.
type Registrations = Vec<(String, Value)>;

fn plan_row(row: &Row, known: &mut Known, regs: &mut Registrations) -> Option<Unit> {
    let versions = known.imported.entry(row.key).or_default();
    let newest = versions.iter().map(|v| v.timestamp).max();
    let mut events = Vec::new();
    let mut retracts = false;
    match newest {
        Some(t) if t > row.timestamp => return None,
        Some(t) if t == row.timestamp => {
            let have: HashSet<Uuid> = versions.iter().map(|v| v.id).collect();
            events.extend(
                row.developments
                    .iter()
                    .filter(|(id, _)| !have.contains(id))
                    .map(|(_, e)| e.clone()),
            );
            if events.is_empty() {
                return None;
            }
        }
        _ => {
            for v in versions.iter_mut().filter(|v| !v.retracted) {
                let reason = format!(
                    "ACLED updated event {} (timestamp {} replaces {})",
                    row.event_id_cnty, row.timestamp, v.timestamp
                );
                events.push(row::retraction(&v.id, &v.location, row.timestamp, reason).1);
                v.retracted = true;
                retracts = true;
            }
            events.extend(row.developments.iter().map(|(_, e)| e.clone()));
        }
    }
    for (id, _) in &row.developments {
        if !versions.iter().any(|v| v.id == *id) {
            versions.push(Imported {
                id: *id,
                timestamp: row.timestamp,
                location: row.location.clone(),
                retracted: false,
            });
        }
    }
    for a in &row.actors {
        if known.actors.insert(a.slug.clone()) {
            regs.push((a.slug.clone(), a.event()));
        }
    }
    for p in &row.places {
        if known.locations.insert(p.slug.clone()) {
            regs.push((p.slug.clone(), p.event()));
        }
    }
    Some(Unit {
        line: row.line,
        what: "export",
        events,
        actors: row.actors.iter().map(|a| a.slug.clone()).collect(),
        places: row.places.iter().map(|p| p.slug.clone()).collect(),
        retracts,
    })
}

fn plan_deletion(d: &Deletion, known: &mut Known) -> Option<Unit> {
    let versions = known.imported.get_mut(&d.key)?;
    let mut events = Vec::new();
    for v in versions
        .iter_mut()
        .filter(|v| !v.retracted && v.timestamp <= d.deleted_timestamp)
    {
        let reason = format!(
            "ACLED deleted event {} (deleted_timestamp {})",
            d.event_id_cnty, d.deleted_timestamp
        );
        events.push(row::retraction(&v.id, &v.location, d.deleted_timestamp, reason).1);
        v.retracted = true;
    }
    (!events.is_empty()).then_some(Unit {
        line: d.line,
        what: "deletions",
        events,
        actors: Vec::new(),
        places: Vec::new(),
        retracts: true,
    })
}

/// Split `items` into batches within the event and byte limits, in order.
fn batches<T>(items: &[T], size: impl Fn(&T) -> (usize, usize)) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut events, mut bytes) = (0, 0, 0);
    for (i, item) in items.iter().enumerate() {
        let (n, b) = size(item);
        if i > start && (events + n > MAX_BATCH_EVENTS || bytes + b > MAX_BATCH_BYTES) {
            out.push(&items[start..i]);
            (start, events, bytes) = (i, 0, 0);
        }
        events += n;
        bytes += b;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len() + 1)
}

/// Post the registrations; the answer maps each slug that could not be
/// registered to the server's reason.
fn register(client: &Client, regs: &Registrations) -> anyhow::Result<HashMap<String, String>> {
    let mut failed = HashMap::new();
    for batch in batches(regs, |(_, e)| (1, json_len(e))) {
        let events: Vec<&Value> = batch.iter().map(|(_, e)| e).collect();
        if let Answer::Refused(_) = client.post(&events)? {
            // One refusal sinks an atomic batch: find which by posting each.
            for (slug, event) in batch {
                if let Answer::Refused(why) = client.post(&[event])? {
                    failed.insert(slug.clone(), why);
                }
            }
        }
    }
    Ok(failed)
}

/// Post each unit's events, many units to a batch; a refused batch is posted
/// again unit by unit, so only the rows the server refuses are left out.
fn post_units(
    client: &Client,
    units: &[Unit],
    summary: &mut Summary,
    progress: &mut Progress,
    file_of: impl Fn(&Unit) -> String,
) -> anyhow::Result<()> {
    let landed = |u: &Unit, s: &mut Summary| {
        if u.retracts {
            s.retracted += 1;
        } else {
            s.written += 1;
        }
    };
    for batch in batches(units, |u| (u.events.len(), u.events.iter().map(json_len).sum())) {
        let events: Vec<&Value> = batch.iter().flat_map(|u| &u.events).collect();
        match client.post(&events)? {
            Answer::Created => batch.iter().for_each(|u| landed(u, summary)),
            Answer::Retried => summary.unchanged += batch.len() as u64,
            Answer::Refused(why) if batch.len() == 1 => {
                summary.refused += 1;
                progress.say(&format!(
                    "{}:{}: refused by the server, nothing written: {why}",
                    file_of(&batch[0]),
                    batch[0].line
                ));
            }
            Answer::Refused(_) => {
                for u in batch {
                    let events: Vec<&Value> = u.events.iter().collect();
                    match client.post(&events)? {
                        Answer::Created => landed(u, summary),
                        Answer::Retried => summary.unchanged += 1,
                        Answer::Refused(why) => {
                            summary.refused += 1;
                            progress.say(&format!(
                                "{}:{}: refused by the server, nothing written: {why}",
                                file_of(u),
                                u.line
                            ));
                        }
                    }
                }
            }
        }
        progress.advance(batch.len() as u64);
    }
    Ok(())
}
