//! The nightly job: many kernels, every core busy with clang/llc (and kbuild, for kernel
//! modules) while the next kernels download, a compile cache keyed by everything that
//! determines the bytes, publication into the repository, and one kernel's failure never
//! stopping the others. Each kernel gets every driver asked for (`ebpf`, `kmod`): one download
//! serves both, each is its own result.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::Mutex;
use std::time::Instant;

use crate::base::write_atomic;
use crate::kernel::Arch;
use crate::patch::Catalog;
use crate::pipeline::{self, Driver, Request};
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
    pub driver: Driver,
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
    /// CPU seconds of clang and llc for this kernel's probe (0 when cached, and for a module).
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
    /// The drivers each kernel gets, in order.
    pub drivers: Vec<Driver>,
    /// The driver source, opened (kernel modules are built from it: needed with `kmod`).
    pub module_source: Option<&'a crate::driver::DriverSource>,
    /// `make -j` of each module build (the farm runs `jobs` builds at once).
    pub kbuild_jobs: usize,
    /// Where modules' compilers come from (shared: each is resolved and fetched once).
    pub compilers: &'a dyn crate::kmod::resolve::FindCompiler,
    pub jobs: usize,
    pub scratch: Option<PathBuf>,
    pub cache_dir: PathBuf,
    /// Proves a probe loads before it is published (`--verify`): a probe whose judgement is
    /// not ok is not published, and the judgement says why.
    #[allow(clippy::type_complexity)]
    pub verify: Option<&'a (dyn Fn(&KernelRecord, &str, &[u8]) -> Judgement + Sync)>,
    /// Which drivers of which kernels this run builds (`--shard`): the others are not looked
    /// at, not even in the repository, and have no result.
    #[allow(clippy::type_complexity)]
    pub select: Option<&'a (dyn Fn(&KernelRecord, Driver) -> bool + Sync)>,
    /// Signs every module (cached or built) before it is validated and published
    /// (`build-all --module-sign-key`); the cache keeps modules unsigned.
    pub module_signer: Option<&'a crate::kmod::sign::Signer>,
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
            let mut wanted = Vec::new();
            for &driver in &self.drivers {
                if self.select.is_some_and(|keep| !keep(&k, driver)) {
                    continue;
                }
                let file = driver.file_name(&k.target_id, &k.file_release(), &k.kernel_version);
                let exists =
                    self.repo
                        .exists(client, &self.driver_version, k.arch.uname_m(), &file);
                let damaged = sizes.differs(&self.driver_version, k.arch.uname_m(), &file);
                if let (Ok(true), Some(why)) = (&exists, &damaged) {
                    tracing::warn!("{why}: building it again");
                }
                match exists.map(|e| e && damaged.is_none()) {
                    Ok(true) => {
                        let mut r = self.failed(&k, driver, file, String::new(), 0.0);
                        r.status = Status::Skipped;
                        r.error = None;
                        results.push(r);
                    }
                    Ok(false) => wanted.push((driver, file)),
                    Err(e) => results.push(self.failed(&k, driver, file, error_chain(&e), 0.0)),
                }
            }
            if !wanted.is_empty() {
                todo.push((k, wanted));
            }
        }
        let planned: usize = todo.iter().map(|(_, w)| w.len()).sum();
        rep.planned(planned, results.len());
        for r in &results {
            rep.finished(r);
        }
        let built = Mutex::new(Vec::new());
        // Downloads run ahead of the compilers by at most `jobs` kernels: bounded disk use.
        type Fetched = (
            KernelRecord,
            Vec<(Driver, String)>,
            Result<Vec<PathBuf>, crate::repo::Error>,
            Instant,
        );
        let (tx, rx) = sync_channel::<Fetched>(self.jobs);
        let rx = Mutex::new(rx);
        std::thread::scope(|s| {
            s.spawn(|| {
                for (k, wanted) in todo {
                    let start = Instant::now();
                    let todo_kernel = k.clone();
                    rep.phase(&k.release, Phase::Download);
                    // Only what the builds read: kbuild's own package only for a module, of
                    // this host's arch (its programs run here).
                    let k = match (wanted.iter().any(|(d, _)| *d == Driver::Kmod), Arch::host()) {
                        (false, _) => Ok(Lister::for_build(&k)),
                        (true, Some(host)) => self.lister.with_host_kbuild(&k, host),
                        (true, None) => Ok(k),
                    };
                    let (k, files) = match k {
                        Ok(k) => {
                            let files = self.lister.fetch(&k);
                            (k, files)
                        }
                        Err(e) => (todo_kernel.clone(), Err(e)),
                    };
                    if tx.send((k, wanted, files, start)).is_err() {
                        return;
                    }
                }
                drop(tx);
            });
            for _ in 0..self.jobs.max(1) {
                s.spawn(|| loop {
                    let next = rx.lock().unwrap().recv();
                    let Ok((k, wanted, files, start)) = next else {
                        return;
                    };
                    // A kernel built from source: its tree prepared once, for every driver.
                    let tree = match &files {
                        Ok(f) if k.from_source() => Some(self.source_tree(&k, f, rep)),
                        _ => None,
                    };
                    for (driver, file) in wanted {
                        let secs = || start.elapsed().as_secs_f64();
                        let r = match (&files, &tree) {
                            (Ok(_), Some(Err(e))) => {
                                self.failed(&k, driver, file, e.clone(), secs())
                            }
                            (Ok(f), Some(Ok(t))) if driver == Driver::Kmod => {
                                self.one_module(&k, file, f, Some(t), start, rep)
                            }
                            (Ok(_), Some(Ok(t))) => self.one(
                                &Lister::for_build(&k),
                                file,
                                std::slice::from_ref(t),
                                start,
                                rep,
                            ),
                            (Ok(f), None) if driver == Driver::Kmod => {
                                self.one_module(&k, file, f, None, start, rep)
                            }
                            (Ok(f), None) => {
                                // The probe reads the headers only, whatever was fetched.
                                let (probe_k, probe_files) = for_probe(&k, f);
                                self.one(&probe_k, file, &probe_files, start, rep)
                            }
                            (Err(e), _) => {
                                let mut r = self.failed(
                                    &k,
                                    driver,
                                    file,
                                    error_chain(e),
                                    start.elapsed().as_secs_f64(),
                                );
                                if matches!(e, crate::repo::Error::Unavailable { .. }) {
                                    r.status = Status::Unavailable;
                                }
                                r
                            }
                        };
                        if r.status == Status::Failed {
                            self.keep_failure(&k, &r);
                        }
                        rep.finished(&r);
                        built.lock().unwrap().push(r);
                    }
                });
            }
        });
        results.extend(built.into_inner().unwrap());
        if let Err(e) = self.publish_to.reindex() {
            tracing::error!("reindex: {}", error_chain(&e));
        }
        results.sort_by(|a, b| {
            (a.arch, &a.release, &a.target_id, a.driver).cmp(&(
                b.arch,
                &b.release,
                &b.target_id,
                b.driver,
            ))
        });
        results
    }

    /// The prepared tree of a kernel built from its source (see [`crate::vanilla`]), from
    /// its fetched source tarball and `.config`.
    fn source_tree(
        &self,
        k: &KernelRecord,
        files: &[PathBuf],
        rep: &dyn Reporter,
    ) -> Result<PathBuf, String> {
        let (Some(source), Some(config)) = k.source_files(files) else {
            return Err(format!(
                "kernel {} is built from its source and its list gives no .config (build it with `probeforge build --target {} --kernel {} --kernel-config FILE`)",
                k.release, k.target, k.release
            ));
        };
        let scratch = self
            .scratch
            .clone()
            .unwrap_or_else(pipeline::default_scratch);
        rep.phase(&k.release, Phase::Unpack);
        let prepared = crate::vanilla::prepare(
            &crate::vanilla::Request {
                source,
                config,
                release: Some(k.release.clone()),
                arch: k.arch,
                jobs: self.kbuild_jobs,
            },
            &self.cache_dir,
            &scratch,
        );
        prepared.map(|p| p.tree).map_err(|e| error_chain(&e))
    }

    fn failed(
        &self,
        k: &KernelRecord,
        driver: Driver,
        file: String,
        error: String,
        secs: f64,
    ) -> KernelResult {
        KernelResult {
            driver,
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
        let fail = |e: String| {
            self.failed(
                k,
                Driver::Ebpf,
                file.clone(),
                e,
                start.elapsed().as_secs_f64(),
            )
        };
        // `k` is already what a probe build reads ([`Lister::for_build`], applied before the
        // download): no kbuild package among them.
        // A kernel built from source is one prepared tree (no listed digest stands for it).
        let (headers, header_digests): (Vec<PathBuf>, Vec<Option<String>>) = match k.from_source() {
            true => (files.to_vec(), vec![None; files.len()]),
            false => k
                .packages
                .iter()
                .zip(files)
                .map(|(p, f)| (f.clone(), p.known_sha256()))
                .unzip(),
        };
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
            file_release: k.from_source().then(|| k.file_release()),
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
        self.finish(
            k,
            Driver::Ebpf,
            file,
            Made {
                bytes,
                status,
                inputs: named_inputs,
                driver_source_sha256: out.driver_source_sha256,
                patches: out.patches,
                toolchain: out.toolchain,
                flags_sha256: out.flags_sha256,
                clang_llc_cpu: cpu,
                signed_by: None,
            },
            start,
            rep,
        )
    }

    /// A driver made (built or cached, validated): proven when asked, recorded and published.
    fn finish(
        &self,
        k: &KernelRecord,
        driver: Driver,
        file: String,
        made: Made,
        start: Instant,
        rep: &dyn Reporter,
    ) -> KernelResult {
        let fail =
            |e: String| self.failed(k, driver, file.clone(), e, start.elapsed().as_secs_f64());
        let mut verified = None;
        if let Some(v) = self.verify {
            rep.phase(&k.release, Phase::Boot);
            let j = v(k, &file, &made.bytes);
            if !j.ok {
                return fail(format!("not published: {}", j.line));
            }
            verified = Some(j.line);
        }
        let sha = crate::base::sha256(&made.bytes);
        let pm = ProbeMeta {
            driver_version: self.driver_version.clone(),
            arch: k.arch.uname_m().to_owned(),
            target_id: k.target_id.clone(),
            kernel_release: k.release.clone(),
            kernel_version: k.kernel_version.clone(),
            file: file.clone(),
            size: made.bytes.len() as u64,
            sha256: sha.clone(),
            inputs: made.inputs,
            driver_source_sha256: made.driver_source_sha256,
            patches: made.patches,
            toolchain: made.toolchain,
            flags_sha256: made.flags_sha256,
            built_at: crate::base::timestamp(),
            unsigned_metadata: k.unsigned_metadata,
            verified: verified.clone(),
            signed_by: made.signed_by,
        };
        rep.phase(&k.release, Phase::Publish);
        match self.publish_to.publish(&pm, &made.bytes) {
            Ok(p) => KernelResult {
                driver,
                target_id: k.target_id.clone(),
                release: k.release.clone(),
                arch: k.arch,
                status: if p == Published::Unchanged {
                    Status::Unchanged
                } else {
                    made.status
                },
                file,
                sha256: Some(sha),
                error: None,
                seconds: start.elapsed().as_secs_f64(),
                clang_llc_cpu: made.clang_llc_cpu,
                verified,
            },
            Err(e) => fail(error_chain(&e)),
        }
    }
}

impl Farm<'_> {
    /// One kernel's module: from the compile cache (keyed by everything that determines its
    /// bytes, known before unpacking: the driver, the packages' digests, the compilers
    /// `toolchain/` pins), else built from the kernel's whole set with its own compiler;
    /// validated, optionally proven, published.
    fn one_module(
        &self,
        k: &KernelRecord,
        file: String,
        files: &[PathBuf],
        // A kernel built from its source: its prepared tree, where the module is built.
        tree: Option<&PathBuf>,
        start: Instant,
        rep: &dyn Reporter,
    ) -> KernelResult {
        let secs = || start.elapsed().as_secs_f64();
        let fail = |e: String| self.failed(k, Driver::Kmod, file.clone(), e, secs());
        let Some(src) = self.module_source else {
            return fail("no driver source was opened for kernel modules".into());
        };
        let inputs: Vec<(String, String)> = k
            .packages
            .iter()
            .zip(files)
            .map(|(p, f)| {
                let d = p
                    .known_sha256()
                    .or_else(|| crate::base::digest_input(f).ok());
                (p.name.clone(), d.unwrap_or_default())
            })
            .collect();
        let pins: Vec<String> = crate::kmod::GccManifest::embedded()
            .iter()
            .map(|m| m.digest())
            .collect();
        let key = crate::base::sha256(
            serde_json::json!({
                "kind": if tree.is_some() { "kmod-source-1" } else { "kmod-1" },
                "driver": [&self.driver_digest, &self.driver_version],
                "kernel": [&k.target_id, &k.release, &k.kernel_version, k.arch.uname_m()],
                "inputs": inputs,
                "pins": pins,
            })
            .to_string()
            .as_bytes(),
        );
        let cache = crate::base::Cache(&self.cache_dir);
        let (cache_ko, cache_meta) = (cache.module(&key), cache.module_meta(&key));
        let cached = std::fs::read(&cache_ko).ok().and_then(|b| {
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&cache_meta).ok()?).ok()?;
            let toolchain = meta["toolchain"].as_str()?.to_owned();
            // A cached module still says it is for this kernel.
            let info = crate::kmod::validate::modinfo(&b).ok()?;
            let vermagic = info.iter().find(|(k, _)| k == "vermagic")?;
            vermagic
                .1
                .starts_with(&format!("{} ", k.release))
                .then_some((b, toolchain, meta["sig_hash"].as_str().map(str::to_owned)))
        });
        // A cached module from before the cache recorded the kernel's signature hash is built
        // again when it must be signed.
        let cached = cached.filter(|c| self.module_signer.is_none() || c.2.is_some());
        let (bytes, toolchain, status, sig_hash) = match cached {
            Some((b, t, h)) => (b, t, Status::Cached, h),
            None => {
                let scratch = self
                    .scratch
                    .clone()
                    .unwrap_or_else(pipeline::default_scratch);
                let built = match tree {
                    Some(tree) => crate::kmod::package::build_in_tree(
                        &crate::kmod::package::InTree {
                            tree,
                            driver: src,
                            driver_version: Some(&self.driver_version),
                            target_id: &k.target_id,
                            kernel_version: &k.kernel_version,
                            module_name: crate::kmod::kbuild::MODULE_NAME,
                            scratch: &scratch,
                            jobs: self.kbuild_jobs,
                        },
                        rep,
                    ),
                    None => crate::kmod::package::build(
                        &crate::kmod::package::FromPackages {
                            packages: files,
                            driver: src,
                            driver_version: Some(&self.driver_version),
                            target_id: Some(&k.target_id),
                            kernel_version: Some(&k.kernel_version),
                            module_name: crate::kmod::kbuild::MODULE_NAME,
                            release: Some(&k.release),
                            arch: Some(k.arch),
                            scratch: &scratch,
                            jobs: self.kbuild_jobs,
                            compilers: self.compilers,
                            target: Some(&k.target),
                        },
                        rep,
                    ),
                };
                match built {
                    Ok(b) => {
                        let toolchain =
                            format!("{} ({})", b.module.compiler, b.module.compiler_text);
                        // The kernel's CONFIG_MODULE_SIG_HASH, for signing a cached module.
                        let sig_hash = b
                            .tree
                            .config
                            .get("MODULE_SIG_HASH")
                            .map(|h| h.trim_matches('"').to_owned());
                        let meta =
                            serde_json::json!({ "toolchain": toolchain, "sig_hash": sig_hash });
                        let _ = write_atomic(&cache_meta, meta.to_string().as_bytes());
                        let _ = write_atomic(&cache_ko, &b.module.bytes);
                        (b.module.bytes, toolchain, Status::Built, sig_hash)
                    }
                    Err(e) => return fail(error_chain(&e)),
                }
            }
        };
        let (bytes, signed_by) = match self.module_signer {
            None => (bytes, None),
            Some(signer) => {
                let signed = crate::kmod::sign::Hash::parse(sig_hash.as_deref().unwrap_or(""))
                    .and_then(|h| Ok((signer.sign_checked(&bytes, h)?, h)));
                match signed {
                    Ok((b, hash)) => (
                        b,
                        Some(crate::kmod::sign::Signed {
                            hash,
                            signer: signer.identity().clone(),
                        }),
                    ),
                    Err(e) => return fail(format!("signing the module: {}", error_chain(&e))),
                }
            }
        };
        self.finish(
            k,
            Driver::Kmod,
            file,
            Made {
                bytes,
                status,
                inputs,
                driver_source_sha256: self.driver_digest.clone(),
                patches: Vec::new(),
                toolchain,
                flags_sha256: String::new(),
                clang_llc_cpu: 0.0,
                signed_by,
            },
            start,
            rep,
        )
    }
}

impl Farm<'_> {
    /// Keeps a failed kernel's record in the repository (`index.json` carries it) until a
    /// later run publishes its driver. A repository that cannot keep it still has the result.
    fn keep_failure(&self, k: &KernelRecord, r: &KernelResult) {
        let log = r.error.clone().unwrap_or_default();
        let f = crate::publish::FailureRecord {
            driver_version: self.driver_version.clone(),
            arch: k.arch.uname_m().to_owned(),
            driver: r.driver.to_string(),
            target_id: k.target_id.clone(),
            kernel_release: k.release.clone(),
            kernel_version: k.kernel_version.clone(),
            file: r.file.clone(),
            reason: log.lines().next().unwrap_or("").to_owned(),
            log,
            inputs: k
                .packages
                .iter()
                .map(|p| (p.name.clone(), p.known_sha256().unwrap_or_default()))
                .collect(),
            at: crate::base::timestamp(),
        };
        if let Err(e) = self.publish_to.record_failure(&f) {
            tracing::warn!("keeping the failure of {}: {}", r.file, error_chain(&e));
        }
    }
}

/// A driver's bytes and what its record says of how they were made.
struct Made {
    bytes: Vec<u8>,
    status: Status,
    /// The kernel's packages: (name, sha256).
    inputs: Vec<(String, String)>,
    driver_source_sha256: String,
    patches: Vec<String>,
    toolchain: String,
    flags_sha256: String,
    clang_llc_cpu: f64,
    /// A module's signer, recorded in the index.
    signed_by: Option<crate::kmod::sign::Signed>,
}

/// The record and files of a probe build out of a kernel's whole set: its headers only.
fn for_probe(k: &KernelRecord, files: &[PathBuf]) -> (KernelRecord, Vec<PathBuf>) {
    let probe_k = Lister::for_build(k);
    let probe_files = k
        .packages
        .iter()
        .zip(files)
        .filter(|(p, _)| probe_k.packages.iter().any(|q| q.name == p.name))
        .map(|(_, f)| f.clone())
        .collect();
    (probe_k, probe_files)
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
