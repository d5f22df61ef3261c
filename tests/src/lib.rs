//! raida-tests: end-to-end tests that start the real `raida-server` binary on
//! `--port 0` and talk to it over loopback with the client library.
//!
//! **Finding the binary.** `CARGO_BIN_EXE_raida-server` exists only inside the package
//! that owns the binary (raida-server), so [`server_binary`] builds it instead, once
//! per test process: `cargo build -p raida-server --bin raida-server` with the same
//! cargo, target directory and profile as the running test (derived from the test
//! executable's path, `<target>/<profile>/deps/<test>`), and takes
//! `<target>/<profile>/raida-server`. Cargo has released its build lock by the time
//! tests run, and the build is a no-op when the binary is up to date. Set
//! `RAIDA_SERVER_BIN` to a binary to skip the build (e.g. in CI after
//! `cargo build --release -p raida-server`). [`release_server_binary`] does the same
//! with `--release` whatever the test's profile (`RAIDA_SERVER_RELEASE_BIN` overrides),
//! for tests that run many servers at once; `scripts/test` builds it first.
//!
//! Every wait here is bounded in time; processes are stopped by their own PID.
//!
//! [`network::LocalNetwork`] starts a whole RAIDA network on loopback: N servers, raida
//! ids 0..N on consecutive ports, each with its own data root and `config.toml`.

pub mod network;

use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use raida_client::{Coin, Keys};
use raida_store::{demo_coin_an, write_demo_store};

/// How long a server may take to print its `listening` line (a debug build may be
/// compiling in parallel with other tests).
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
/// A generous bound for any single exchange or close the tests wait for.
pub const GENEROUS: Duration = Duration::from_secs(20);

/// The `raida-server` binary (see the crate docs; `RAIDA_SERVER_BIN` overrides).
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        workspace_binary(
            "raida-server",
            Built::Bin("raida-server"),
            "RAIDA_SERVER_BIN",
            None,
        )
    })
    .clone()
}

/// The `raida-server` binary of the release profile, whatever the running test's
/// profile: `cargo build --release -p raida-server --bin raida-server` into the test's
/// target directory (a no-op when it is up to date), `<target>/release/raida-server`.
/// `RAIDA_SERVER_RELEASE_BIN` overrides. For tests that start a whole network: 25
/// debug servers are slow to answer on a small machine.
pub fn release_server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        workspace_binary(
            "raida-server",
            Built::Bin("raida-server"),
            "RAIDA_SERVER_RELEASE_BIN",
            Some("release"),
        )
    })
    .clone()
}

/// The `raida` CLI binary (`RAIDA_CLI_BIN` overrides).
pub fn cli_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_binary("raida-cli", Built::Bin("raida"), "RAIDA_CLI_BIN", None))
        .clone()
}

/// Example `name` of `package`, built like [`server_binary`] (no override).
pub fn example_binary(package: &str, name: &str) -> PathBuf {
    workspace_binary(package, Built::Example(name), "", None)
}

/// What [`workspace_binary`] builds.
#[derive(Clone, Copy, Debug)]
enum Built<'a> {
    Bin(&'a str),
    Example(&'a str),
}

/// Builds `built` of `package` into the target directory of the running test, in its
/// profile or in `profile` when given (a no-op when it is up to date), and returns its
/// path, unless `env_override` names one.
fn workspace_binary(
    package: &str,
    built: Built<'_>,
    env_override: &str,
    profile: Option<&str>,
) -> PathBuf {
    {
        if let Some(bin) = std::env::var_os(env_override).filter(|_| !env_override.is_empty()) {
            return PathBuf::from(bin);
        }
        let (kind, bin_name) = match built {
            Built::Bin(name) => ("--bin", name),
            Built::Example(name) => ("--example", name),
        };
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile>/deps/<test-exe>
        let test_profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in <target>/<profile>/deps");
        let target_dir = test_profile_dir.parent().expect("<target> directory");
        let profile = profile.unwrap_or_else(|| {
            test_profile_dir
                .file_name()
                .and_then(|s| s.to_str())
                .expect("profile directory name")
        });
        // Cargo's directory of a profile: `dev` builds into `debug`.
        let profile_dir = target_dir.join(if profile == "dev" { "debug" } else { profile });
        let cargo = std::env::var_os("CARGO")
            .map(PathBuf::from)
            .or_else(|| option_env!("CARGO").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("cargo"));
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace)
            .args(["build", "-p", package, kind, bin_name])
            .arg("--target-dir")
            .arg(target_dir);
        match profile {
            "debug" | "dev" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {package} {kind} {bin_name} failed"
        );
        let bin = match built {
            Built::Bin(_) => profile_dir.join(bin_name),
            Built::Example(_) => profile_dir.join("examples").join(bin_name),
        };
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    }
}

/// A temporary data root holding the demo key store (`Data/`).
pub fn demo_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write_demo_store(dir.path()).expect("write the demo store");
    dir
}

/// A running `raida-server`, killed (by its PID) when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Its TCP address, from the `listening` line.
    pub tcp: SocketAddr,
    /// Its UDP address, from the `listening` line.
    pub udp: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// Its stdout lines after the first, as they come.
    stdout_lines: mpsc::Receiver<String>,
    /// Its standard input, when started with [`Server::start_program`].
    stdin: Option<ChildStdin>,
}

/// The output of a server that exited (or was stopped).
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

fn spawn(args: &[&str], dir: Option<&Path>) -> Child {
    spawn_program(&server_binary(), args, dir, Stdio::null())
}

fn spawn_program(program: &Path, args: &[&str], dir: Option<&Path>, stdin: Stdio) -> Child {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "info");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()))
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Ok(mut t) = sink.lock() {
                        t.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            }
        }
    });
    text
}

fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix("listening tcp=")?;
    let (tcp, udp) = rest.split_once(" udp=")?;
    Some((tcp.parse().ok()?, udp.parse().ok()?))
}

impl Server {
    /// Starts `raida-server` on 127.0.0.1, port 0, data root `root`, plus `extra` flags,
    /// and waits for its `listening` line.
    pub fn start(root: &Path, extra: &[&str]) -> Server {
        let root = root.to_str().expect("utf-8 temp path");
        let mut args = vec!["--port", "0", "--bind", "127.0.0.1", "--data-root", root];
        args.extend_from_slice(extra);
        Server::start_with(&args, None)
    }

    /// Starts `raida-server` with exactly `args` (in `dir`, if given) and waits for its
    /// `listening` line.
    pub fn start_with(args: &[&str], dir: Option<&Path>) -> Server {
        Server::started(spawn(args, dir))
    }

    /// Starts another server `program` (an example, a test binary) with `args` and a
    /// piped standard input ([`Server::send_line`]), and waits for its `listening`
    /// line.
    pub fn start_program(program: &Path, args: &[&str]) -> Server {
        let mut child = spawn_program(program, args, None, Stdio::piped());
        let stdin = child.stdin.take();
        let mut server = Server::started(child);
        server.stdin = stdin;
        server
    }

    /// Writes `line` and a newline to the server's standard input.
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write as _;
        let stdin = self.stdin.as_mut().expect("started with start_program");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .expect("write to the server's stdin");
    }

    fn started(child: Child) -> Server {
        Server::try_started(child).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `raida-server` with exactly `args` in `dir` and waits for its `listening`
    /// line; `Err` with its stderr when it exits (or stays silent) instead, e.g. because
    /// its port is taken.
    pub fn try_start_with(args: &[&str], dir: Option<&Path>) -> Result<Server, String> {
        Server::try_started(spawn(args, dir))
    }

    /// [`Server::try_start_with`] with the server binary `program` (e.g.
    /// [`release_server_binary`]).
    pub fn try_start_program(
        program: &Path,
        args: &[&str],
        dir: Option<&Path>,
    ) -> Result<Server, String> {
        Server::try_started(spawn_program(program, args, dir, Stdio::null()))
    }

    fn try_started(mut child: Child) -> Result<Server, String> {
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // Every line is passed on (the receiver may be gone: keep draining anyway,
            // so the server never blocks on stdout).
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // The collector thread reads to end of stream; give it a bounded moment.
                thread::sleep(Duration::from_millis(50));
                let err = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                return Err(format!(
                    "raida-server printed no listening line; stderr:\n{err}"
                ));
            }
        };
        let Some((tcp, udp)) = parse_listening(&line) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("unexpected first line: {line:?}"));
        };
        Ok(Server {
            child,
            tcp,
            udp,
            stderr,
            stdout_lines: rx,
            stdin: None,
        })
    }

    /// The next stdout line after those read so far (the `listening` line is the
    /// first), waiting at most `timeout`.
    pub fn next_stdout_line(&self, timeout: Duration) -> Option<String> {
        self.stdout_lines.recv_timeout(timeout).ok()
    }

    /// The metrics endpoint's address, from the stdout line that must follow the
    /// `listening` line (`metrics http=ADDR`) when the server was started with a
    /// metrics address. Call it once.
    pub fn metrics_addr(&self) -> SocketAddr {
        let line = self
            .next_stdout_line(START_TIMEOUT)
            .unwrap_or_else(|| panic!("no second stdout line; stderr:\n{}", self.stderr()));
        line.strip_prefix("metrics http=")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected second stdout line: {line:?}"))
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the server (by its PID).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with the PID of our own child process.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (at most `timeout`) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether stderr shows `needle` within `timeout`: a thread collects stderr, so a
    /// line the server wrote a moment ago may not be in [`Server::stderr`] yet.
    pub fn stderr_shows(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs `raida-server` with `args` in `dir` and expects it to exit by itself (a
/// configuration error, `--print-config`), within a generous bound.
pub fn run_to_exit(args: &[&str], dir: Option<&Path>) -> Finished {
    let mut child = spawn(args, dir);
    let stderr = collect(child.stderr.take().expect("piped stderr"));
    let stdout = collect(child.stdout.take().expect("piped stdout"));
    let end = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("raida-server {args:?} did not exit");
        }
        thread::sleep(Duration::from_millis(20));
    };
    // The collector threads finish at end of stream; give them a bounded moment.
    let settle = Instant::now() + Duration::from_secs(5);
    let read = |t: &Arc<Mutex<String>>| t.lock().map(|s| s.clone()).unwrap_or_default();
    while Arc::strong_count(&stderr) > 1 || Arc::strong_count(&stdout) > 1 {
        if Instant::now() >= settle {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    Finished {
        status,
        stdout: read(&stdout),
        stderr: read(&stderr),
    }
}

/// An HTTP response as [`http_get`] reads it.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, as text.
    pub body: String,
}

/// `GET path` on `addr` over HTTP/1.0 (the server closes after the response), every
/// step bounded by [`GENEROUS`].
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    use std::io::Write;
    let mut s = TcpStream::connect_timeout(&addr, GENEROUS).expect("connect to the HTTP endpoint");
    s.set_read_timeout(Some(GENEROUS)).expect("read timeout");
    s.set_write_timeout(Some(GENEROUS)).expect("write timeout");
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write the HTTP request");
    let raw = read_to_eof(&mut s).expect("read the HTTP response");
    let text = String::from_utf8(raw).expect("a UTF-8 HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let content_type = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-type")
            .then(|| value.trim().to_string())
    });
    HttpResponse {
        status,
        content_type,
        body: body.to_string(),
    }
}

/// Key material from the demo store for encryption type `encryption` (0, 1, 4 or 5).
pub fn demo_keys(encryption: u8) -> Keys {
    let coin = |d: i8, s: u32| (Coin::new(d, s), demo_coin_an(d, s));
    match encryption {
        0 => Keys::None,
        1 => {
            let (coin, an) = coin(1, 1);
            Keys::Coin { coin, an }
        }
        4 => {
            let (coin, an) = coin(1, 2);
            Keys::Coin256 { coin, an }
        }
        5 => {
            let (first, first_an) = coin(0, 3);
            let (second, second_an) = coin(-1, 16);
            Keys::TwoCoins256 {
                first,
                first_an,
                second,
                second_an,
            }
        }
        other => panic!("no demo keys for encryption type {other}"),
    }
}

/// Reads until end of stream (bounded by the stream's read timeout): `Ok(bytes)` when
/// the peer closed with FIN, the error when it reset or the timeout hit.
pub fn read_to_eof(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(all),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Raises this process's soft limit of open files to at least `want` (up to the hard
/// limit); returns the limit in force.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < want {
        let new = libc::rlimit {
            rlim_cur: want.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads a struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            lim = new;
        }
    }
    lim.rlim_cur
}
