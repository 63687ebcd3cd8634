//! A throwaway PostgreSQL server for tests: `initdb` into a temporary
//! directory, `postgres` on a free port of 127.0.0.1, stopped (and the
//! directory removed) when dropped. Never a system service. PostgreSQL
//! refuses to run as root, so as root the server runs as the `postgres`
//! user (`runuser`), in a directory that user owns.
//!
//! The binaries are found with `PG_BIN`, else `pg_config --bindir`, else the
//! newest `/usr/lib/postgresql/*/bin` (Debian's layout).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running throwaway server.
pub struct TestDb {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    tls: bool,
    durable: bool,
    options: String,
}

/// How a throwaway server is set up beyond the defaults (trust on every
/// connection, no TLS).
#[derive(Default)]
pub struct Setup {
    /// Connections over TCP must give a password (scram-sha-256); the
    /// superuser's own statements still go over the Unix socket.
    pub passwords: bool,
    /// TLS with this certificate and key (PEM).
    pub tls: Option<(String, String)>,
    /// Commits reach the disk (`fsync` on, as in production; benchmarks).
    /// Tests run without, for speed.
    pub durable: bool,
    /// With `tls`: connections over TLS must present a client certificate
    /// this authority (PEM) signed, naming the user (`cert` in
    /// `pg_hba.conf`).
    pub client_ca: Option<String>,
    /// The server's own settings besides (`-c name=value ...`), e.g. to
    /// look inside it.
    pub options: String,
}

/// Where PostgreSQL's server binaries are, or why none were found.
fn binaries() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| not_installed())?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(not_installed)
}

fn not_installed() -> String {
    "PostgreSQL's server is not installed: `apt-get install postgresql` (scripts/test.sh does), or set PG_BIN to the directory of initdb and pg_ctl".into()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TestDb {
    /// Starts a fresh server with one database, `alerts`, and the
    /// superuser `postgres` (trust authentication on 127.0.0.1).
    pub fn start() -> TestDb {
        TestDb::start_with(Setup::default())
    }

    /// Starts a fresh server set up as `setup` says.
    pub fn start_with(setup: Setup) -> TestDb {
        let bin = binaries().unwrap_or_else(|e| panic!("{e}"));
        let as_postgres = running_as_root();
        let dir = std::env::temp_dir().join(format!(
            "slack-alertd-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the test database");
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres", dir.to_str().unwrap()])
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {}", dir.display());
        }
        let db = TestDb {
            bin,
            dir,
            port: free_port(),
            as_postgres,
            tls: setup.tls.is_some(),
            durable: setup.durable,
            options: setup.options,
        };
        let data = db.dir.join("data");
        let host_auth = if setup.passwords {
            "--auth-host=scram-sha-256"
        } else {
            "--auth-host=trust"
        };
        db.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "--auth-local=trust",
                host_auth,
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        // A TLS file in the data directory, the server's alone.
        let place = |name: &str, pem: &str| {
            let path = data.join(name);
            std::fs::write(&path, pem).expect("the server's TLS files");
            if as_postgres {
                let _ = Command::new("chown")
                    .args(["postgres", path.to_str().unwrap()])
                    .status();
            }
            let _ = Command::new("chmod")
                .args(["600", path.to_str().unwrap()])
                .status();
        };
        if let Some((cert, key)) = &setup.tls {
            place("server.crt", cert);
            place("server.key", key);
        }
        if let Some(ca) = &setup.client_ca {
            place("root.crt", ca);
            // First match wins: TLS over TCP asks for the certificate.
            let hba = data.join("pg_hba.conf");
            let rest = std::fs::read_to_string(&hba).expect("pg_hba.conf");
            std::fs::write(&hba, format!("hostssl all all 127.0.0.1/32 cert\n{rest}"))
                .expect("pg_hba.conf");
            let conf = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
            text.push_str("\nssl_ca_file = 'root.crt'\n");
            std::fs::write(&conf, text).expect("postgresql.conf");
        }
        db.pg_ctl(&["start", "-w", "-t", "30"]);
        db.psql("CREATE DATABASE alerts");
        db
    }

    /// The URL of the `alerts` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/alerts", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Restarts the server at once, as a crash would (`-m immediate`).
    pub fn restart_immediately(&self) {
        self.pg_ctl(&["restart", "-m", "immediate", "-w", "-t", "30"]);
    }

    /// Stops the server at once; [`TestDb::start_again`] brings it back.
    pub fn stop_immediately(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]);
    }

    /// Starts a stopped server again, on the same port and data.
    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-w", "-t", "30"]);
    }

    /// Runs one SQL statement as the superuser, on the `postgres` database
    /// (over the Unix socket, which trusts the superuser).
    pub fn psql(&self, sql: &str) {
        self.superuser_sql("-q", sql);
    }

    /// Runs one query as the superuser on the `postgres` database: its
    /// rows, unaligned, one a line (`psql -At`).
    pub fn query(&self, sql: &str) -> String {
        self.superuser_sql("-At", sql)
    }

    /// `psql` as the superuser on the `postgres` database over the Unix
    /// socket, with output flags `output`: what it printed.
    fn superuser_sql(&self, output: &str, sql: &str) -> String {
        self.run(
            "psql",
            &[
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                output,
                "-c",
                sql,
            ],
        )
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        if !self.durable {
            options.push_str(" -c fsync=off");
        }
        if self.tls {
            options.push_str(" -c ssl=on");
        }
        if !self.options.is_empty() {
            options.push(' ');
            options.push_str(&self.options);
        }
        let mut all = vec![
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
        ];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        let path = if program == "psql" {
            // psql is a client: on Debian it lives in /usr/bin too.
            let beside = self.bin.join("psql");
            if beside.exists() {
                beside
            } else {
                PathBuf::from("psql")
            }
        } else {
            self.bin.join(program)
        };
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let started = Instant::now();
        let out = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{} {} failed after {:?}: {}{}\n{}",
            program,
            args.first().unwrap_or(&""),
            started.elapsed(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The directory the server lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            Command::new(&pg_ctl)
        };
        let _ = command
            .args(["-D", data.to_str().unwrap(), "stop", "-m", "immediate"])
            .output();
        // A moment for the postmaster to let go of its files.
        std::thread::sleep(Duration::from_millis(50));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether this process runs as root (PostgreSQL refuses to).
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
