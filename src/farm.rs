//! The nightly job: many kernels, every core busy with clang/llc while the next kernels
//! download, a compile cache keyed by everything that determines the bytes, publication into
//! the repository, and one kernel's failure never stopping the others.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::Mutex;
use std::time::Instant;

use crate::base::write_atomic;
use crate::kernel::Arch;
use crate::patch::Catalog;
use crate::pipeline::{self, probe_file_name, Request};
use crate::publish::{LocalRepo, ProbeMeta, Published, Repo};
use crate::repo::{KernelRecord, Lister};
use crate::report::Phase;
use crate::toolchain::Toolchain;
use crate::validate;
use crate::verify::Judgement;

/// Progress of a batch: the command's phases and notes, and each kernel as it ends.
pub trait Reporter: crate::report::Reporter {
    fn finished(&self, _result: &KernelResult) {}
}

/// Reports nothing.
pub struct NoReport;
impl crate::report::Reporter for NoReport {}
impl Reporter for NoReport {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Compiled now and published.
    Built,
    /// Taken from the compile cache and published.
    Cached,
    /// Built (or cached) with the same bytes as the probe already published.
    Unchanged,
    /// Already in the repository: not built.
    Skipped,
    /// Listed by the distro's index, but this mirror does not serve its files: nothing to
    /// build from here (not a failed build; the error names the URL).
    Unavailable,
    Failed,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelResult {
    pub target_id: String,
    pub release: String,
    pub arch: Arch,
    pub file: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub seconds: f64,
    /// CPU seconds of clang and llc for this kernel (0 when cached).
    pub clang_llc_cpu: f64,
    /// The VM's verdict, when verified before publishing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
}

pub struct Farm<'a> {
    pub lister: &'a Lister<'a>,
    pub repo: &'a Repo,
    /// Where new probes go: the repository itself when local.
    pub publish_to: &'a LocalRepo,
    /// The driver tree (already unpacked: see [`crate::driver::open`]).
    pub driver_dir: PathBuf,
    pub driver_version: String,
    pub driver_digest: String,
    pub toolchain: &'a Toolchain,
    pub patches: &'a Catalog,
    pub jobs: usize,
    pub scratch: Option<PathBuf>,
    pub cache_dir: PathBuf,
    /// Proves a probe loads before it is published (`--verify`): a probe whose judgement is
    /// not ok is not published, and the judgement says why.
    #[allow(clippy::type_complexity)]
    pub verify: Option<&'a (dyn Fn(&KernelRecord, &str, &[u8]) -> Judgement + Sync)>,
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

impl Farm<'_> {
    /// Builds every kernel not yet in the repository. Results are sorted by (arch, release).
    pub fn run(&self, kernels: Vec<KernelRecord>, rep: &dyn Reporter) -> Vec<KernelResult> {
        let mut results = Vec::new();
        let mut todo = Vec::new();
        let client = Some(self.lister.client);
        // The fast path trusts a local probe only at the size index.json records for it.
        let sizes = match self.repo {
            Repo::Local(l) => l.indexed_sizes(),
            _ => Default::default(),
        };
        for k in kernels {
            let file = probe_file_name(&k.target_id, &k.release, &k.kernel_version);
            let exists = self
                .repo
                .exists(client, &self.driver_version, k.arch.uname_m(), &file);
            let damaged = sizes.differs(&self.driver_version, k.arch.uname_m(), &file);
            if let (Ok(true), Some(why)) = (&exists, &damaged) {
                tracing::warn!("{why}: building it again");
            }
            match exists.map(|e| e && damaged.is_none()) {
                Ok(true) => results.push(KernelResult {
                    target_id: k.target_id.clone(),
                    release: k.release.clone(),
                    arch: k.arch,
                    file,
                    status: Status::Skipped,
                    sha256: None,
                    error: None,
                    seconds: 0.0,
                    clang_llc_cpu: 0.0,
                    verified: None,
                }),
                Ok(false) => todo.push((k, file)),
                Err(e) => results.push(self.failed(&k, file, error_chain(&e), 0.0)),
            }
        }
        rep.planned(todo.len(), results.len());
        for r in &results {
            rep.finished(r);
        }
        let built = Mutex::new(Vec::new());
        // Downloads run ahead of the compilers by at most `jobs` kernels: bounded disk use.
        let (tx, rx) = sync_channel::<(
            KernelRecord,
            String,
            Result<Vec<PathBuf>, crate::repo::Error>,
            Instant,
        )>(self.jobs);
        let rx = Mutex::new(rx);
        std::thread::scope(|s| {
            s.spawn(|| {
                for (k, file) in todo {
                    let start = Instant::now();
                    rep.phase(&k.release, Phase::Download);
                    // Only what the build reads: not kbuild's own package.
                    let k = Lister::for_build(&k);
                    let files = self.lister.fetch(&k);
                    if tx.send((k, file, files, start)).is_err() {
                        return;
                    }
                }
                drop(tx);
            });
            for _ in 0..self.jobs.max(1) {
                s.spawn(|| loop {
                    let next = rx.lock().unwrap().recv();
                    let Ok((k, file, files, start)) = next else {
                        return;
                    };
                    let r = match files {
                        Ok(f) => self.one(&k, file, &f, start, rep),
                        Err(e) => {
                            let mut r = self.failed(
                                &k,
                                file,
                                error_chain(&e),
                                start.elapsed().as_secs_f64(),
                            );
                            if matches!(e, crate::repo::Error::Unavailable { .. }) {
                                r.status = Status::Unavailable;
                            }
                            r
                        }
                    };
                    rep.finished(&r);
                    built.lock().unwrap().push(r);
                });
            }
        });
        results.extend(built.into_inner().unwrap());
        if let Err(e) = self.publish_to.reindex() {
            tracing::error!("reindex: {}", error_chain(&e));
        }
        results.sort_by(|a, b| {
            (a.arch, &a.release, &a.target_id).cmp(&(b.arch, &b.release, &b.target_id))
        });
        results
    }

    fn failed(&self, k: &KernelRecord, file: String, error: String, secs: f64) -> KernelResult {
        KernelResult {
            target_id: k.target_id.clone(),
            release: k.release.clone(),
            arch: k.arch,
            file,
            status: Status::Failed,
            sha256: None,
            error: Some(error),
            seconds: secs,
            clang_llc_cpu: 0.0,
            verified: None,
        }
    }

    fn one(
        &self,
        k: &KernelRecord,
        file: String,
        files: &[PathBuf],
        start: Instant,
        rep: &dyn Reporter,
    ) -> KernelResult {
        let fail = |e: String| self.failed(k, file.clone(), e, start.elapsed().as_secs_f64());
        // `k` is already what a probe build reads ([`Lister::for_build`], applied before the
        // download): no kbuild package among them.
        let (headers, header_digests): (Vec<PathBuf>, Vec<Option<String>>) = k
            .packages
            .iter()
            .zip(files)
            .map(|(p, f)| (f.clone(), p.known_sha256()))
            .unzip();
        rep.phase(&k.release, Phase::Unpack);
        let req = Request {
            headers,
            kernel_release: Some(k.release.clone()),
            driver_source: self.driver_dir.clone(),
            driver_version: Some(self.driver_version.clone()),
            target_id: Some(k.target_id.clone()),
            kernel_version: Some(k.kernel_version.clone()),
            arch: Some(k.arch),
            out_dir: PathBuf::from("."),
            scratch: Some(
                self.scratch
                    .clone()
                    .unwrap_or_else(pipeline::default_scratch),
            ),
            driver_digest: Some(self.driver_digest.clone()),
            header_digests,
        };
        // The cache key is made of what the compiler will see (command lines, staged driver
        // tree, headers, toolchain): known only once the build is staged and configured.
        let prepared = match pipeline::prepare(&req, self.toolchain, self.patches) {
            Ok(p) => p,
            Err(e) => return fail(error_chain(&e)),
        };
        let key = prepared.cache_key(self.toolchain);
        let cache_o = crate::base::Cache(&self.cache_dir).probe(&key);
        let cpu_of = |t: &crate::compile::Timing| (t.clang_cpu + t.llc_cpu).as_secs_f64();
        let (bytes, out, status) = match std::fs::read(&cache_o) {
            Ok(bytes) => {
                let out = prepared.output(self.toolchain, &bytes, Default::default());
                (bytes, out, Status::Cached)
            }
            Err(_) => {
                rep.phase(&k.release, Phase::Compile);
                match prepared.compile(self.toolchain) {
                    Ok((out, bytes)) => {
                        let _ = write_atomic(&cache_o, &bytes);
                        (bytes, out, Status::Built)
                    }
                    Err(e) => return fail(error_chain(&e)),
                }
            }
        };
        let cpu = cpu_of(&out.timing.probe) + cpu_of(&out.timing.configure);
        // Recorded inputs name the packages, not the cache's file names.
        let named_inputs: Vec<(String, String)> = k
            .packages
            .iter()
            .zip(files)
            .map(|(p, f)| {
                let fname = f.file_name().unwrap_or_default().to_string_lossy();
                let digest = out.inputs.iter().find(|(n, _)| *n == fname);
                (
                    p.name.clone(),
                    digest.map(|(_, d)| d.clone()).unwrap_or_default(),
                )
            })
            .collect();
        // A cached probe is checked as a fresh one is (by `output`).
        if !out.report.ok() {
            let e = validate::Invalid(out.report);
            return fail(e.to_string());
        }
        let mut verified = None;
        if let Some(v) = self.verify {
            rep.phase(&k.release, Phase::Boot);
            let j = v(k, &file, &bytes);
            if !j.ok {
                return self.failed(
                    k,
                    file,
                    format!("not published: {}", j.line),
                    start.elapsed().as_secs_f64(),
                );
            }
            verified = Some(j.line);
        }
        let sha = crate::base::sha256(&bytes);
        let pm = ProbeMeta {
            driver_version: self.driver_version.clone(),
            arch: k.arch.uname_m().to_owned(),
            target_id: k.target_id.clone(),
            kernel_release: k.release.clone(),
            kernel_version: k.kernel_version.clone(),
            file: file.clone(),
            size: bytes.len() as u64,
            sha256: sha.clone(),
            inputs: named_inputs,
            driver_source_sha256: out.driver_source_sha256,
            patches: out.patches,
            toolchain: out.toolchain,
            flags_sha256: out.flags_sha256,
            built_at: crate::base::timestamp(),
            unsigned_metadata: k.unsigned_metadata,
        };
        rep.phase(&k.release, Phase::Publish);
        match self.publish_to.publish(&pm, &bytes) {
            Ok(p) => KernelResult {
                target_id: k.target_id.clone(),
                release: k.release.clone(),
                arch: k.arch,
                file,
                status: if p == Published::Unchanged {
                    Status::Unchanged
                } else {
                    status
                },
                sha256: Some(sha),
                error: None,
                seconds: start.elapsed().as_secs_f64(),
                clang_llc_cpu: cpu,
                verified,
            },
            Err(e) => self.failed(k, file, error_chain(&e), start.elapsed().as_secs_f64()),
        }
    }
}

/// Unpacks the driver source once for a whole batch; returns its directory and digest (the
/// archive's, hashed while it was opened; a tree's, hashed here).
pub fn prepare_driver_source(
    input: &Path,
    scratch: &Path,
) -> Result<(PathBuf, String), crate::driver::Error> {
    let src = crate::driver::open(input, scratch)?;
    let digest = match src.sha256 {
        Some(d) => d,
        None => crate::base::digest_input(input).map_err(|source| crate::driver::Error::Io {
            path: input.to_owned(),
            source,
        })?,
    };
    Ok((src.dir, digest))
}
