//! `probeforge watch`'s memory and rules, without its IO loop: the state a repository keeps
//! between rounds (`R/.probeforge/watch.json`: each signed index's validators, when each
//! kernel was first seen, each failing driver's attempts and next retry), the one-process lock
//! (`R/.probeforge/watch.lock`), the retry backoff, and which signed files stand for a target's
//! listing. It never builds and never prints; `command::watch` runs the rounds.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::http::Validators;
use crate::kernel::Arch;
use crate::repo::{Catalog, KernelRecord, Mirrors};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{}` is held by another watch (pid {pid}): one watch per repository", path.display())]
    Held { path: PathBuf, pid: String },
    #[error("`{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("watch state `{}` is not readable: {what}", path.display())]
    State { path: PathBuf, what: String },
    #[error(transparent)]
    Repo(#[from] crate::repo::Error),
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The format tag of `watch.json`.
pub const STATE_FORMAT: &str = "probeforge-watch-1";

/// What a watch remembers between rounds, and across restarts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub format: String,
    /// Per signed index URL: what the server said identifies the version last read.
    #[serde(default)]
    pub indexes: BTreeMap<String, Validators>,
    /// Per signed index URL: the sha256 of the body last read. A server that sends no
    /// validators (some proxies) answers every poll with the body; the same digest still means
    /// nothing changed, and nothing is listed.
    #[serde(default)]
    pub digests: BTreeMap<String, String>,
    /// Per kernel ([`kernel_key`]): when a signed index first listed it (RFC 3339 UTC). Never
    /// moved later: the earliest sighting is the start of its time to driver.
    #[serde(default)]
    pub first_seen: BTreeMap<String, String>,
    /// Per driver file that failed: its attempts and when it may be tried again.
    #[serde(default)]
    pub failures: BTreeMap<String, Failure>,
    /// Rounds run so far, over every run on this repository.
    #[serde(default)]
    pub rounds: u64,
}

impl Default for State {
    fn default() -> State {
        State {
            format: STATE_FORMAT.into(),
            indexes: BTreeMap::new(),
            digests: BTreeMap::new(),
            first_seen: BTreeMap::new(),
            failures: BTreeMap::new(),
            rounds: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// The catalog target that listed it (a due retry lists that target again).
    pub target: String,
    pub attempts: u32,
    /// Seconds since the epoch before which it is not tried again.
    pub next_retry: i64,
    /// The same, as RFC 3339 UTC (for people reading the file).
    pub next_retry_at: String,
    /// The last error's first line.
    pub error: String,
}

/// A kernel's identity across pockets and targets: Falco's target id, arch and release (the
/// same kernel in a pre-release pocket and then in the release keeps one first sighting).
pub fn kernel_key(k: &KernelRecord) -> String {
    format!("{}/{}/{}", k.arch.uname_m(), k.target_id, k.release)
}

/// The delay before attempt `attempts + 1` of a failing driver: `base` doubled per failure
/// already seen, at most `max`.
pub fn backoff(attempts: u32, base: u64, max: u64) -> u64 {
    let shift = attempts.saturating_sub(1).min(32);
    base.saturating_mul(1u64 << shift).min(max)
}

impl State {
    pub fn path(repo: &Path) -> PathBuf {
        repo.join(".probeforge/watch.json")
    }

    /// The state kept in `repo`, or a fresh one when there is none.
    pub fn load(repo: &Path) -> Result<State> {
        let p = State::path(repo);
        match fs::read(&p) {
            Ok(b) => {
                let s: State = serde_json::from_slice(&b).map_err(|e| Error::State {
                    path: p.clone(),
                    what: e.to_string(),
                })?;
                if s.format != STATE_FORMAT {
                    return Err(Error::State {
                        path: p,
                        what: format!("format `{}`, expected `{STATE_FORMAT}`", s.format),
                    });
                }
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Written whole or not at all.
    pub fn save(&self, repo: &Path) -> Result<()> {
        let p = State::path(repo);
        let json = serde_json::to_vec_pretty(self).expect("serializable");
        crate::base::write_atomic(&p, &json).map_err(io(&p))
    }

    /// Records a sighting at `now`; returns the kernel's first sighting.
    pub fn seen(&mut self, k: &KernelRecord, now: &str) -> String {
        self.first_seen
            .entry(kernel_key(k))
            .or_insert_with(|| now.to_owned())
            .clone()
    }

    /// Whether a failing file may be tried at `now` (a file that never failed may).
    pub fn due(&self, file_key: &str, now: i64) -> bool {
        self.failures
            .get(file_key)
            .is_none_or(|f| f.next_retry <= now)
    }

    /// Records a failure at `now`: one more attempt, the next after the backoff.
    pub fn failed(
        &mut self,
        target: &str,
        file_key: &str,
        error: &str,
        now: i64,
        (base, max): (u64, u64),
    ) {
        let attempts = self.failures.get(file_key).map_or(0, |f| f.attempts) + 1;
        let next = now + backoff(attempts, base, max) as i64;
        self.failures.insert(
            file_key.to_owned(),
            Failure {
                target: target.to_owned(),
                attempts,
                next_retry: next,
                next_retry_at: crate::base::utc(next),
                error: error.lines().next().unwrap_or("").to_owned(),
            },
        );
    }

    /// The targets with a failure due at `now`.
    pub fn due_targets(&self, now: i64) -> Vec<String> {
        let mut t: Vec<String> = self
            .failures
            .values()
            .filter(|f| f.next_retry <= now)
            .map(|f| f.target.clone())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// The earliest retry still pending, if any.
    pub fn next_retry(&self) -> Option<i64> {
        self.failures.values().map(|f| f.next_retry).min()
    }
}

/// The lock that makes a watch the only one on its repository, held while the value lives
/// (an `flock` on `R/.probeforge/watch.lock`, released by the kernel if the process dies).
pub struct Lock {
    _file: fs::File,
}

impl Lock {
    /// Takes the lock, or names the pid that holds it.
    pub fn acquire(repo: &Path) -> Result<Lock> {
        let p = repo.join(".probeforge/watch.lock");
        let dir = p.parent().expect("has a parent");
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(io(&p))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            let pid = match pid.trim() {
                "" => "unknown".to_owned(),
                p => p.to_owned(),
            };
            return Err(Error::Held { path: p, pid });
        }
        f.set_len(0).map_err(io(&p))?;
        f.rewind().map_err(io(&p))?;
        writeln!(f, "{}", std::process::id()).map_err(io(&p))?;
        f.sync_all().map_err(io(&p))?;
        Ok(Lock { _file: f })
    }
}

/// The signed files whose change means a target's listing may have changed: an APT target's
/// `InRelease` per suite and mirror (every index it lists is named, by digest, inside it).
/// `None` for kinds whose signed entry point is not one file per suite: those are listed every
/// round.
pub fn signed_metadata(
    catalog: &Catalog,
    mirrors: &Mirrors,
    target: &str,
    arches: &[Arch],
) -> Result<Option<Vec<String>>> {
    let t = catalog.target(target)?;
    if t.kind != "apt" {
        return Ok(None);
    }
    let mut urls = Vec::new();
    for &arch in arches {
        if !t.arches.iter().any(|a| Arch::parse(a) == Some(arch)) {
            continue;
        }
        for s in &t.suites {
            let name = s.mirror.clone().unwrap_or_else(|| match arch {
                Arch::Aarch64 => t.mirror_aarch64.clone().unwrap_or_else(|| t.mirror.clone()),
                _ => t.mirror.clone(),
            });
            let mirror = mirrors.resolve(catalog, &name)?;
            let url = format!("{mirror}/dists/{}/InRelease", s.suite);
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    Ok(Some(urls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        assert_eq!(backoff(1, 60, 3600), 60);
        assert_eq!(backoff(2, 60, 3600), 120);
        assert_eq!(backoff(4, 60, 3600), 480);
        assert_eq!(backoff(7, 60, 3600), 3600);
        assert_eq!(backoff(200, 60, 3600), 3600);
    }

    #[test]
    fn a_failure_waits_and_counts_its_attempts() {
        let mut s = State::default();
        assert!(s.due("a.o", 1000));
        s.failed("t", "a.o", "clang failed\nmore", 1000, (60, 3600));
        assert!(!s.due("a.o", 1059));
        assert!(s.due("a.o", 1060));
        assert!(s.due("b.o", 1000), "another kernel is not held back");
        assert!(s.due_targets(1059).is_empty());
        assert_eq!(s.due_targets(1060), ["t"]);
        s.failed("t", "a.o", "again", 1060, (60, 3600));
        let f = &s.failures["a.o"];
        assert_eq!((f.attempts, f.next_retry), (2, 1180));
        assert_eq!(f.error, "again");
        assert_eq!(s.next_retry(), Some(1180));
    }

    #[test]
    fn state_round_trips_and_refuses_another_format() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(State::load(t.path()).unwrap(), State::default());
        let mut s = State::default();
        s.first_seen
            .insert("x".into(), "2026-12-06T00:00:00Z".into());
        s.failed("t", "a.o", "e", 10, (1, 2));
        s.save(t.path()).unwrap();
        assert_eq!(State::load(t.path()).unwrap(), s);
        fs::write(State::path(t.path()), br#"{"format":"other"}"#).unwrap();
        let e = State::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("watch.json") && e.contains("`other`"), "{e}");
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let t = tempfile::tempdir().unwrap();
        let held = Lock::acquire(t.path()).unwrap();
        // flock locks belong to the open file: a second open in this process conflicts too.
        let e = Lock::acquire(t.path()).err().unwrap().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(held);
        Lock::acquire(t.path()).unwrap();
    }
}
