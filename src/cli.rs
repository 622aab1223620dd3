//! The command line: `serve`, `verify`, `export`, `import`, `demo`.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::audit::{verify_chain, Expectation, VerifyReport};
use crate::domain::limits::MAX_BODY_BYTES;
use crate::formats::cloudevents::{parse_origin, CloudEvent, DEFAULT_ORIGIN};
use crate::formats::events_csv;
use crate::ledger::{Appended, Ledger};
use crate::startup::{Application, Settings};
use crate::store::{Location, Store};
use crate::telemetry::{self, LogFormat};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "sitrep",
    version,
    about = "Event-sourced situation tracker: a sourced, hash-chained log of conflict events and the control status it folds into",
    after_help = "Every option can also come from the environment (SITREP_<OPTION>, e.g. SITREP_LISTEN) or from a TOML \
                  config file (--config FILE; keys are the long options with '_' for '-'). A flag wins over the \
                  environment, which wins over the file."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "SITREP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// A TOML file of option defaults (data_dir, listen, tokens, demo, body_limit, body_timeout, workers, rate_limit,
    /// max_subscribers, log_format, signing_key, checkpoint_interval, origin) for `serve` and the commands that share
    /// them; not for `witness`.
    #[arg(long, global = true, env = "SITREP_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server.
    Serve {
        /// Directory of the sled store (created if missing); with --store, where
        /// this server keeps its own files (projection checkpoints, signing state).
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
        /// The log in PostgreSQL instead of sled in --data-dir: postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long, env = "SITREP_STORE", value_name = "URL")]
        store: Option<String>,
        /// Address to listen on.
        #[arg(long, env = "SITREP_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Load the Aleppo demo scenario at start (a no-op when already loaded).
        #[arg(long, env = "SITREP_DEMO")]
        demo: bool,
        /// Largest request body in bytes.
        #[arg(long, env = "SITREP_BODY_LIMIT", default_value_t = MAX_BODY_BYTES)]
        body_limit: usize,
        /// Seconds a client has to send a request body once its head has arrived (`408` after).
        #[arg(long, env = "SITREP_BODY_TIMEOUT", default_value_t = crate::startup::DEFAULT_BODY_TIMEOUT.as_secs(),
              value_parser = clap::value_parser!(u64).range(1..))]
        body_timeout: u64,
        /// HTTP worker threads (0: one per core).
        #[arg(long, env = "SITREP_WORKERS", default_value_t = 0)]
        workers: usize,
        /// Tokens file: `<principal> <role> <sha256 hex>` a line. Without it the
        /// server runs open and only on a loopback address. Reloaded on SIGHUP.
        #[arg(long, env = "SITREP_TOKENS")]
        tokens: Option<PathBuf>,
        /// Requests per second allowed to each principal (burst the same); 0 for
        /// no limit. Applies when tokens are configured.
        #[arg(long, env = "SITREP_RATE_LIMIT", default_value_t = crate::startup::DEFAULT_RATE_PER_SECOND)]
        rate_limit: u32,
        /// Live-feed subscribers served at once; with tokens, one principal holds
        /// at most a quarter of them.
        #[arg(long, env = "SITREP_MAX_SUBSCRIBERS", default_value_t = crate::startup::DEFAULT_MAX_SUBSCRIBERS)]
        max_subscribers: usize,
        /// The log's origin name, a URI-reference: the `source` of its CloudEvents.
        #[arg(long, env = "SITREP_ORIGIN", default_value = DEFAULT_ORIGIN, value_parser = parse_origin)]
        origin: String,
        /// Seconds a read with `min_seq` waits for this server to fold that seq
        /// before it answers `503` (with several servers on one database).
        #[arg(long, env = "SITREP_MIN_SEQ_WAIT", default_value = "5", value_parser = interval)]
        min_seq_wait: f64,
        /// The log's private key (from `sitrep key new`): sign checkpoints,
        /// served at GET /v1/audit/checkpoint. The key's name is the origin.
        #[arg(long, env = "SITREP_SIGNING_KEY")]
        signing_key: Option<PathBuf>,
        /// Seconds between two checkpoints (a new one only when the log grew).
        #[arg(long, env = "SITREP_CHECKPOINT_INTERVAL", default_value_t = crate::transparency::signer::DEFAULT_INTERVAL.as_secs_f64(), value_parser = interval)]
        checkpoint_interval: f64,
        /// A witness, URL+VKEY (its add-checkpoint prefix and cosignature key);
        /// repeat for several. Needs --signing-key.
        #[arg(long = "witness")]
        witness: Vec<crate::transparency::signer::WitnessTarget>,
    },
    /// Make keys for signed checkpoints and witnesses.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Run a witness (C2SP tlog-witness): cosign the checkpoints of the logs it
    /// watches, never two that are inconsistent. Its own process and data dir.
    Witness {
        /// Address to listen on.
        #[arg(long = "listen", env = "SITREP_WITNESS_LISTEN", default_value = "127.0.0.1:7380")]
        witness_listen: String,
        /// The witness's own state directory (not a log's data dir).
        #[arg(
            long = "data-dir",
            env = "SITREP_WITNESS_DATA_DIR",
            default_value = "./sitrep-witness"
        )]
        witness_dir: PathBuf,
        /// The witness's private key (`sitrep key new --witness`).
        #[arg(long, env = "SITREP_WITNESS_KEY")]
        key: PathBuf,
        /// The verifier key of a log to watch (printed by `sitrep key new`).
        #[arg(long = "log", required = true, num_args = 1..)]
        logs: Vec<String>,
        /// Seconds a client has to send a request body once its head has arrived (`408` after).
        #[arg(long = "body-timeout", env = "SITREP_WITNESS_BODY_TIMEOUT",
              default_value_t = crate::startup::DEFAULT_BODY_TIMEOUT.as_secs(),
              value_parser = clap::value_parser!(u64).range(1..))]
        witness_body_timeout: u64,
    },
    /// Make a bearer token: prints the token once, and the line for the tokens file.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Exit 0 when the server answers GET /healthz with 200 (for container health checks).
    Healthcheck {
        #[arg(
            long,
            env = "SITREP_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:8080/healthz"
        )]
        url: String,
    },
    /// Re-check a data directory offline: every hash, every link, no gaps.
    Verify {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
        /// The log in PostgreSQL instead of sled in --data-dir: postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long, env = "SITREP_STORE", value_name = "URL")]
        store: Option<String>,
        /// A tree head saved earlier, SEQ:ROOT (from /v1/audit/head): the log must
        /// still have that Merkle root at that size.
        #[arg(long)]
        expect: Option<Expectation>,
    },
    /// Write the store to stdout: every stored event as NDJSON (the objects of
    /// GET /v1/events, what `import` reads), CSV (as GET /v1/events.csv),
    /// CloudEvents (one structured CloudEvent a line), or the locations at the
    /// head as GeoJSON.
    Export {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
        /// The log in PostgreSQL instead of sled in --data-dir: postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long, env = "SITREP_STORE", value_name = "URL")]
        store: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Ndjson)]
        format: ExportFormat,
        /// The log's origin name, the `source` of the CloudEvents.
        #[arg(long, env = "SITREP_ORIGIN", default_value = DEFAULT_ORIGIN, value_parser = parse_origin)]
        origin: String,
    },
    /// Restore an export into an empty store, checking the chain and the rules.
    Import {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
        /// The log in PostgreSQL instead of sled in --data-dir: postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long, env = "SITREP_STORE", value_name = "URL")]
        store: Option<String>,
        /// The NDJSON export ('-' for stdin).
        file: PathBuf,
    },
    /// Tree heads and proofs, for auditors.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// ACLED data into a running server (see the README, "ACLED import").
    Acled {
        #[command(subcommand)]
        command: AcledCommand,
    },
    /// Load the Aleppo demo scenario into a data directory.
    Demo {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
        /// The log in PostgreSQL instead of sled in --data-dir: postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long, env = "SITREP_STORE", value_name = "URL")]
        store: Option<String>,
    },
}

/// What `sitrep export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One stored event a line, as `GET /v1/events` gives them (what `sitrep import` reads).
    Ndjson,
    /// The columns of `GET /v1/events.csv`.
    Csv,
    /// One structured CloudEvent a line.
    Cloudevents,
    /// Every location with its status at the head of the log, now: the
    /// RFC 7946 FeatureCollection of GET /v1/locations.geojson.
    Geojson,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// A fresh random token for PRINCIPAL with ROLE.
    New {
        #[arg(long)]
        principal: String,
        /// reader, reporter, admin or metrics.
        #[arg(long)]
        role: crate::auth::Role,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// A fresh Ed25519 key named NAME, written to FILE (mode 0600). Prints the
    /// verifier key to give to auditors and witnesses.
    New {
        /// The key's name: for a log, its checkpoints' origin (e.g.
        /// news.example/sitrep); for a witness, the witness's name.
        #[arg(long)]
        name: String,
        /// Where to write the private key (never over an existing file); by
        /// default `sitrep.key`, or `sitrep-witness.key` with --witness.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A witness key: print the cosignature/v1 verifier key (type 0x04).
        #[arg(long)]
        witness: bool,
    },
}

/// What an auditor trusts checkpoints by.
#[derive(clap::Args, Debug, Clone)]
pub struct TrustArgs {
    /// The log's verifier key: trust only checkpoints that verify under it
    /// (GET /v1/audit/checkpoint), not the unsigned head.
    #[arg(long)]
    vkey: Option<String>,
    /// A witness's cosignature verifier key; repeat for several.
    #[arg(long = "witness", requires = "vkey")]
    witnesses: Vec<String>,
    /// Cosignatures required from the --witness keys (default: all of them).
    #[arg(long, requires = "vkey")]
    quorum: Option<usize>,
}

impl TrustArgs {
    fn trust(&self) -> anyhow::Result<Option<crate::auditor::Trust>> {
        let Some(vkey) = &self.vkey else { return Ok(None) };
        let log = crate::transparency::note::verifier(vkey).map_err(anyhow::Error::msg)?;
        let witnesses = self
            .witnesses
            .iter()
            .map(|w| crate::transparency::cosignature::CosignatureVerifier::parse(w).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let quorum = self.quorum.unwrap_or(witnesses.len());
        if quorum > witnesses.len() {
            bail!("--quorum {quorum} needs at least {quorum} --witness keys");
        }
        Ok(Some(crate::auditor::Trust { log, witnesses, quorum }))
    }
}

#[derive(Subcommand, Debug)]
pub enum AcledCommand {
    /// Import an ACLED export (CSV, ACLED's columns) and/or a deletions file
    /// (event_id_cnty, deleted_timestamp). Re-importing writes nothing; a row
    /// with a newer timestamp retracts and replaces its earlier import; a
    /// deletion retracts it. Exit status 0 when every row went in, 1 when some
    /// were refused (each is named by its line on stderr), 2 on a fatal error.
    Import {
        /// The ACLED export.
        file: Option<PathBuf>,
        /// ACLED's deleted events: their earlier imports are retracted.
        #[arg(long)]
        deletions: Option<PathBuf>,
        /// Base URL of the server, e.g. http://127.0.0.1:8080
        #[arg(long, env = "SITREP_SERVER")]
        server: String,
        /// Bearer token of a reporter.
        #[arg(long, env = "SITREP_TOKEN")]
        token: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the tree head of a data directory (seq, hash, root): save SEQ:ROOT.
    Head {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
        /// The log in PostgreSQL instead of sled in --data-dir: postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long, env = "SITREP_STORE", value_name = "URL")]
        store: Option<String>,
    },
    /// Against a running server: prove its log still extends a tree head saved
    /// earlier (RFC 9162 consistency proof), trusting only the saved head.
    CheckConsistency {
        /// Base URL of the server, e.g. http://127.0.0.1:8080
        #[arg(long, env = "SITREP_SERVER")]
        server: String,
        /// The saved tree head, SEQ:ROOT (optional with --vkey: then the
        /// signed checkpoint is only checked, for saving).
        #[arg(long, required_unless_present = "vkey")]
        saved: Option<Expectation>,
        /// A reader's bearer token, for a server that runs with tokens.
        #[arg(long, env = "SITREP_AUDIT_TOKEN")]
        token: Option<String>,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Against a running server: re-hash event SEQ from its content and prove it
    /// is in the saved tree (or the current one).
    CheckInclusion {
        #[arg(long, env = "SITREP_SERVER")]
        server: String,
        #[arg(long)]
        seq: u64,
        /// The tree head to prove against, SIZE:ROOT (default: the server's
        /// head, or its signed checkpoint with --vkey).
        #[arg(long)]
        saved: Option<Expectation>,
        /// A reader's bearer token, for a server that runs with tokens.
        #[arg(long, env = "SITREP_AUDIT_TOKEN")]
        token: Option<String>,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

/// Options a config file may set, and the subcommands that have them.
const CONFIG_KEYS: &[&str] = &[
    "data_dir",
    "store",
    "listen",
    "tokens",
    "demo",
    "body_limit",
    "body_timeout",
    "workers",
    "rate_limit",
    "max_subscribers",
    "log_format",
    "signing_key",
    "checkpoint_interval",
    "origin",
    "min_seq_wait",
];

/// `sitrep key new`'s file without `--out`: a log's key.
const DEFAULT_LOG_KEY: &str = "sitrep.key";
/// `sitrep key new --witness`'s file without `--out`.
const DEFAULT_WITNESS_KEY: &str = "sitrep-witness.key";

/// Parse the command line, with defaults from `--config FILE` when given.
pub fn parse() -> anyhow::Result<Cli> {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let config = config_path(&args).or_else(|| std::env::var_os("SITREP_CONFIG").map(PathBuf::from));
    let mut cmd = Cli::command();
    if let Some(path) = config {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        for (key, value) in table {
            if !CONFIG_KEYS.contains(&key.as_str()) {
                bail!(
                    "{}: unknown option '{key}' (known: {})",
                    path.display(),
                    CONFIG_KEYS.join(", ")
                );
            }
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => bail!(
                    "{}: option '{key}' must be a string, integer or boolean, not {other}",
                    path.display()
                ),
            };
            let id = key.clone();
            if key == "log_format" {
                cmd = cmd.mut_arg(id, |a| a.default_value(value));
                continue;
            }
            let names: Vec<String> = cmd
                .get_subcommands()
                .filter(|sc| sc.get_arguments().any(|a| a.get_id() == key.as_str()))
                .map(|sc| sc.get_name().to_owned())
                .collect();
            for name in names {
                let (id, value) = (id.clone(), value.clone());
                cmd = cmd.mut_subcommand(name, move |sc| sc.mut_arg(id, move |a| a.default_value(value)));
            }
        }
    }
    let matches = cmd.get_matches_from(args);
    Ok(Cli::from_arg_matches(&matches)?)
}

fn config_path(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// Run the parsed command; the exit code is the returned one.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Serve {
            data_dir,
            store,
            listen,
            demo,
            body_limit,
            body_timeout,
            workers,
            tokens,
            rate_limit,
            max_subscribers,
            signing_key,
            checkpoint_interval,
            witness,
            origin,
            min_seq_wait,
        } => {
            let settings = Settings {
                body_limit,
                body_timeout: std::time::Duration::from_secs(body_timeout),
                demo,
                workers,
                tokens,
                rate_per_second: rate_limit,
                max_subscribers,
                signing_key,
                checkpoint_interval: std::time::Duration::from_secs_f64(checkpoint_interval),
                witnesses: witness,
                origin,
                store: store.as_deref().map(Location::parse),
                min_seq_wait: std::time::Duration::from_secs_f64(min_seq_wait),
                ..Settings::new(data_dir, listen)
            };
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings).await?;
                app.run_with_signals().await?;
                anyhow::Ok(())
            })?;
            Ok(0)
        }
        Command::Verify {
            data_dir,
            store,
            expect,
        } => {
            let store = open_existing(&location(store, data_dir))?;
            let report = verify_chain(&*store, store.head().seq, expect).context("the store cannot be read")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            match report {
                VerifyReport::Ok { checked, .. } => {
                    eprintln!(
                        "ok: {checked} events, chain intact{}",
                        if expect.is_some() {
                            ", saved tree head matches"
                        } else {
                            ""
                        }
                    );
                    Ok(0)
                }
                VerifyReport::Bad {
                    first_bad_seq, reason, ..
                } => {
                    eprintln!("FAILED at seq {first_bad_seq}: {reason}");
                    Ok(1)
                }
            }
        }
        Command::Export {
            data_dir,
            store,
            format,
            origin,
        } => {
            export(&location(store, data_dir), format, &origin)?;
            Ok(0)
        }
        Command::Import { data_dir, store, file } => {
            let location = location(store, data_dir);
            let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file).with_context(|| format!("cannot read {}", file.display()))?,
                ))
            };
            let events = reader
                .lines()
                .filter(|l| !matches!(l, Ok(s) if s.trim().is_empty()))
                .map(|line| {
                    let line = line.map_err(|e| e.to_string())?;
                    Ledger::import_line(&line)
                });
            let n = Ledger::import(&location, events)?;
            eprintln!("imported {n} events into {}", location.describe());
            Ok(0)
        }
        Command::Audit { command } => audit(command),
        Command::Key {
            command: KeyCommand::New { name, out, witness },
        } => {
            let out = out.unwrap_or_else(|| PathBuf::from(if witness { DEFAULT_WITNESS_KEY } else { DEFAULT_LOG_KEY }));
            let key = crate::transparency::note::PrivateKey::generate(&name)?;
            key.save(&out)
                .with_context(|| format!("cannot write the key to {}", out.display()))?;
            if witness {
                let c = crate::transparency::cosignature::Cosigner::new(key.name(), key.ed25519().clone());
                println!("{}", c.vkey());
                eprintln!(
                    "Private key written to {} (0600). The line above is the witness's verifier key: give it to \
                     the log (serve --witness URL+VKEY) and to auditors (--witness VKEY).",
                    out.display()
                );
            } else {
                println!("{}", key.vkey());
                eprintln!(
                    "Private key written to {} (0600). The line above is the log's verifier key: give it to \
                     auditors (--vkey) and witnesses (--log); start the server with --signing-key {}.",
                    out.display(),
                    out.display()
                );
            }
            Ok(0)
        }
        Command::Witness {
            witness_listen: listen,
            witness_dir,
            key,
            logs,
            witness_body_timeout,
        } => {
            let settings = crate::transparency::witness::WitnessSettings {
                listen,
                data_dir: witness_dir,
                key,
                logs,
                body_timeout: std::time::Duration::from_secs(witness_body_timeout),
            };
            actix_web::rt::System::new().block_on(async move {
                let app = crate::transparency::witness::WitnessApp::build(settings).await?;
                app.run_with_signals().await
            })?;
            Ok(0)
        }
        Command::Token {
            command: TokenCommand::New { principal, role },
        } => {
            let line = format!("{principal} {role} ");
            if crate::auth::Tokens::parse(&format!("{line}{}", "0".repeat(64))).is_err() {
                bail!("'{principal}' is not a valid principal (A-Z a-z 0-9 - _ . @, at most 64)");
            }
            let (token, hash) = crate::auth::new_token();
            println!("{token}");
            eprintln!("Give the token above to {principal}; it is shown only this once.");
            eprintln!("Add this line to the tokens file, then send the server SIGHUP:");
            eprintln!("{line}{hash}");
            Ok(0)
        }
        Command::Healthcheck { url } => {
            let ok = reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()?
                .get(&url)
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            Ok(if ok { 0 } else { 1 })
        }
        Command::Acled {
            command:
                AcledCommand::Import {
                    file,
                    deletions,
                    server,
                    token,
                },
        } => {
            let summary = crate::acled::import(&crate::acled::Options {
                file,
                deletions,
                server,
                token,
            })?;
            Ok(if summary.refused == 0 { 0 } else { 1 })
        }
        Command::Demo { data_dir, store } => {
            let location = location(store, data_dir.clone());
            let ledger = Ledger::open_at(&location, Some(&data_dir))?;
            match ledger.append_blocking(crate::demo::events(), true, crate::demo::DEMO_PRINCIPAL.into())? {
                Appended::Created(r) => eprintln!("loaded {} demo events into {}", r.len(), location.describe()),
                Appended::Retried(_) => eprintln!("the demo scenario is already in {}", location.describe()),
            }
            Ok(0)
        }
    }
}

/// A checkpoint interval in seconds: positive and finite.
fn interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds from 0 to 86400 (e.g. 5 or 0.5)"
        )),
    }
}

/// Every stored event, in seq order, to stdout in `format`.
fn export(location: &Location, format: ExportFormat, origin: &str) -> anyhow::Result<()> {
    let store = open_existing(location)?;
    let head = store.durable_head()?;
    let out = BufWriter::new(std::io::stdout().lock());
    let events = store.scan(1).take(head.seq as usize);
    match format {
        ExportFormat::Ndjson | ExportFormat::Cloudevents => {
            let mut out = out;
            for item in events {
                let event = item?;
                let line = match format {
                    ExportFormat::Cloudevents => CloudEvent::of(&event, origin).to_json(),
                    _ => Ledger::export_line(&event),
                };
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        ExportFormat::Geojson => {
            let mut out = out;
            let (projection, _) = crate::ledger::restore(&*store, None).context("the log cannot be folded")?;
            let views = projection.location_views(
                crate::projection::Point::default(),
                &crate::projection::view::LocationFilter::default(),
                chrono::Utc::now(),
            );
            serde_json::to_writer(&mut out, &crate::formats::geojson::locations(&views))?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        ExportFormat::Csv => {
            let mut w = events_csv::writer(out);
            events_csv::write_header(&mut w)?;
            for item in events {
                events_csv::write_event(&mut w, &item?)?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// Where a command's log is: `--store`, or sled in `--data-dir`.
fn location(store: Option<String>, data_dir: PathBuf) -> Location {
    store.as_deref().map_or(Location::Sled(data_dir), Location::parse)
}

fn open_existing(location: &Location) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(dir) = location.sled_dir() {
        if !dir.join("db").exists() {
            bail!("{} holds no sitrep store", dir.display());
        }
    }
    location
        .open()
        .with_context(|| format!("cannot open the store ({}; is a server using it?)", location.describe()))
}

fn audit(command: AuditCommand) -> anyhow::Result<i32> {
    use crate::auditor::Auditor;
    match command {
        AuditCommand::Head { data_dir, store } => {
            let store = open_existing(&location(store, data_dir))?;
            let head = store.durable_head()?;
            let root = store.frontier(head.seq)?.root();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"seq": head.seq, "hash": head.hash, "root": hex::encode(root)})
                )?
            );
            eprintln!("save this: {}:{}", head.seq, hex::encode(root));
            Ok(0)
        }
        AuditCommand::CheckConsistency {
            server,
            saved,
            token,
            trust,
        } => match Auditor::new(&server, token.as_deref())?.check_consistency(saved, trust.trust()?.as_ref()) {
            Ok(head) => {
                println!("{}", serde_json::to_string_pretty(&head)?);
                let signed = match head.cosignatures {
                    Some(n) => format!(" (signed checkpoint, {n} witness cosignature(s))"),
                    None => String::new(),
                };
                match saved {
                    Some(saved) => eprintln!(
                        "ok: the log of {} events{signed} extends the saved tree of {}; save {}:{}",
                        head.seq, saved.size, head.seq, head.root
                    ),
                    None => eprintln!(
                        "ok: the checkpoint of {} events verifies{signed}; save {}:{}",
                        head.seq, head.seq, head.root
                    ),
                }
                Ok(0)
            }
            Err(e) => {
                eprintln!("FAILED: {e:#}");
                Ok(1)
            }
        },
        AuditCommand::CheckInclusion {
            server,
            seq,
            saved,
            token,
            trust,
        } => match Auditor::new(&server, token.as_deref())?.check_inclusion(seq, saved, trust.trust()?.as_ref()) {
            Ok((event, tree)) => {
                println!("{}", serde_json::to_string_pretty(&event)?);
                eprintln!("ok: event {seq} ({}) is in the tree of {} events", event.id, tree.size);
                Ok(0)
            }
            Err(e) => {
                eprintln!("FAILED: {e:#}");
                Ok(1)
            }
        },
    }
}
