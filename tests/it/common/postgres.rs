//! A real PostgreSQL server for the tests: `initdb` into a temp dir, then `postgres` listening
//! only on a Unix socket inside that dir (no TCP port, so no port race), password
//! authentication (SCRAM) on. `PgServer::shared()` is one server per test process, with a
//! fresh database per test; `PgServer::start()` is a private server a test may stop, freeze
//! and start again. Where the PostgreSQL server binaries are missing the PostgreSQL leg is
//! skipped with a printed reason, except under CI (`CI=true`), where it fails.
//!
//! PostgreSQL refuses to run as root: under root the server runs as the `postgres` (or
//! `nobody`) account, which then owns the temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const USER: &str = "authgate";
pub const PASSWORD: &str = "test-only-pg-password";

pub struct PgServer {
    /// Holds the data dir, the socket and the log; removed on drop.
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    child: Option<Child>,
    /// Also listening on 127.0.0.1 with TLS (`start_tls`).
    tls: Option<Tls>,
}

/// A TLS listener: its TCP port and the CA that signed its certificate (for `localhost`).
#[derive(Clone)]
pub struct Tls {
    pub port: u16,
    pub ca: PathBuf,
}

/// The directory holding `initdb` and `postgres`: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout), else wherever `initdb` on the PATH lives.
fn binaries() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return has(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .filter_map(|dir| std::fs::canonicalize(dir.join("initdb")).ok())
            .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
            .find(|dir| has(dir))
    })
}

/// Under root: the uid and gid the server runs as.
fn owner() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok()? != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let find = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == name)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    let found = find("postgres").or_else(|| find("nobody"));
    assert!(
        found.is_some(),
        "running as root and no postgres or nobody account to run PostgreSQL as"
    );
    found
}

fn skip_or_fail(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}; CI must run the PostgreSQL leg");
    }
    eprintln!("SKIPPED: {reason}, the PostgreSQL leg of this test did not run");
}

fn kill(signal: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([signal, "--", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

const NOT_INSTALLED: &str = "the PostgreSQL server (initdb, postgres) is not installed";

static SHARED: OnceLock<Option<PgServer>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

impl PgServer {
    /// A private server, or `None` (skip) when PostgreSQL is not installed outside CI.
    pub fn start() -> Option<PgServer> {
        PgServer::create(false)
    }

    /// A private server that also accepts TLS on a TCP port of 127.0.0.1, with a certificate
    /// for `localhost` made by `openssl` (skipped, outside CI, when that is missing).
    pub fn start_tls() -> Option<PgServer> {
        if Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            skip_or_fail("openssl is not installed");
            return None;
        }
        PgServer::create(true)
    }

    fn create(tls: bool) -> Option<PgServer> {
        let Some(bin) = binaries() else {
            skip_or_fail(NOT_INSTALLED);
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("authgate-pg")
            .tempdir()
            .unwrap();
        let mut server = PgServer {
            root: dir.path().to_path_buf(),
            dir: Some(dir),
            bin,
            owner: owner(),
            child: None,
            tls: None,
        };
        server.init();
        if tls {
            server.tls = Some(server.certificates());
        }
        server.spawn();
        Some(server)
    }

    /// The server shared by every test of this process. It is never dropped: a watcher
    /// process stops it and removes its dir once this process has exited.
    pub fn shared() -> Option<&'static PgServer> {
        let mut first = false;
        let shared = SHARED
            .get_or_init(|| {
                first = true;
                let mut server = PgServer::start()?;
                // Owned by the watcher from now on.
                let dir = server.dir.take().map(tempfile::TempDir::keep);
                let pid = server.child.as_ref().map(Child::id).unwrap_or(0);
                // Backgrounded by a shell that exits at once: the watcher outlives this
                // process (and is nobody's zombie).
                let script = format!(
                    "( while kill -0 {me} 2>/dev/null; do sleep 1; done; \
                     kill -INT {pid} 2>/dev/null; \
                     for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 {pid} 2>/dev/null || break; sleep 1; done; \
                     kill -KILL {pid} 2>/dev/null; rm -rf '{dir}' ) &",
                    me = std::process::id(),
                    dir = dir.unwrap_or_default().display(),
                );
                use std::os::unix::process::CommandExt;
                // In a process group of its own: an interrupt of the tests (which also stops
                // the server, a member of theirs) leaves the watcher to clean up.
                let status = Command::new("sh")
                    .args(["-c", &script])
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("sh runs");
                assert!(status.success(), "the watcher did not start");
                Some(server)
            })
            .as_ref();
        if shared.is_none() && !first {
            // Said once per test, as for a private server.
            skip_or_fail(NOT_INSTALLED);
        }
        shared
    }

    fn command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command.env("LC_ALL", "C.UTF-8");
        command
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }

    fn init(&self) {
        self.chown(&self.root);
        let pwfile = self.root.join("pwfile");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        self.chown(&pwfile);
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-U", USER, "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--no-locale", "--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA and a server certificate for `localhost` signed by it, in the server's dir.
    fn certificates(&self) -> Tls {
        std::fs::write(
            self.root.join("server.ext"),
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n\
             basicConstraints=CA:FALSE\n",
        )
        .unwrap();
        let openssl = |args: &str| {
            let out = Command::new("openssl")
                .args(args.split_whitespace())
                .current_dir(&self.root)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(
            "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=authgate-test-CA \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.crt",
        );
        openssl(
            "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr",
        );
        openssl(
            "x509 -req -in server.csr -days 2 -CA ca.crt -CAkey ca.key -CAcreateserial \
             -extfile server.ext -out server.crt",
        );
        use std::os::unix::fs::PermissionsExt;
        let key = self.root.join("server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        self.chown(&key);
        self.chown(&self.root.join("server.crt"));
        Tls {
            // Bound by the server soon after; `spawn` takes another if it is gone by then.
            port: super::free_port(),
            ca: self.root.join("ca.crt"),
        }
    }

    /// The TLS listener, when this server has one.
    pub fn tls(&self) -> Option<Tls> {
        self.tls.clone()
    }

    /// Starts the server. A TCP port picked for the TLS listener may be taken by someone else
    /// before the server binds it: then it tries another one.
    fn spawn(&mut self) {
        for _ in 0..5 {
            match self.try_spawn() {
                Ok(()) => return,
                Err(log) if self.tls.is_some() && log.contains("Address already in use") => {
                    if let Some(tls) = &mut self.tls {
                        tls.port = super::free_port();
                    }
                }
                Err(log) => panic!("postgres exited: {log}"),
            }
        }
        panic!("postgres found no free port: {}", self.log_tail());
    }

    /// Starts the server and waits until it is ready; `Err(log)` when it exits first.
    fn try_spawn(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.root.join("data/postmaster.pid"));
        let logged_before = std::fs::metadata(self.root.join("server.log"))
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("server.log"))
            .unwrap();
        self.chown(&self.root.join("server.log"));
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.root.join("data"))
            .arg("-k")
            .arg(&self.root);
        match &self.tls {
            None => command.args(["-c", "listen_addresses="]),
            Some(tls) => command
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-p",
                    &tls.port.to_string(),
                ])
                .args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!(
                    "ssl_cert_file={}",
                    self.root.join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    self.root.join("server.key").display()
                )),
        };
        let child = command
            .args(["-c", "max_connections=300"])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ready() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
                return Err(format!(
                    "{status}: {}",
                    log.get(logged_before..).unwrap_or("")
                ));
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not become ready: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// postmaster.pid says `ready` once the server accepts connections.
    fn ready(&self) -> bool {
        std::fs::read_to_string(self.root.join("data/postmaster.pid"))
            .is_ok_and(|pid| pid.lines().nth(7).is_some_and(|s| s.trim() == "ready"))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The server's processes: the postmaster first, then its children (each backend is
    /// in a session of its own, so no process group holds them all).
    fn processes(&self) -> Vec<u32> {
        let Some(postmaster) = self.child.as_ref().map(Child::id) else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`; comm may hold spaces, so read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    /// The URL of database `db` (with the password, as a user would configure it).
    pub fn url(&self, db: &str) -> String {
        let socket: String = self
            .root
            .display()
            .to_string()
            .bytes()
            .map(|b| match b {
                b'/' => "%2F".to_string(),
                b => (b as char).to_string(),
            })
            .collect();
        format!(
            "postgresql://{USER}:{PASSWORD}@{socket}:{}/{db}",
            self.port()
        )
    }

    fn port(&self) -> u16 {
        self.tls.as_ref().map(|t| t.port).unwrap_or(5432)
    }

    /// The URL of database `db` over TCP to `host` (the TLS listener), with `params`.
    pub fn tcp_url(&self, host: &str, db: &str, params: &str) -> String {
        format!(
            "postgresql://{USER}:{PASSWORD}@{host}:{}/{db}?{params}",
            self.port()
        )
    }

    /// A new, empty database; returns its URL.
    pub async fn database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .expect("connects to the test server");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("creates a database");
        drop(client);
        let _ = driver.await;
        self.url(&name)
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        kill("-INT", child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                // Its children notice the postmaster's death and exit.
                kill("-KILL", child.id());
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes every process of the server (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        // The postmaster first, so that it forks nothing new meanwhile.
        for pid in self.processes() {
            kill("-STOP", pid);
        }
    }

    pub fn thaw(&self) {
        for pid in self.processes().into_iter().rev() {
            kill("-CONT", pid);
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.thaw();
        self.stop();
    }
}
