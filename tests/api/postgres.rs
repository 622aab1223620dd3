//! PostgreSQL for the tests of the PostgreSQL store (CONTRACT section 14): the server
//! that `.ci/run` starts (its URL in `SITREP_TEST_POSTGRES`, see `.ci/postgres.sh`), a
//! fresh database on it for each test, and a private cluster that a test may stop and
//! start again under load.
//!
//! Without `SITREP_TEST_POSTGRES` (or without PostgreSQL's binaries, for the private
//! cluster) a test prints why and skips, except with `CI` set, where it fails: a test that
//! needs a service must run in CI.
//!
//! The harness talks to PostgreSQL through `psql`, which comes with every server install:
//! no client crate of the tests' own beside whichever one the store uses, and what it runs
//! is plain SQL a person can paste into a shell.
//!
//! Everything here blocks (it runs PostgreSQL's programs to completion): from an async
//! test on a single-threaded runtime that serves an app in-process, call it through
//! `tokio::task::spawn_blocking`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;

/// A `postgres://` URL of a server where the tests may `CREATE DATABASE`.
pub const SERVER_ENV: &str = "SITREP_TEST_POSTGRES";
/// Connection slots of a private cluster: two servers with their pools and 64 clients.
const PRIVATE_MAX_CONNECTIONS: u32 = 300;
/// Free ports tried when another process takes one between the probe and the start.
const PRIVATE_START_ATTEMPTS: usize = 5;
/// Seconds `pg_ctl` waits for a start or a stop.
const PG_CTL_WAIT_S: &str = "60";
/// Seconds `psql` waits to connect.
const PSQL_CONNECT_TIMEOUT_S: &str = "10";
/// The OS user that runs PostgreSQL when the tests run as root (it refuses root).
const SERVER_OS_USER: &str = "postgres";
/// The role and database of a private cluster.
const PRIVATE_ROLE: &str = "sitrep";
const PRIVATE_DATABASE: &str = "sitrep";

/// The URL of the tests' PostgreSQL server, or `None` (skip, with a message) when none is
/// configured outside CI. Panics in CI without one.
pub fn server_url() -> Option<String> {
    match std::env::var(SERVER_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {SERVER_ENV} is not: .ci/run starts a PostgreSQL server and exports \
                 its URL (.ci/postgres.sh); the PostgreSQL store's tests must not be skipped in CI"
            );
            eprintln!(
                "skipped: {SERVER_ENV} is not set (a postgres:// URL of a server where the tests may \
                 CREATE DATABASE; `source .ci/postgres.sh && postgres_install && postgres_start` \
                 starts one and sets it)"
            );
            None
        }
    }
}

/// A database of its own for one test, dropped (with its connections) when this drops.
pub struct TestDb {
    name: String,
    url: String,
    server: String,
}

impl TestDb {
    /// The `postgres://` URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.server, &sql) {
            // A panic while unwinding would abort the whole test binary.
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// A new, uniquely named, empty database on the tests' server; `None` (skip) when there
/// is no server outside CI.
pub fn fresh_database() -> Option<TestDb> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = server_url()?;
    let name = format!(
        "sitrep_test_{}_{}_{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    psql(&server, &format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("CREATE DATABASE on {SERVER_ENV}: {e}"));
    let mut url = url::Url::parse(&server).unwrap_or_else(|e| panic!("{SERVER_ENV} is not a URL: {e}"));
    url.set_path(&name);
    Some(TestDb {
        url: url.into(),
        name,
        server,
    })
}

/// Run `sql` on the database at `url` with `psql`: its output, unaligned and without
/// headers (one row a line, columns split by `|`), or psql's error.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(bindir().ok_or("no PostgreSQL client binaries")?.join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .env("PGCONNECT_TIMEOUT", PSQL_CONNECT_TIMEOUT_S)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("psql did not run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim_end().to_owned())
    }
}

/// PostgreSQL's programs: the newest of Debian's `/usr/lib/postgresql/*/bin`, else
/// `pg_config --bindir`.
fn bindir() -> Option<PathBuf> {
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max()
        .map(|(_, bin)| bin);
    debian.or_else(|| {
        let out = Command::new("pg_config").arg("--bindir").output().ok()?;
        let bin = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        (out.status.success() && bin.join("initdb").exists()).then_some(bin)
    })
}

/// Whether this process runs as root: `/proc/self` belongs to the process's user.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A PostgreSQL server of one test's own, in a temp dir, on a free loopback port: the test
/// may stop it and start it again (same port, same data) while servers use it.
pub struct PrivateCluster {
    bin: PathBuf,
    tmp: TempDir,
    port: u16,
    password: String,
    running: bool,
}

impl PrivateCluster {
    /// initdb and start a new cluster; `None` (skip, with a message) when PostgreSQL is not
    /// installed outside CI. Panics in CI without it, and whenever it cannot start.
    pub fn start() -> Option<PrivateCluster> {
        let Some(bin) = bindir() else {
            let msg = "the private PostgreSQL cluster needs PostgreSQL's server binaries \
                       (Debian: apt-get install postgresql)";
            assert!(std::env::var_os("CI").is_none(), "CI is set: {msg}");
            eprintln!("skipped: {msg}");
            return None;
        };
        let tmp = tempfile::tempdir().expect("a temp dir");
        if running_as_root() {
            let chown = Command::new("chown")
                .arg(format!("{SERVER_OS_USER}:{SERVER_OS_USER}"))
                .arg(tmp.path())
                .status()
                .expect("chown runs");
            assert!(chown.success(), "chown {SERVER_OS_USER} {}", tmp.path().display());
        }
        let password = format!("{:032x}", rand::random::<u128>());
        let pwfile = tmp.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).expect("write the password file");
        let mut cluster = PrivateCluster {
            bin,
            tmp,
            port: 0,
            password,
            running: false,
        };
        let data = cluster.data_dir();
        let initdb = cluster
            .as_owner("initdb")
            .arg(format!("--pgdata={}", data.display()))
            .arg(format!("--username={PRIVATE_ROLE}"))
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .args(["--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert_ran("initdb", &initdb);
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = {PRIVATE_MAX_CONNECTIONS}\nsynchronous_commit = on\nfsync = on\n",
            cluster.tmp.path().display()
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        std::io::Write::write_all(&mut file, conf.as_bytes()).expect("append to postgresql.conf");

        for _ in 0..PRIVATE_START_ATTEMPTS {
            cluster.port = free_port();
            if cluster.pg_ctl_start().status.success() {
                cluster.running = true;
                break;
            }
        }
        assert!(
            cluster.running,
            "the private PostgreSQL cluster did not start: {}",
            cluster.log()
        );
        let mut admin = url::Url::parse(&cluster.url()).expect("a URL");
        admin.set_path("postgres");
        psql(admin.as_str(), &format!("CREATE DATABASE {PRIVATE_DATABASE}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE on the private cluster: {e}"));
        Some(cluster)
    }

    /// The `postgres://` URL of the cluster's database (the same across stops and starts).
    pub fn url(&self) -> String {
        format!(
            "postgres://{PRIVATE_ROLE}:{}@127.0.0.1:{}/{PRIVATE_DATABASE}",
            self.password, self.port
        )
    }

    /// Stop the server the fast way: open transactions are rolled back, connections cut.
    pub fn stop(&mut self) {
        let out = self.pg_ctl(&["-m", "fast", "stop"]);
        assert_ran("pg_ctl stop", &out);
        self.running = false;
    }

    /// Start the stopped server again on the same port and data.
    pub fn start_again(&mut self) {
        let out = self.pg_ctl_start();
        assert!(
            out.status.success(),
            "the private PostgreSQL cluster did not start again on port {}: {}",
            self.port,
            self.log()
        );
        self.running = true;
    }

    fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.tmp.path().join("server.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// `program` of PostgreSQL's, as the user that owns the data directory.
    fn as_owner(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_OS_USER, "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // A directory the server's user may enter, whatever the tests' own directory.
        command.current_dir(self.tmp.path()).stdin(Stdio::null());
        command
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        self.as_owner("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", PG_CTL_WAIT_S])
            .args(args)
            .output()
            .expect("pg_ctl runs")
    }

    fn pg_ctl_start(&self) -> Output {
        let log = self.log_file();
        let port = format!("-p {}", self.port);
        self.pg_ctl(&["-l", path_str(&log), "-o", &port, "start"])
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.running {
            // Immediate: the temp dir goes next, nothing of the data is kept.
            let out = self.pg_ctl(&["-m", "immediate", "stop"]);
            if !out.status.success() {
                eprintln!(
                    "could not stop the private PostgreSQL cluster: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn assert_ran(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// The harness itself, before the store's tests rely on it
// ---------------------------------------------------------------------------

/// A database on the tests' server, in the catalogue or not.
fn database_exists(server: &str, name: &str) -> bool {
    let sql = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    match psql(server, &sql).expect("the catalogue answers").as_str() {
        "1" => true,
        "0" => false,
        other => panic!("count(*) answered {other:?}"),
    }
}

#[test]
fn a_fresh_database_takes_a_connection_and_a_query_and_is_dropped_after() {
    let Some(db) = fresh_database() else { return };
    let other = fresh_database().expect("a second database");
    assert_ne!(db.name(), other.name(), "each test gets a database of its own");
    assert_eq!(psql(db.url(), "SELECT current_database()").unwrap(), db.name());
    psql(db.url(), "CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1)").unwrap();
    assert_eq!(psql(db.url(), "SELECT sum(x) FROM t").unwrap(), "42");
    assert!(
        psql(other.url(), "SELECT x FROM t").is_err(),
        "another test's database does not see this one's tables"
    );

    // Dropped with its open connections: a connection held here does not keep it.
    let server = server_url().expect("the server of the databases above");
    let mut holder = Command::new(bindir().unwrap().join("psql"))
        .args(["-X", "-q", "-d", db.url(), "-c", "SELECT pg_sleep(60)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql starts");
    let name = db.name().to_owned();
    let held = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'");
    let connected = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        psql(&server, &held).unwrap() == "1"
    });
    assert!(connected, "the holding connection did not show in pg_stat_activity");
    drop(db);
    assert!(!database_exists(&server, &name), "{name} outlived its TestDb");
    assert!(database_exists(&server, other.name()));
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn the_private_cluster_stops_refuses_connections_and_comes_back_with_its_data() {
    let Some(mut cluster) = PrivateCluster::start() else {
        return;
    };
    let url = cluster.url();
    let port = url::Url::parse(&url).unwrap().port().expect("a port");
    psql(&url, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)").unwrap();

    cluster.stop();
    let refused = std::net::TcpStream::connect(("127.0.0.1", port)).expect_err("nothing listens");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");
    let err = psql(&url, "SELECT 1").expect_err("a stopped server answers nothing");
    assert!(err.contains("refused"), "{err}");

    cluster.start_again();
    assert_eq!(cluster.url(), url, "the same port and credentials after a restart");
    assert_eq!(psql(&url, "SELECT x FROM t").unwrap(), "42");
}
