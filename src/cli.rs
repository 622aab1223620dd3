//! The command line: `serve`, `verify`, `export`, `import`, `demo`.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::audit::{verify_chain, Expectation, VerifyReport};
use crate::domain::limits::MAX_BODY_BYTES;
use crate::domain::StoredEvent;
use crate::ledger::{Appended, Ledger};
use crate::startup::{Application, Settings};
use crate::store::Store;
use crate::telemetry::{self, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "sitrep",
    version,
    about = "Event-sourced situation tracker: a sourced, hash-chained log of conflict events and the control status it folds into"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "SITREP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
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
        /// HTTP worker threads (0: one per core).
        #[arg(long, env = "SITREP_WORKERS", default_value_t = 0)]
        workers: usize,
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
    /// Load the Aleppo demo scenario into a data directory.
    Demo {
        #[arg(long, env = "SITREP_DATA_DIR", default_value = "./sitrep-data")]
        data_dir: PathBuf,
    },
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
            workers,
        } => {
            let settings = Settings {
                body_limit,
                demo,
                workers,
                ..Settings::new(data_dir, listen)
            };
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings).await?;
                app.run_until_stopped().await?;
                anyhow::Ok(())
            })?;
            Ok(0)
        }
        Command::Verify { data_dir, expect } => {
            let store = open_existing(&data_dir)?;
            let report = verify_chain(&store, store.head().seq, expect);
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
                let event = item?;
                serde_json::to_writer(&mut out, &event)?;
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
                    serde_json::from_str::<StoredEvent>(&line).map_err(|e| format!("not a stored event: {e}"))
                });
            let n = Ledger::import(&data_dir, events)?;
            eprintln!("imported {n} events into {}", data_dir.display());
            Ok(0)
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
