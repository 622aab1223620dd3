//! The command line: `serve`, `verify`, `export`, `import`, `demo`.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::audit::{verify_chain, Expectation, VerifyReport};
use crate::domain::limits::MAX_BODY_BYTES;
use crate::ledger::{Appended, Ledger};
use crate::startup::{Application, Settings};
use crate::store::Store;
use crate::telemetry::{self, LogFormat};

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
    /// A TOML file of option defaults (data_dir, listen, tokens, demo, body_limit, body_timeout, workers, rate_limit, max_subscribers, log_format).
    #[arg(long, global = true, env = "SITREP_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server.
    Serve {
        /// Directory of the sled store (created if missing).
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
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
        /// A tree head saved earlier, SEQ:ROOT (from /v1/audit/head): the log must
        /// still have that Merkle root at that size.
        #[arg(long)]
        expect: Option<Expectation>,
    },
    /// Write every stored event to stdout as NDJSON (the objects of GET /v1/events).
    Export {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
    },
    /// Restore an export into an empty store, checking the chain and the rules.
    Import {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
        /// The NDJSON export ('-' for stdin).
        file: PathBuf,
    },
    /// Measure this machine: HTTP ceiling, durable and batch appends, reads,
    /// the storage floor, rebuild and start-up at scale. Prints a table.
    Bench {
        /// Measure a running deployment instead of a server of its own.
        #[arg(long)]
        server: Option<String>,
        /// Bearer token (a reporter) for --server.
        #[arg(long, env = "SITREP_BENCH_TOKEN")]
        token: Option<String>,
        /// Runs of each measurement; the table shows medians.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Seconds per run.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Events of the at-scale log (0 skips it).
        #[arg(long, default_value_t = 1_000_000)]
        scale_events: u64,
        /// Locations of the at-scale log.
        #[arg(long, default_value_t = 10_000)]
        scale_locations: u64,
        /// Keep the at-scale log in this directory: written by the first run,
        /// reused by later ones (of the same size and build).
        #[arg(long)]
        scale_dir: Option<PathBuf>,
        /// Run only these parts (comma-separated), e.g. `--only time-travel,scale`.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<crate::bench::Part>,
    },
    /// Tree heads and proofs, for auditors.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Load the Aleppo demo scenario into a data directory.
    Demo {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
    },
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
pub enum AuditCommand {
    /// Print the tree head of a data directory (seq, hash, root): save SEQ:ROOT.
    Head {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
    },
    /// Against a running server: prove its log still extends a tree head saved
    /// earlier (RFC 9162 consistency proof), trusting only the saved head.
    CheckConsistency {
        /// Base URL of the server, e.g. http://127.0.0.1:8080
        #[arg(long, env = "SITREP_SERVER")]
        server: String,
        /// The saved tree head, SEQ:ROOT.
        #[arg(long)]
        saved: Expectation,
    },
    /// Against a running server: re-hash event SEQ from its content and prove it
    /// is in the saved tree (or the current one).
    CheckInclusion {
        #[arg(long, env = "SITREP_SERVER")]
        server: String,
        #[arg(long)]
        seq: u64,
        /// The tree head to prove against, SIZE:ROOT (default: the server's head).
        #[arg(long)]
        saved: Option<Expectation>,
    },
}

/// Options a config file may set, and the subcommands that have them.
const CONFIG_KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "tokens",
    "demo",
    "body_limit",
    "body_timeout",
    "workers",
    "rate_limit",
    "max_subscribers",
    "log_format",
];

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
            listen,
            demo,
            body_limit,
            body_timeout,
            workers,
            tokens,
            rate_limit,
            max_subscribers,
        } => {
            let settings = Settings {
                body_limit,
                body_timeout: std::time::Duration::from_secs(body_timeout),
                demo,
                workers,
                tokens,
                rate_per_second: rate_limit,
                max_subscribers,
                ..Settings::new(data_dir, listen)
            };
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings).await?;
                app.run_with_signals().await?;
                anyhow::Ok(())
            })?;
            Ok(0)
        }
        Command::Verify { data_dir, expect } => {
            let store = open_existing(&data_dir)?;
            let report = verify_chain(&store, store.head().seq, expect).context("the store cannot be read")?;
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
        Command::Export { data_dir } => {
            let store = open_existing(&data_dir)?;
            let out = std::io::stdout();
            let mut out = BufWriter::new(out.lock());
            let upto = store.head().seq;
            for item in store.scan(1).take(upto as usize) {
                out.write_all(Ledger::export_line(&item?).as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(0)
        }
        Command::Import { data_dir, file } => {
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
            let n = Ledger::import(&data_dir, events)?;
            eprintln!("imported {n} events into {}", data_dir.display());
            Ok(0)
        }
        Command::Audit { command } => audit(command),
        Command::Bench {
            server,
            token,
            reps,
            seconds,
            scale_events,
            scale_locations,
            scale_dir,
            only,
        } => {
            crate::bench::run(crate::bench::Options {
                server,
                token,
                reps: reps.max(1),
                seconds,
                scale_events,
                scale_locations: scale_locations.max(1),
                scale_dir,
                only,
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
        Command::Demo { data_dir } => {
            let ledger = Ledger::open(&data_dir)?;
            match ledger.append_blocking(crate::demo::events(), true, crate::demo::DEMO_PRINCIPAL.into())? {
                Appended::Created(r) => eprintln!("loaded {} demo events into {}", r.len(), data_dir.display()),
                Appended::Retried(_) => eprintln!("the demo scenario is already in {}", data_dir.display()),
            }
            Ok(0)
        }
    }
}

fn open_existing(dir: &std::path::Path) -> anyhow::Result<Store> {
    if !dir.join("db").exists() {
        bail!("{} holds no sitrep store", dir.display());
    }
    Store::open(dir).with_context(|| format!("cannot open the store in {} (is a server using it?)", dir.display()))
}

fn audit(command: AuditCommand) -> anyhow::Result<i32> {
    use crate::auditor::Auditor;
    match command {
        AuditCommand::Head { data_dir } => {
            let store = open_existing(&data_dir)?;
            let head = store.head();
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
        AuditCommand::CheckConsistency { server, saved } => match Auditor::new(&server)?.check_consistency(saved) {
            Ok(head) => {
                println!("{}", serde_json::to_string_pretty(&head)?);
                eprintln!(
                    "ok: the log of {} events extends the saved tree of {}; save {}:{}",
                    head.seq, saved.size, head.seq, head.root
                );
                Ok(0)
            }
            Err(e) => {
                eprintln!("FAILED: {e:#}");
                Ok(1)
            }
        },
        AuditCommand::CheckInclusion { server, seq, saved } => match Auditor::new(&server)?.check_inclusion(seq, saved)
        {
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
