//! `probeforge watch`: time to driver. Each round asks every target's signed metadata "changed
//! since?" (a 304 costs no body and no listing); a target whose index changed, or that has a
//! failure due for retry, is listed, each kernel's first sighting is recorded, and the kernels
//! go through `build-all`'s farm (build, validate, `--verify`, publish only what the repository
//! lacks), a few at a time so that a stop request is honoured between them. Then it sleeps.
//! The state lives in the repository (see [`crate::watch`]), one watch per repository.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::farm::{self, Status};
use crate::http::Conditional;
use crate::kernel::Arch;
use crate::publish::{LocalRepo, Stamps};
use crate::repo::KernelRecord;
use crate::session::{self, Session};
use crate::toolchain::Toolchain;
use crate::watch::{self as w, State};

use super::build_all;
use super::{Error, Result};

/// What `probeforge watch` is asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Targets, repository (a local directory), drivers, driver source, jobs, `--verify`...:
    /// what each round's build runs with (`kernels` is filled by each round).
    pub build: build_all::Options,
    /// The sleep between rounds.
    pub interval: Duration,
    /// One round, then exit (for a timer or cron).
    pub once: bool,
    /// A failing driver waits this long before its second attempt, doubled per failure, at
    /// most `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

/// How one signed index answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Poll {
    pub target: String,
    pub url: String,
    /// `not-modified` (304, no body), `changed` (a body: first look or a new version),
    /// `same` (a body, the one last read: the server sent no validators), `absent` (404: the
    /// suite does not exist there) or `error`.
    pub status: &'static str,
    /// Body bytes received.
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One round, as `--json` prints it (one object per line).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Round {
    pub event: &'static str,
    pub round: u64,
    pub started: String,
    pub seconds: f64,
    pub polls: Vec<Poll>,
    /// Targets listed this round (index changed, no conditional metadata, or a retry due).
    pub listed_targets: Vec<String>,
    pub kernels: usize,
    /// Files published this round.
    pub published: Vec<String>,
    pub built: usize,
    pub cached: usize,
    pub skipped: usize,
    pub failed: usize,
    pub unavailable: usize,
    /// Kernels held back this round: their failures wait for their next retry.
    pub deferred: usize,
    /// A stop was asked during the round: what was in hand was finished, the rest waits.
    pub interrupted: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Progress: the farm's, and each round as it ends.
pub trait Reporter: farm::Reporter {
    fn round(&self, _r: &Round) {}
}

/// What a whole watch did.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub rounds: u64,
    /// Failures in the last round (for `--once`'s exit code).
    pub last_failed: usize,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn watch_err(e: w::Error) -> Error {
    match e {
        w::Error::Held { .. } | w::Error::State { .. } => Error::Usage(e.to_string()),
        w::Error::Io { path, source } => Error::Write { path, source },
        w::Error::Repo(r) => Error::Repo(r),
    }
}

/// Runs rounds until `stop` is set (SIGTERM, SIGINT) or, with `once`, after one. A round in
/// progress finishes the builds in hand and writes the state before returning.
pub fn run(
    o: &Options,
    net: &session::Options,
    tc: &Toolchain,
    rep: &dyn Reporter,
    stop: &AtomicBool,
) -> Result<Summary> {
    if o.build.targets.is_empty() {
        return Err(Error::Usage("give the targets to watch".into()));
    }
    let root = PathBuf::from(&o.build.repo);
    if o.build.repo.is_empty() || o.build.repo.contains("://") {
        return Err(Error::Usage(format!(
            "--repo `{}`: watch publishes into a local directory",
            o.build.repo
        )));
    }
    let s = Session::open(net)?;
    // Every target named must exist before anything is written.
    for t in &o.build.targets {
        s.catalog.target(t)?;
    }
    std::fs::create_dir_all(&root).map_err(Error::write(&root))?;
    let _lock = w::Lock::acquire(&root).map_err(watch_err)?;
    let mut state = State::load(&root).map_err(watch_err)?;
    let mut summary = Summary {
        rounds: 0,
        last_failed: 0,
    };
    loop {
        let r = round(o, net, tc, &s, &root, &mut state, rep, stop)?;
        state.save(&root).map_err(watch_err)?;
        summary.rounds += 1;
        summary.last_failed = r.failed + r.unavailable;
        rep.round(&r);
        if o.once || stop.load(Ordering::SeqCst) {
            return Ok(summary);
        }
        let until = Instant::now() + o.interval;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return Ok(summary);
            }
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn round(
    o: &Options,
    net: &session::Options,
    tc: &Toolchain,
    s: &Session,
    root: &Path,
    state: &mut State,
    rep: &dyn Reporter,
    stop: &AtomicBool,
) -> Result<Round> {
    let started = Instant::now();
    let now = now_secs();
    let stamp = crate::base::utc(now);
    state.rounds += 1;
    let arches = match o.build.arch {
        Some(a) => vec![a],
        None => vec![Arch::X86_64, Arch::Aarch64],
    };
    let mut r = Round {
        event: "round",
        round: state.rounds,
        started: stamp.clone(),
        seconds: 0.0,
        polls: Vec::new(),
        listed_targets: Vec::new(),
        kernels: 0,
        published: Vec::new(),
        built: 0,
        cached: 0,
        skipped: 0,
        failed: 0,
        unavailable: 0,
        deferred: 0,
        interrupted: false,
        errors: Vec::new(),
    };
    // 1. Which targets changed: a conditional GET per signed index.
    let due = state.due_targets(now);
    let mut staged = Vec::new();
    let mut to_list = Vec::new();
    for t in &o.build.targets {
        let urls = w::signed_metadata(&s.catalog, &s.mirrors, t, &arches).map_err(watch_err)?;
        let mut changed = urls.is_none() || due.contains(t);
        for url in urls.unwrap_or_default() {
            let previous = state.indexes.get(&url).cloned().unwrap_or_default();
            let poll = match s.client.fetch_conditional(&url, &previous) {
                Ok(Conditional::NotModified) => Poll {
                    target: t.clone(),
                    url: crate::http::redact(&url),
                    status: "not-modified",
                    bytes: 0,
                    error: None,
                },
                Ok(Conditional::Changed { body, validators }) => {
                    let digest = crate::base::sha256(&body);
                    let same = state.digests.get(&url) == Some(&digest);
                    changed |= !same;
                    staged.push((url.clone(), validators, Some(digest)));
                    Poll {
                        target: t.clone(),
                        url: crate::http::redact(&url),
                        // The server sent the body again, but it is the one last read.
                        status: if same { "same" } else { "changed" },
                        bytes: body.len() as u64,
                        error: None,
                    }
                }
                // A suite that does not exist (yet, or any more: an old release's backports)
                // is remembered as absent: listed when it first goes, or comes, not each round.
                Err(crate::http::Error::Status { status: 404, .. }) => {
                    if previous.is_some() || !state.indexes.contains_key(&url) {
                        changed = true;
                        staged.push((url.clone(), Default::default(), None));
                    }
                    Poll {
                        target: t.clone(),
                        url: crate::http::redact(&url),
                        status: "absent",
                        bytes: 0,
                        error: None,
                    }
                }
                Err(e) => {
                    // The listing decides what a mirror that does not answer means.
                    changed = true;
                    Poll {
                        target: t.clone(),
                        url: crate::http::redact(&url),
                        status: "error",
                        bytes: 0,
                        error: Some(e.to_string()),
                    }
                }
            };
            r.polls.push(poll);
        }
        if changed {
            to_list.push(t.clone());
        }
    }
    // 2. List what changed; record every kernel's first sighting; hold back what waits.
    let lister = s.lister();
    let mut kernels: Vec<KernelRecord> = Vec::new();
    let mut listed_ok = Vec::new();
    for t in &to_list {
        match lister.list(t, &arches) {
            Ok(ks) => {
                let ks: Vec<KernelRecord> = ks
                    .into_iter()
                    .filter(|k| s.flavours.is_empty() || k.has_flavour(&s.flavours))
                    .collect();
                kernels.extend(ks);
                listed_ok.push(t.clone());
            }
            Err(e) => r
                .errors
                .push(format!("listing `{t}`: {}", super::chain(&e))),
        }
    }
    r.listed_targets = listed_ok.clone();
    let drivers = match o.build.drivers.is_empty() {
        true => vec![crate::pipeline::Driver::Ebpf],
        false => o.build.drivers.clone(),
    };
    let file_key = |k: &KernelRecord, d: crate::pipeline::Driver| {
        let file = d.file_name(&k.target_id, &k.file_release(), &k.kernel_version);
        format!("{}/{file}", k.arch.uname_m())
    };
    kernels.retain(|k| {
        state.seen(k, &stamp);
        let due = drivers.iter().any(|&d| state.due(&file_key(k, d), now));
        r.deferred += usize::from(!due);
        due
    });
    r.kernels = kernels.len();
    // 3. Build through the farm, a few kernels at a time: a stop is honoured between them.
    let jobs = o.build.jobs.unwrap_or_else(super::default_jobs).max(1);
    let repo = LocalRepo::new(root);
    let retry = (o.retry_base.as_secs().max(1), o.retry_max.as_secs().max(1));
    let mut rest = kernels.as_slice();
    while !rest.is_empty() {
        if stop.load(Ordering::SeqCst) {
            r.interrupted = true;
            break;
        }
        let (chunk, next) = rest.split_at(jobs.min(rest.len()));
        rest = next;
        let mut bo = o.build.clone();
        bo.targets = Vec::new();
        bo.from = None;
        bo.only = None;
        bo.site = false;
        bo.kernels = chunk.to_vec();
        let done = match build_all::run(&bo, net, tc, rep) {
            Ok(d) => d,
            Err(e) => {
                // The batch could not start (driver source, toolchain): every kernel of it
                // waits for its retry, the others go on.
                let why = super::chain(&e);
                for k in chunk {
                    for &d in &drivers {
                        state.failed(&k.target, &file_key(k, d), &why, now, retry);
                    }
                }
                r.failed += chunk.len() * drivers.len();
                r.errors.push(why);
                continue;
            }
        };
        for k in &done.kernels {
            let Some(rec) = chunk
                .iter()
                .find(|c| c.arch == k.arch && c.release == k.release && c.target_id == k.target_id)
            else {
                continue;
            };
            let key = format!("{}/{}", k.arch.uname_m(), k.file);
            match k.status {
                Status::Built | Status::Cached | Status::Unchanged => {
                    state.failures.remove(&key);
                    let first = state.first_seen.get(&w::kernel_key(rec)).cloned();
                    repo.stamp(
                        &done.driver_version,
                        k.arch.uname_m(),
                        &k.file,
                        &Stamps {
                            first_seen: first,
                            ..Default::default()
                        },
                    )?;
                    match k.status {
                        Status::Built => r.built += 1,
                        Status::Cached => r.cached += 1,
                        // Its bytes were there already: nothing new was published.
                        _ => {
                            r.skipped += 1;
                            continue;
                        }
                    }
                    r.published.push(k.file.clone());
                }
                Status::Skipped => {
                    state.failures.remove(&key);
                    r.skipped += 1;
                }
                Status::Failed | Status::Unavailable => {
                    let why = k.error.clone().unwrap_or_default();
                    state.failed(&rec.target, &key, &why, now, retry);
                    if k.status == Status::Failed {
                        r.failed += 1;
                    } else {
                        r.unavailable += 1;
                    }
                }
            }
        }
        repo.reindex()?;
    }
    // 4. An index's new version counts as read only when its kernels were all taken in hand:
    // after an interrupted round the next one lists it again.
    if !r.interrupted {
        for (url, v, digest) in staged {
            if let Some(p) = r.polls.iter().find(|p| p.url == crate::http::redact(&url)) {
                if listed_ok.contains(&p.target) || p.status == "same" {
                    match digest {
                        Some(d) => state.digests.insert(url.clone(), d),
                        None => state.digests.remove(&url),
                    };
                    state.indexes.insert(url, v);
                }
            }
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}
