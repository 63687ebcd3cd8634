//! A `host-test serve` child process for the integration tests: started on a
//! free port with time scaled down, fed over HTTP, its stderr kept in a log
//! file beside the spool (`SPOOL.log`), or where the test says for a node on
//! a shared database (`--store URL`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Server {
    pub log: PathBuf,
    child: Child,
    addr: SocketAddr,
    /// Kept open so the server can go on writing to its stdout.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    pub fn start(config: &Path, spool: &Path, extra: &[&str]) -> Server {
        Server::start_with(&["--config", config.to_str().unwrap()], spool, extra)
    }

    /// [`Server::start`] with `env` added to its environment (a proxy:
    /// `HTTPS_PROXY`), for this child alone.
    pub fn start_env(config: &Path, spool: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut log = spool.as_os_str().to_owned();
        log.push(".log");
        Server::spawn_env(
            Path::new(env!("CARGO_BIN_EXE_host-test")),
            &["--config", config.to_str().unwrap()],
            &["--spool", spool.to_str().unwrap()],
            Path::new(&log),
            extra,
            env,
        )
    }

    /// Starts with `target` naming what to run (`--config FILE` or
    /// `--plugins DIR`).
    pub fn start_with(target: &[&str], spool: &Path, extra: &[&str]) -> Server {
        Server::start_binary(
            Path::new(env!("CARGO_BIN_EXE_host-test")),
            target,
            spool,
            extra,
        )
    }

    /// Starts `binary` (a `host-test` built elsewhere, for a baseline).
    pub fn start_binary(binary: &Path, target: &[&str], spool: &Path, extra: &[&str]) -> Server {
        let mut log = spool.as_os_str().to_owned();
        log.push(".log");
        Server::spawn(
            binary,
            target,
            &["--spool", spool.to_str().unwrap()],
            Path::new(&log),
            extra,
        )
    }

    /// Starts a node on the shared store at `store_url` (`--store URL`, e.g.
    /// `postgres://postgres@127.0.0.1:PORT/alerts`) instead of a spool
    /// directory, its stderr in `log`.
    pub fn start_on_store(config: &Path, store_url: &str, log: &Path, extra: &[&str]) -> Server {
        Server::start_on(config, &["--store", store_url], log, extra)
    }

    /// Starts a node on the store `store` says (`--store URL`, or
    /// `--store-url-file FILE`), its stderr in `log`.
    pub fn start_on(config: &Path, store: &[&str], log: &Path, extra: &[&str]) -> Server {
        Server::spawn(
            Path::new(env!("CARGO_BIN_EXE_host-test")),
            &["--config", config.to_str().unwrap()],
            store,
            log,
            extra,
        )
    }

    /// Runs `binary serve TARGET --listen 127.0.0.1:0 STORE EXTRA` (`STORE`
    /// says where alerts are kept: `--spool DIR` or `--store URL`), stderr
    /// appended to `log`, and reads where it listens.
    fn spawn(binary: &Path, target: &[&str], store: &[&str], log: &Path, extra: &[&str]) -> Server {
        Server::spawn_env(binary, target, store, log, extra, &[])
    }

    fn spawn_env(
        binary: &Path,
        target: &[&str],
        store: &[&str],
        log: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut args = vec!["serve"];
        args.extend_from_slice(target);
        args.extend(["--listen", "127.0.0.1:0"]);
        args.extend_from_slice(store);
        // Backoff scaled down too, unless asked.
        if !extra.contains(&"--backoff-base-ms") {
            args.extend(["--backoff-base-ms", "50"]);
        }
        // Time scaled down: 10 ms between messages to a channel, unless asked.
        if !extra.contains(&"--channel-interval-ms") {
            args.extend(["--channel-interval-ms", "10"]);
        }
        args.extend_from_slice(extra);
        let log = log.to_path_buf();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(binary)
            .args(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "the first line says where serve listens, not {line:?}; serve {args:?} logged:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .parse()
            .unwrap();
        Server {
            log,
            child,
            addr,
            _stdout: stdout,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id (for reading `/proc/PID`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory, from `/proc` (Linux), in KiB.
    pub fn resident_kib(&self) -> Option<u64> {
        proc_figure(self.pid(), "status", "VmRSS:")
    }

    /// Its threads now, from `/proc` (Linux).
    pub fn threads(&self) -> Option<u64> {
        proc_figure(self.pid(), "status", "Threads:")
    }

    /// POSTs `body`; the status and the JSON answer.
    pub fn post(&self, body: &str) -> (u16, Value) {
        self.request(&format!(
            "POST /alert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    /// POSTs `body` with handler options in the query (`channel=%23c&...`).
    pub fn post_with(&self, query: &str, body: &str) -> (u16, Value) {
        let answer = self.post_answer(query, body);
        (answer.status, answer.body)
    }

    /// POSTs `body` with handler options in the query; the whole answer,
    /// headers too (a `503`'s `Retry-After`).
    pub fn post_answer(&self, query: &str, body: &str) -> Answer {
        self.exchange(&format!(
            "POST /alert?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    /// What the server has logged so far.
    pub fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Everything `GET /spool` shows, every page of every list read and
    /// put together: `{"pending": [ids], "finished": [oldest first],
    /// "messages": [...], "resendable": [...]}`.
    pub fn spool(&self) -> Value {
        whole_spool(|path| {
            self.request(&format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            ))
            .1
        })
    }

    pub fn request(&self, raw: &str) -> (u16, Value) {
        let answer = self.exchange(raw);
        (answer.status, answer.body)
    }

    /// `GET /metrics` (no token), as the text it is.
    pub fn metrics(&self) -> String {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    /// Sends `raw` (a whole HTTP/1.1 request that says `Connection:
    /// close`); the whole answer.
    pub fn exchange(&self, raw: &str) -> Answer {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Answer {
            status,
            headers,
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }

    /// Sends SIGTERM and waits (at most 60 s) for the exit; its status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// One answer of `serve`'s.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::Null` if it is not JSON).
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the configuration `serve` reads.
/// A figure of process `pid`'s `/proc/PID/FILE` (`status`,
/// `smaps_rollup`): the number after `key` (`VmRSS:`, `Pss:` in KiB;
/// `Threads:`). `None` once the process is gone.
pub fn proc_figure(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    proc_field(&text, key)
}

/// The number after `key` in the text of a `/proc` file.
pub fn proc_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("slack.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One keep-alive HTTP/1.1 connection to `serve`, for benchmarks that post
/// many alerts.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let writer = TcpStream::connect(addr)?;
        writer.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::new(writer.try_clone()?),
            writer,
        })
    }

    /// POSTs `body` with `query` (handler options); the status line.
    pub fn post(&mut self, query: &str, body: &str) -> std::io::Result<String> {
        // One write, as HTTP clients send a small request: `write!` straight
        // to the socket would send each piece in a segment of its own.
        let request = format!(
            "POST /?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(request.as_bytes())?;
        let mut status = String::new();
        self.reader.read_line(&mut status)?;
        let mut length = 0;
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer)?;
        Ok(status.trim_end().to_string())
    }
}

pub fn alert(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","message":"alert {id}","time":"2026-11-26T10:00:00Z","level":"CRITICAL"}}"#
    )
}

pub fn wait_until(what: &str, cond: impl Fn() -> bool) {
    // Bounded; generous because CI may share the cores with a build.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads every page of every list of `GET /spool` through `get` (a path
/// to its JSON answer) and puts them together, oldest first.
pub fn whole_spool(get: impl Fn(&str) -> Value) -> Value {
    let mut whole = serde_json::Map::new();
    for list in ["pending", "finished", "messages", "resendable"] {
        let mut items = Vec::new();
        let mut path = format!("/spool?list={list}&limit=1000");
        loop {
            let page = get(&path);
            let Some(got) = page[list]["items"].as_array() else {
                panic!("GET {path} answered {page}");
            };
            items.extend(got.iter().cloned());
            match page[list]["next"].as_u64() {
                Some(next) => path = format!("/spool?list={list}&limit=1000&after={next}"),
                None => break,
            }
        }
        if list == "finished" {
            items.reverse();
        }
        whole.insert(list.to_string(), Value::Array(items));
    }
    Value::Object(whole)
}
