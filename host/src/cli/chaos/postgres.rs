//! A PostgreSQL server of the harness's own, in a temporary folder, so
//! that restarting or killing it touches nothing else on the machine. It
//! listens on a Unix socket in that folder only. Run as root, the server
//! runs as the `postgres` user (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;

/// The port in the socket's name; nothing listens on TCP.
const PORT: u16 = 5432;
/// The superuser initdb creates, and the database the harness uses.
const USER: &str = "postgres";

/// A running private server; stopped and deleted by [`stop`](Self::stop),
/// or when dropped.
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<&'static str>,
    stopped: bool,
}

impl PrivatePostgres {
    /// Creates a cluster in a fresh temporary folder and starts it.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = bin_dir().await?;
        let run_as = nix::unistd::Uid::effective().is_root().then_some(USER);
        let dir = std::env::temp_dir().join(format!(
            "spool-chaos-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        ));
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let server = Self {
            dir,
            bin,
            run_as,
            stopped: false,
        };
        if let Some(user) = run_as {
            let status = Command::new("chown")
                .arg(user)
                .arg(&server.dir)
                .status()
                .await
                .context("run chown")?;
            if !status.success() {
                bail!("chown {user} {}: {status}", server.dir.display());
            }
        }

        server
            .tool("initdb")
            .args(["--username", USER, "--auth", "trust", "--encoding", "UTF8"])
            .args(["--no-sync", "--pgdata"])
            .arg(server.data())
            .run()
            .await?;
        // fsync off: an immediate restart is a crash of the server, not of
        // the machine, so committed data survives it without syncing.
        let settings = format!(
            "listen_addresses = ''\nunix_socket_directories = '{}'\nport = {PORT}\n\
             max_connections = 300\nfsync = off\n",
            server.dir.display()
        );
        std::fs::write(server.data().join("postgresql.auto.conf"), settings)
            .context("write the server's settings")?;
        server.pg_ctl(&["start"]).await?;
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The folder holding the socket, the data and the server's log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How to connect, as the superuser, to database `postgres`.
    pub fn options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.dir)
            .port(PORT)
            .username(USER)
            .database(USER)
    }

    /// The same as a URL, for `spool worker`.
    pub fn url(&self) -> String {
        let mut url = reqwest::Url::parse("postgres://localhost").expect("a URL");
        url.set_username(USER).expect("a URL with a host");
        url.set_port(Some(PORT)).expect("a URL with a host");
        url.set_path(USER);
        url.query_pairs_mut()
            .append_pair("host", &self.dir.to_string_lossy());
        url.to_string()
    }

    /// `pg_ctl restart -m immediate`: every backend dies at once without a
    /// checkpoint, and the server recovers from its WAL.
    pub async fn restart_immediate(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["restart", "-m", "immediate"]).await
    }

    /// Stops the server and deletes its folder.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stopped = true;
        let stopped = self.pg_ctl(&["stop", "-m", "fast"]).await;
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("delete {}", self.dir.display()))?;
        stopped
    }

    async fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let log = self.dir.join("server.log");
        self.tool("pg_ctl")
            .args(["--wait", "--pgdata"])
            .arg(self.data())
            .arg("--log")
            .arg(log)
            .args(args)
            .run()
            .await
    }

    /// A PostgreSQL program, run as the server's user.
    fn tool(&self, name: &str) -> Tool {
        let program = self.bin.join(name);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.stdin(Stdio::null()).kill_on_drop(true);
        Tool {
            name: name.to_string(),
            command,
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command
                    .args(["-u", user, "--"])
                    .arg(self.bin.join("pg_ctl"));
                command
            }
            None => std::process::Command::new(self.bin.join("pg_ctl")),
        };
        let _ = command
            .args(["--wait", "--pgdata"])
            .arg(self.data())
            .args(["stop", "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Tool {
    name: String,
    command: Command,
}

impl Tool {
    fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    fn arg(&mut self, arg: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.command.arg(arg);
        self
    }

    /// Runs the program; its output becomes the error when it fails.
    async fn run(&mut self) -> anyhow::Result<()> {
        let output = self
            .command
            .output()
            .await
            .with_context(|| format!("run {}", self.name))?;
        if !output.status.success() {
            bail!(
                "{} failed ({}):\n{}{}",
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

/// The newest installed PostgreSQL's programs: `pg_config --bindir`, or
/// the highest version under `/usr/lib/postgresql`.
async fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output().await
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("find PostgreSQL: no pg_config on PATH and no /usr/lib/postgresql")?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no PostgreSQL with initdb under /usr/lib/postgresql")
}
