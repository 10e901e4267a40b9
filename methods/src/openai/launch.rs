//! A server the method starts itself: spawned in `prepare()` (so its start-up — model load,
//! graph capture, warm-up — is timed and metered as the method's setup), polled until its
//! readiness path answers 200, logged to the run directory, and stopped (SIGTERM to its
//! process group, SIGKILL after `stop_timeout_s`) when the method is dropped.
//!
//! The server is a child of oae, so the CPU process view (`cpu-process`, which follows the
//! process tree by parent pid) counts its CPU time as oae's; a launcher that daemonizes
//! (forks and exits) escapes it — run servers in the foreground.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oae_harness::MethodError;
use serde::Deserialize;

use super::http::{Client, Endpoint, until};
use oae_core::config::PositiveF64;

/// `launch = { … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchConfig {
    /// The server's command line, program first (run from the suite's directory).
    pub command: Vec<String>,
    /// Path (from the server's root, not under the base URL's path) that answers 200 once
    /// the server can serve.
    #[serde(default = "default_ready")]
    pub ready: String,
    /// Longest wait for readiness, s.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_s: PositiveF64,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Grace period between SIGTERM and SIGKILL when stopping, s.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_s: PositiveF64,
}

fn default_ready() -> String {
    "/health".into()
}
fn default_ready_timeout() -> PositiveF64 {
    PositiveF64(600.0)
}
fn default_stop_timeout() -> PositiveF64 {
    PositiveF64(10.0)
}

/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(100);
/// Lines of the log quoted in an error.
const TAIL_LINES: usize = 20;

/// A running server.
pub struct Server {
    child: Option<Child>,
    log: PathBuf,
    stop_timeout: Duration,
    /// Seconds from spawn to the first 200 of the readiness path.
    pub ready_s: f64,
}

impl Server {
    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts `cfg.command` in `cwd`, logging to `log`, and waits until `endpoint` answers
    /// 200 on `cfg.ready`. Refuses to start when something already answers there (a stale
    /// server would be measured instead of this one).
    pub fn start(cfg: &LaunchConfig, cwd: &Path, endpoint: &Endpoint, log: PathBuf) -> Result<Server, MethodError> {
        let (program, args) = cfg
            .command
            .split_first()
            .ok_or_else(|| MethodError::failed("launch.command is empty; give the server's program and arguments"))?;
        if Client::new(endpoint.clone(), Duration::from_millis(500)).reachable() {
            return Err(MethodError::failed(format!(
                "something already answers at {}: stop it, or give this server another port (launch.command and base_url)",
                endpoint.url("")
            )));
        }
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| MethodError::failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        let file = std::fs::File::create(&log)
            .map_err(|e| MethodError::failed(format!("cannot create the server log {}: {e}", log.display())))?;
        let err_file = file
            .try_clone()
            .map_err(|e| MethodError::failed(format!("{}: {e}", log.display())))?;
        let started = Instant::now();
        let child = Command::new(program)
            .args(args)
            .current_dir(cwd)
            .envs(&cfg.env)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                MethodError::failed(format!(
                    "cannot start `{program}` (launch.command, run from {}): {e}",
                    cwd.display()
                ))
            })?;
        let mut server = Server {
            child: Some(child),
            log,
            stop_timeout: Duration::from_secs_f64(cfg.stop_timeout_s.0),
            ready_s: 0.0,
        };
        let root = Endpoint {
            base_path: String::new(),
            ..endpoint.clone()
        };
        let mut client = Client::new(root, Duration::from_secs(1));
        let limit = Duration::from_secs_f64(cfg.ready_timeout_s.0);
        loop {
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                server.child = None;
                return Err(MethodError::failed(format!(
                    "the server exited ({status}) before it was ready; the end of its log ({}):\n{}",
                    server.log.display(),
                    server.tail()
                )));
            }
            let mut wait = until(started + limit, String::new);
            if let Ok(r) = client.send("GET", &cfg.ready, &[], None, &mut wait) {
                let status = r.status;
                drop(r);
                if status == 200 {
                    server.ready_s = started.elapsed().as_secs_f64();
                    return Ok(server);
                }
            }
            if started.elapsed() >= limit {
                let tail = server.tail();
                server.stop();
                return Err(MethodError::failed(format!(
                    "the server did not answer 200 on {} within {} s (launch.ready_timeout_s); stopped it. The end of its log ({}):\n{tail}",
                    client.endpoint().url(&cfg.ready),
                    cfg.ready_timeout_s.0,
                    server.log.display()
                )));
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// The last lines of the log.
    pub fn tail(&self) -> String {
        let Ok(mut f) = std::fs::File::open(&self.log) else {
            return "(no log)".into();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        if tail.trim().is_empty() { "(empty)".into() } else { tail }
    }

    /// Stops the server's process group: SIGTERM, then SIGKILL after the grace period.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = -(child.id() as i32);
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let until = Instant::now() + self.stop_timeout;
        while Instant::now() < until {
            if child.try_wait().ok().flatten().is_some() {
                // Children the server left behind in its group go too.
                unsafe { libc::kill(group, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
