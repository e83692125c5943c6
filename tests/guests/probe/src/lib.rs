//! A test guest: its params choose a behaviour, so that tests can drive
//! every outcome and misbehaviour through the real worker.
//!
//! Params: `{"do": "<action>", ...}`; see [`Action`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};
use spool_sdk::http::Request;
use spool_sdk::{Error, Job};

#[derive(Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
enum Action {
    /// Returns `value`, with the attempt it succeeded on.
    Echo { value: Value },
    /// Fails with a retryable error until `attempt` is reached, then
    /// succeeds.
    FailUntil { attempt: u32 },
    /// Fails with the given outcome every time.
    Error {
        outcome: Outcome,
        message: String,
        #[serde(default)]
        seconds: u32,
    },
    /// Sleeps for `ms` (yielding to the host), then returns.
    Sleep { ms: u64 },
    /// Sleeps like `sleep` and returns when it began and ended, in Unix
    /// milliseconds, so that tests can see which attempts overlapped.
    TimedSleep { ms: u64 },
    /// Spins without calling the host.
    Spin,
    /// Panics with `message`.
    Panic { message: String },
    /// Allocates `mib` MiB and touches every page.
    Alloc { mib: usize },
    /// Sends an HTTP request and returns the status and body; waits at
    /// most `wait_ms` at each stage when given.
    Http {
        method: String,
        url: String,
        #[serde(default)]
        body: String,
        #[serde(default)]
        wait_ms: Option<u64>,
    },
    /// Reads config entry `name` and secret `secret`.
    Config {
        name: String,
        #[serde(default)]
        secret: Option<String>,
    },
    /// Logs `count` lines at info, then fails if `fail`.
    Log {
        count: u32,
        #[serde(default)]
        fail: bool,
    },
    /// Prints `count` lines to stdout and stderr, then returns.
    Print { count: u32 },
    /// Recurses without end.
    Recurse,
    /// Executes an `unreachable` instruction.
    Trap,
    /// Tries what a sandboxed guest must not do and reports each result.
    Sandbox,
    /// Sends `count` GET requests to `url`; returns how many got through.
    HttpMany { url: String, count: u32 },
    /// Key-value operations: sets `key` to `value` if given, adds `delta`
    /// to `counter` if given, and returns `key`'s value and the sum.
    Kv {
        key: String,
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        counter: Option<String>,
        #[serde(default)]
        delta: i64,
    },
    /// Enqueues a follow-up job.
    Enqueue {
        kind: String,
        params: Value,
        #[serde(default)]
        job_id: Option<String>,
        #[serde(default)]
        delay_secs: Option<u64>,
    },
    /// Enqueues `count` follow-up echo jobs of kind `kind`.
    EnqueueMany { kind: String, count: u32 },
    /// Reports progress, then sleeps `ms` so that it can be seen.
    Progress {
        percent: u8,
        message: String,
        ms: u64,
    },
    /// Reads secret `name`, logs it and fails with it in the message.
    LeakSecret { name: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Retry,
    Fail,
    RetryAfter,
    Cancel,
}

#[spool_sdk::job]
fn probe(job: &Job, action: Action) -> Result<Value, Error> {
    match action {
        Action::Echo { value } => Ok(json!({ "value": value, "attempt": job.attempt })),
        Action::FailUntil { attempt } if job.attempt < attempt => Err(Error::retry(format!(
            "attempt {} failed on purpose",
            job.attempt
        ))),
        Action::FailUntil { .. } => Ok(json!({ "attempt": job.attempt })),
        Action::Error {
            outcome,
            message,
            seconds,
        } => Err(match outcome {
            Outcome::Retry => Error::retry(message),
            Outcome::Fail => Error::fail(message),
            Outcome::RetryAfter => Error::retry_after(Duration::from_secs(seconds.into()), message),
            Outcome::Cancel => Error::cancel(message),
        }),
        Action::Sleep { ms } => {
            sleep(ms);
            Ok(json!({ "slept_ms": ms }))
        }
        Action::TimedSleep { ms } => {
            let began_ms = unix_ms();
            sleep(ms);
            Ok(json!({ "began_ms": began_ms, "ended_ms": unix_ms() }))
        }
        Action::Spin => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Action::Panic { message } => panic!("{message}"),
        Action::Alloc { mib } => {
            let mut block = vec![0u8; mib << 20];
            for page in block.chunks_mut(4096) {
                page[0] = 1;
            }
            let sum: u64 = block.iter().map(|b| u64::from(*b)).sum();
            Ok(json!({ "allocated_mib": mib, "sum": sum }))
        }
        Action::Http {
            method,
            url,
            body,
            wait_ms,
        } => {
            let mut request = Request::new(&method, url).body(body);
            if let Some(ms) = wait_ms {
                request = request.timeout(Duration::from_millis(ms));
            }
            let response = request.send()?;
            Ok(json!({ "status": response.status, "body": response.text() }))
        }
        Action::Config { name, secret } => Ok(json!({
            "value": spool_sdk::config::get(&name),
            "secret": secret.and_then(|s| spool_sdk::config::secret(&s)),
        })),
        Action::Log { count, fail } => {
            for i in 0..count {
                spool_sdk::log::info("probe line", &[("i", &i.to_string())]);
            }
            if fail {
                return Err(Error::fail(format!("logged {count} lines")));
            }
            Ok(json!({ "logged": count }))
        }
        Action::Print { count } => {
            for i in 0..count {
                println!("stdout line {i} with some padding to make it longer");
                eprintln!("stderr line {i} with some padding to make it longer");
            }
            Ok(json!({ "printed": count }))
        }
        Action::Recurse => Ok(json!({ "depth": recurse(0) })),
        // On wasm, abort is the `unreachable` instruction.
        Action::Trap => std::process::abort(),
        Action::Sandbox => Ok(sandbox()),
        Action::HttpMany { url, count } => {
            let sent = (0..count)
                .filter(|_| Request::get(url.clone()).send().is_ok())
                .count();
            Ok(json!({ "sent": sent }))
        }
        Action::Kv {
            key,
            value,
            counter,
            delta,
        } => {
            if let Some(value) = &value {
                spool_sdk::kv::set(&key, value)?;
            }
            let sum = match &counter {
                Some(counter) => Some(spool_sdk::kv::increment(counter, delta)?),
                None => None,
            };
            Ok(json!({ "value": spool_sdk::kv::get(&key), "sum": sum }))
        }
        Action::Enqueue {
            kind,
            params,
            job_id,
            delay_secs,
        } => {
            let options = spool_sdk::jobs::Options {
                job_id,
                delay: delay_secs.map(Duration::from_secs),
                ..Default::default()
            };
            let enqueued = spool_sdk::jobs::enqueue(&kind, &params, options)?;
            Ok(json!({ "id": enqueued.id, "created": enqueued.created }))
        }
        Action::EnqueueMany { kind, count } => {
            let mut ids = Vec::new();
            for i in 0..count {
                let params = json!({"do": "echo", "value": i});
                match spool_sdk::jobs::enqueue(&kind, &params, Default::default()) {
                    Ok(enqueued) => ids.push(enqueued.id),
                    Err(e) => return Ok(json!({ "enqueued": ids.len(), "error": e.to_string() })),
                }
            }
            Ok(json!({ "enqueued": ids.len() }))
        }
        Action::Progress {
            percent,
            message,
            ms,
        } => {
            spool_sdk::jobs::progress(percent, &message);
            sleep(ms);
            Ok(json!({ "reported": percent }))
        }
        Action::LeakSecret { name } => {
            let secret = spool_sdk::config::secret(&name).unwrap_or_default();
            spool_sdk::log::info(&format!("the secret is {secret}"), &[("secret", &secret)]);
            Err(Error::fail(format!("leaking {secret}")))
        }
    }
}

/// Recurses until the stack runs out.
#[expect(unconditional_recursion, reason = "running out of stack is the point")]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 256];
    frame[0] = depth as u8;
    std::hint::black_box(&mut frame);
    recurse(depth + 1) + u64::from(frame[0])
}

/// What the sandbox lets a guest do: each entry is "ok: ..." or the error.
fn sandbox() -> Value {
    let outcome = |result: Result<String, String>| match result {
        Ok(what) => format!("ok: {what}"),
        Err(e) => format!("denied: {e}"),
    };
    let file = std::fs::read_to_string("/etc/passwd").map(|s| format!("{} bytes", s.len()));
    let dir = std::fs::read_dir("/").map(|d| format!("{} entries", d.count()));
    let write = std::fs::write("/tmp/spool-probe", b"x").map(|()| "written".to_string());
    let tcp = std::net::TcpStream::connect("127.0.0.1:5432").map(|_| "connected".to_string());
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").map(|_| "bound".to_string());
    let dns = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80))
        .map(|a| format!("{} addresses", a.count()));
    json!({
        "file": outcome(file.map_err(|e| e.to_string())),
        "dir": outcome(dir.map_err(|e| e.to_string())),
        "write": outcome(write.map_err(|e| e.to_string())),
        "tcp": outcome(tcp.map_err(|e| e.to_string())),
        "udp": outcome(udp.map_err(|e| e.to_string())),
        "dns": outcome(dns.map_err(|e| e.to_string())),
        "env": std::env::vars().count(),
        "args": std::env::args().count(),
        "cwd": std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|e| format!("denied: {e}")),
        "wall_clock": SystemTime::now().duration_since(UNIX_EPOCH).is_ok(),
    })
}

/// The wall clock, in Unix milliseconds.
fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

/// Sleeps for `ms`.
fn sleep(ms: u64) {
    #[expect(
        clippy::disallowed_methods,
        reason = "a guest's sleep waits on a host pollable and blocks no host thread"
    )]
    std::thread::sleep(Duration::from_millis(ms));
}
