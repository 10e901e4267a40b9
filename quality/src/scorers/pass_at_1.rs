//! `pass@1` — HumanEval's functional correctness: the completion runs against the item's unit
//! tests in a sandboxed Python subprocess; 1 when `check(entry_point)` passes, else 0.
//!
//! **This executes model-generated code.** Like human-eval itself, oae refuses unless the
//! user opts in: `OAE_ALLOW_CODE_EXECUTION=1` in the environment (a suite naming `pass@1`
//! without it is refused when it is read). The sandbox, per answer:
//! - a fresh empty working directory, removed afterwards; an empty environment; `python3 -I`
//!   (isolated: no user site, no `PYTHON*` variables);
//! - no network: a new network namespace (`unshare(CLONE_NEWNET)`, as root; else inside a new
//!   user namespace where the kernel allows one) — when neither works the answer is not run and
//!   scores 0, with the reason on stderr;
//! - limits: 10 s of CPU (`RLIMIT_CPU`) and 15 s of wall time (killed), 1 GiB of address space,
//!   16 MiB per file written, 64 open files;
//! - the program is HumanEval's: prompt + completion + tests + `check(entry_point)`.
//!
//! A completion in a Markdown code fence is unwrapped; one that restates the whole function
//! (starting with the prompt's `def`) is run as the program's body instead of being appended.
//!
//! It runs like the model-backed scorers, after a cell's replays and idle baselines, over all
//! its answers at once: the Python processes' CPU time must not land in the energy of the
//! requests being served meanwhile (it would in oae's process tree, too).
//!
//! **Overhead model:** one Python start-up (~20–50 ms) plus the tests' own time per answer,
//! after the cell's measurements.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::ModelScorer;
use crate::TaskItem;

/// HumanEval pass@1.
pub struct PassAt1;

/// The environment variable that allows running generated code.
pub const OPT_IN: &str = "OAE_ALLOW_CODE_EXECUTION";

/// Whether the user opted in to running generated code.
pub fn allowed() -> bool {
    std::env::var(OPT_IN).is_ok_and(|v| v.trim() == "1")
}

/// CPU seconds a program may use.
const CPU_S: u64 = 10;
/// Wall seconds before it is killed.
const WALL: Duration = Duration::from_secs(15);
/// Address space, bytes.
const MEMORY: u64 = 1 << 30;

/// The completion as code: a Markdown fence unwrapped.
fn code_of(output: &str) -> &str {
    let Some(start) = output.find("```") else {
        return output;
    };
    let body = &output[start + 3..];
    let body = body.split_once('\n').map_or(body, |(lang, rest)| {
        if lang.trim().chars().all(|c| c.is_ascii_alphanumeric()) {
            rest
        } else {
            body
        }
    });
    body.find("```").map_or(body, |end| &body[..end])
}

/// The program HumanEval runs for `completion` of `item` (`None` without tests).
pub fn program(completion: &str, item: &TaskItem) -> Option<String> {
    let tests = item.tests.as_ref()?;
    let prompt = item.prompt.as_deref().or(item.question.as_deref()).unwrap_or_default();
    let code = code_of(completion);
    let restates = code.contains(&format!("def {}(", tests.entry_point));
    let body = if restates {
        // The model wrote the whole function: keep the prompt's imports, then its code.
        let imports: String = prompt
            .lines()
            .filter(|l| l.starts_with("import ") || l.starts_with("from "))
            .map(|l| format!("{l}\n"))
            .collect();
        format!("{imports}{code}")
    } else {
        format!("{prompt}{code}")
    };
    Some(format!("{body}\n\n{}\n\ncheck({})\n", tests.test, tests.entry_point))
}

/// Runs `source` in the sandbox: `Ok(true)` when it exits 0, `Ok(false)` when it fails or
/// times out, `Err` when it could not be run safely.
pub fn run_sandboxed(source: &str) -> Result<bool, String> {
    run_limited(source, CPU_S, WALL)
}

/// [`run_sandboxed`] with its CPU and wall limits given.
fn run_limited(source: &str, cpu_s: u64, wall: Duration) -> Result<bool, String> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "oae-pass1-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = run_in(&dir, source, cpu_s, wall);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &std::path::Path, source: &str, cpu_s: u64, wall: Duration) -> Result<bool, String> {
    let mut cmd = Command::new("python3");
    cmd.args(["-I", "-"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // The id maps are written before the fork: the child may not allocate.
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let maps = (
            format!("{uid} {uid} 1").into_bytes(),
            format!("{gid} {gid} 1").into_bytes(),
        );
        // SAFETY: between fork and exec the closure makes only async-signal-safe calls
        // (setrlimit, unshare, open/write/close, _exit) on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || sandbox(cpu_s, &maps.0, &maps.1));
        }
    }
    #[cfg(not(target_os = "linux"))]
    return Err("the pass@1 sandbox needs Linux namespaces; not run".into());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start python3: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits before reading all of it fails on its own.
        let _ = stdin.write_all(source.as_bytes());
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                // The sandbox set-up reports its own failure with exit code 121.
                if status.code() == Some(SANDBOX_FAILED) {
                    return Err("no network namespace could be made (run as root, or allow unprivileged user namespaces); generated code was not run".into());
                }
                return Ok(status.success());
            }
            Ok(None) if started.elapsed() > wall => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(false);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for python3: {e}")),
        }
    }
}

/// Exit code of a child whose sandbox could not be made.
const SANDBOX_FAILED: i32 = 121;

/// In the child, before exec: limits, then no network (`uid_map`/`gid_map`: the lines to map
/// this user into a new user namespace).
#[cfg(target_os = "linux")]
fn sandbox(cpu_s: u64, uid_map: &[u8], gid_map: &[u8]) -> std::io::Result<()> {
    let limit = |res, v: u64| {
        let l = libc::rlimit {
            rlim_cur: v as libc::rlim_t,
            rlim_max: v as libc::rlim_t,
        };
        // SAFETY: a valid rlimit for this process.
        unsafe { libc::setrlimit(res, &l) };
    };
    limit(libc::RLIMIT_CPU, cpu_s);
    limit(libc::RLIMIT_AS, MEMORY);
    limit(libc::RLIMIT_FSIZE, 16 << 20);
    limit(libc::RLIMIT_NOFILE, 64);
    limit(libc::RLIMIT_CORE, 0);
    // SAFETY: plain syscalls on this just-forked process.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) == 0 {
            return Ok(());
        }
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
            // Map ourselves so files stay ours; if this fails the process is unmapped but
            // still without network, which is what matters.
            write_proc(b"/proc/self/setgroups\0", b"deny");
            write_proc(b"/proc/self/uid_map\0", uid_map);
            write_proc(b"/proc/self/gid_map\0", gid_map);
            return Ok(());
        }
        libc::_exit(SANDBOX_FAILED);
    }
}

/// Writes `data` to the NUL-terminated `path` (best effort, no allocation).
#[cfg(target_os = "linux")]
unsafe fn write_proc(path: &[u8], data: &[u8]) {
    // SAFETY: `path` is NUL-terminated; the descriptor is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY);
        if fd >= 0 {
            libc::write(fd, data.as_ptr().cast(), data.len());
            libc::close(fd);
        }
    }
}

/// Checks that generated code may and can be run here: opted in, python3 present, the
/// sandbox can be made. The reason when not.
pub fn ready() -> Result<(), String> {
    if !allowed() {
        return Err(format!(
            "scorer `pass@1` executes model-generated code; set {OPT_IN}=1 to allow it (it runs in a sandbox without network and with CPU, memory and time limits — see `oae list scorers`)"
        ));
    }
    match run_sandboxed("import sys\nsys.exit(0)\n") {
        Ok(true) => Ok(()),
        Ok(false) => Err("scorer `pass@1`: python3 did not run a trivial program in the sandbox".into()),
        Err(e) => Err(format!("scorer `pass@1`: {e}")),
    }
}

impl PassAt1 {
    /// The score of one answer: 1 when its program passes, 0 when it fails, times out or
    /// cannot be run here (with the reason on stderr).
    pub fn score_one(&self, output: &str, item: &TaskItem) -> f64 {
        if !allowed() {
            return 0.0;
        }
        let Some(source) = program(output, item) else {
            return 0.0;
        };
        match run_sandboxed(&source) {
            Ok(passed) => f64::from(u8::from(passed)),
            Err(e) => {
                eprintln!("pass@1: item {}: {e}", item.id);
                0.0
            }
        }
    }
}

impl ModelScorer for PassAt1 {
    fn name(&self) -> &'static str {
        "pass@1"
    }
    fn score_batch(&mut self, answers: &[(&str, &TaskItem)]) -> Result<Vec<f64>, String> {
        ready()?;
        Ok(answers.iter().map(|(a, item)| self.score_one(a, item)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::CodeTests;
    use crate::{AnswerType, TaskItem};

    fn item() -> TaskItem {
        TaskItem {
            id: "add".into(),
            question: None,
            prompt: Some("import math\n\ndef add(a, b):\n    \"\"\"Sum.\"\"\"\n".into()),
            context: None,
            doc_ids: Vec::new(),
            references: vec!["    return a + b\n".into()],
            answer_type: AnswerType::Code,
            choices: Vec::new(),
            group: None,
            tests: Some(CodeTests {
                test: "def check(candidate):\n    assert candidate(2, 3) == 5\n".into(),
                entry_point: "add".into(),
            }),
        }
    }

    /// Runs `completion` with short limits; `None` (and a message) where python3 or the
    /// sandbox is missing.
    fn run(completion: &str) -> Option<bool> {
        let source = program(completion, &item()).unwrap();
        match run_limited(&source, 2, Duration::from_secs(4)) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("skipped: {e}");
                None
            }
        }
    }

    #[test]
    fn the_program_is_prompt_completion_tests_and_check() {
        let p = program("    return a + b\n", &item()).unwrap();
        assert!(p.starts_with("import math\n\ndef add(a, b):"), "{p}");
        assert!(p.contains("    return a + b\n") && p.ends_with("check(add)\n"), "{p}");
        // A fenced answer that restates the function keeps the prompt's imports only.
        let fenced = "Here:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.";
        let p = program(fenced, &item()).unwrap();
        assert!(p.starts_with("import math\ndef add(a, b):\n    return a + b\n"), "{p}");
        assert!(!p.contains("Here:") && !p.contains("```"), "{p}");
        let mut no_tests = item();
        no_tests.tests = None;
        assert!(program("x", &no_tests).is_none());
    }

    #[test]
    fn generated_code_needs_the_opt_in() {
        if allowed() {
            eprintln!("skipped: {OPT_IN} is set in this environment");
            return;
        }
        assert!(ready().unwrap_err().contains(OPT_IN));
        assert_eq!(
            PassAt1.score_one("    return a + b\n", &item()),
            0.0,
            "not run without the opt-in"
        );
        assert!(PassAt1.score_batch(&[("x", &item())]).unwrap_err().contains(OPT_IN));
    }

    #[test]
    fn the_sandbox_passes_right_code_and_fails_wrong_slow_and_networked_code() {
        if python_missing() {
            eprintln!("skipped: no python3 here");
            return;
        }
        let Some(right) = run("    return a + b\n") else { return };
        assert!(right, "the canonical solution passes");
        assert_eq!(run("    return a - b\n"), Some(false), "a wrong one fails");
        assert_eq!(run("    while True:\n        pass\n"), Some(false), "a loop is stopped");
        // No network interface but loopback inside the sandbox.
        let net = "    import socket\n    ifs = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\n    assert ifs in ([], ['lo']), ifs\n    return a + b\n";
        assert_eq!(run(net), Some(true), "only loopback is visible");
    }

    fn python_missing() -> bool {
        Command::new("python3").arg("-c").arg("0").output().is_err()
    }
}
