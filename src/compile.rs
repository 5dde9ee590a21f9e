//! Running clang and llc: configure tests in parallel, then clang piped into llc.
//!
//! Only runs processes; what to run comes from `flags`. A failure keeps the command line, the
//! exit status (signals named) and the tail of stderr, and says which kernel it was for.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::flags::FlagSet;
use crate::toolchain::Toolchain;

const STDERR_TAIL: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kernel `{kernel}`: {tool} failed ({status})\n  command: {command}\n  stderr (last lines):\n{stderr}")]
    Tool {
        kernel: String,
        tool: &'static str,
        status: String,
        command: String,
        stderr: String,
    },
    #[error("kernel `{kernel}`: cannot start `{tool}`")]
    Spawn {
        kernel: String,
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel `{kernel}`: the configure sanity test (0__SANITY) failed: the kernel headers or flags are broken\n{log}")]
    Sanity { kernel: String, log: String },
}

/// `exit status 1`, or `killed by SIGKILL (signal 9)`.
pub fn describe_status(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(c) = s.code() {
        return format!("exit status {c}");
    }
    match s.signal() {
        Some(sig) => {
            let name = match sig {
                libc::SIGKILL => "SIGKILL (out of memory?)",
                libc::SIGSEGV => "SIGSEGV",
                libc::SIGABRT => "SIGABRT",
                libc::SIGTERM => "SIGTERM",
                libc::SIGBUS => "SIGBUS",
                libc::SIGINT => "SIGINT",
                libc::SIGPIPE => "SIGPIPE",
                _ => "signal",
            };
            format!("killed by {name} (signal {sig})")
        }
        None => "unknown status".into(),
    }
}

fn shell_words(prog: &Path, args: &[OsString]) -> String {
    std::iter::once(prog.as_os_str())
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|a| {
            let s = a.to_string_lossy();
            if s.is_empty() || s.contains([' ', '"', '\'', '$']) {
                format!("'{}'", s.replace('\'', "'\\''"))
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first error lines (warnings can bury them) and the last lines of stderr.
fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    let first = lines.len().saturating_sub(STDERR_TAIL);
    let mut out: Vec<String> = lines[..first]
        .iter()
        .filter(|l| l.contains("error:"))
        .take(10)
        .map(|l| format!("    {l}"))
        .collect();
    if !out.is_empty() {
        out.push("    ...".into());
    }
    out.extend(lines[first..].iter().map(|l| format!("    {l}")));
    out.join("\n")
}

fn command(mut c: Command, cwd: &Path) -> Command {
    // A clean environment: nothing of the caller's (locale, CPATH, ...) may change the bytes.
    c.env_clear()
        .env("LC_ALL", "C")
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .current_dir(cwd);
    c
}

/// CPU time of one clang|llc run, from the children's rusage.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Timing {
    pub clang_cpu: Duration,
    pub llc_cpu: Duration,
    pub wall: Duration,
}

/// Waits for a child and measures its CPU time precisely with wait4.
fn wait_cpu(child: &mut std::process::Child) -> std::io::Result<(ExitStatus, Duration)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 on our own child, with valid out-pointers.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            // Already reaped (should not happen): fall back.
            return child.wait().map(|s| (s, Duration::ZERO));
        }
    }
    let cpu = Duration::from_secs(ru.ru_utime.tv_sec as u64 + ru.ru_stime.tv_sec as u64)
        + Duration::from_micros(ru.ru_utime.tv_usec as u64 + ru.ru_stime.tv_usec as u64);
    Ok((ExitStatus::from_raw(status), cpu))
}

thread_local! {
    /// CPU time of this thread's last clang|llc run, also when it failed (configure tests
    /// fail by design; their cost still counts).
    static LAST_FAILED_CPU: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// Runs `clang <args> | llc -march=bpf -filetype=obj -o out` in `cwd` (the objtree).
pub fn clang_llc(
    tc: &Toolchain,
    clang_args: &[OsString],
    cwd: &Path,
    out: &Path,
    kernel: &str,
) -> Result<Timing, Error> {
    let start = Instant::now();
    let spawn_err = |tool: &Path| {
        let tool = tool.display().to_string();
        move |source| Error::Spawn {
            kernel: kernel.to_owned(),
            tool,
            source,
        }
    };
    let mut clang = command(tc.clang_command(), cwd)
        .args(clang_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err(&tc.clang))?;
    let llc_args = FlagSet::llc_args(out);
    let llc = command(tc.llc_command(), cwd)
        .args(&llc_args)
        .stdin(clang.stdout.take().expect("piped"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut llc = match llc {
        Ok(l) => l,
        Err(e) => {
            let _ = clang.kill();
            let _ = clang.wait();
            return Err(spawn_err(&tc.llc)(e));
        }
    };
    let mut clang_err = clang.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = clang_err.read_to_end(&mut v);
        v
    });
    let mut llc_err = Vec::new();
    let _ = llc.stderr.take().expect("piped").read_to_end(&mut llc_err);
    let (llc_status, llc_cpu) = wait_cpu(&mut llc).map_err(spawn_err(&tc.llc))?;
    let (clang_status, clang_cpu) = wait_cpu(&mut clang).map_err(spawn_err(&tc.clang))?;
    let clang_err = reader.join().unwrap_or_default();
    LAST_FAILED_CPU.with(|c| c.set(clang_cpu + llc_cpu));
    if !clang_status.success() {
        return Err(Error::Tool {
            kernel: kernel.to_owned(),
            tool: "clang",
            status: describe_status(clang_status),
            command: shell_words(&tc.clang, clang_args),
            stderr: tail(&clang_err),
        });
    }
    if !llc_status.success() {
        return Err(Error::Tool {
            kernel: kernel.to_owned(),
            tool: "llc",
            status: describe_status(llc_status),
            command: shell_words(&tc.llc, &llc_args),
            stderr: tail(&llc_err),
        });
    }
    Ok(Timing {
        clang_cpu,
        llc_cpu,
        wall: start.elapsed(),
    })
}

/// Result of one configure test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigureResult {
    pub module: String,
    pub passed: bool,
    /// The failure, when it failed (for logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// Runs every `configure/<MOD>/test.c` in parallel with the probe's flags (without `HAS_*`);
/// a module passes when clang and llc both succeed. A failing `0__SANITY` stops the build.
pub fn configure(
    tc: &Toolchain,
    flags: &FlagSet,
    cwd: &Path,
    bpf_dir: &Path,
    modules: &[String],
    scratch: &Path,
    kernel: &str,
) -> Result<(Vec<ConfigureResult>, Timing), Error> {
    let results: Vec<(ConfigureResult, Timing)> = modules
        .par_iter()
        .map(|m| {
            let src = bpf_dir.join("configure").join(m).join("test.c");
            let out: PathBuf = scratch.join(format!("configure-{m}.o"));
            let r = clang_llc(tc, &flags.clang_args(&src, false), cwd, &out, kernel);
            let _ = std::fs::remove_file(&out);
            match r {
                Ok(t) => (
                    ConfigureResult {
                        module: m.clone(),
                        passed: true,
                        log: None,
                    },
                    t,
                ),
                Err(e) => (
                    ConfigureResult {
                        module: m.clone(),
                        passed: false,
                        log: Some(e.to_string()),
                    },
                    Timing {
                        clang_cpu: LAST_FAILED_CPU.with(|c| c.get()),
                        ..Timing::default()
                    },
                ),
            }
        })
        .collect();
    let mut total = Timing::default();
    for (_, t) in &results {
        total.clang_cpu += t.clang_cpu;
        total.llc_cpu += t.llc_cpu;
        total.wall = total.wall.max(t.wall);
    }
    let results: Vec<ConfigureResult> = results.into_iter().map(|(r, _)| r).collect();
    if let Some(s) = results
        .iter()
        .find(|r| r.module == "0__SANITY" && !r.passed)
    {
        return Err(Error::Sanity {
            kernel: kernel.to_owned(),
            log: s.log.clone().unwrap_or_default(),
        });
    }
    Ok((results, total))
}
