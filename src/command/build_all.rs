//! `probeforge build-all`: the nightly job. Lists (or reads) the kernels, keeps what the
//! repository lacks, and runs the [`Farm`] over them; with GitHub Releases as the repository,
//! uploads what it built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use crate::farm::{self, Farm, KernelResult, Status};
use crate::kernel::Arch;
use crate::patch::Catalog;
use crate::pipeline::Driver;
use crate::publish::Repo;
use crate::repo::KernelRecord;
use crate::report::Phase;
use crate::session::{self, Session};
use crate::shard::{self as sharding, Balance, Item, Load, Shard};
use crate::toolchain::Toolchain;
use crate::verify::Judgement;

use super::{need_files, Error, Result};

/// What `probeforge build-all` is asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub targets: Vec<String>,
    /// A kernel-crawler list, instead of (or beside) listing targets.
    pub from: Option<PathBuf>,
    /// A directory, an HTTP base URL or GitHub Releases.
    pub repo: String,
    /// Where new probes go when `repo` is not a directory.
    pub output: Option<PathBuf>,
    /// A regular expression over kernel releases.
    pub only: Option<String>,
    /// `None`: both.
    pub arch: Option<Arch>,
    pub driver_version: Option<String>,
    pub driver_source: Option<PathBuf>,
    /// The drivers each kernel gets (empty: the probe only).
    pub drivers: Vec<Driver>,
    /// `None`: every CPU.
    pub jobs: Option<usize>,
    pub verify: bool,
    pub scratch: Option<PathBuf>,
    /// An OpenPGP secret key signing every `SHA256SUMS`, and its passphrase.
    pub sign_key: Option<PathBuf>,
    pub sign_passphrase: String,
    /// Signs every kernel module with this key and certificate, as the kernel's `sign-file`
    /// does (`--module-sign-key`, `--module-sign-cert`).
    pub module_sign_key: Option<PathBuf>,
    pub module_sign_cert: Option<PathBuf>,
    /// Only the items of this shard (`--shard K/N`).
    pub shard: Option<Shard>,
    pub balance: Balance,
    /// Writes the repository's site after the batch (`--site`), with this run's build times.
    pub site: bool,
    /// Kernels given as records (a driverkit grid's configs, resolved), besides `from` and
    /// `targets`.
    pub kernels: Vec<KernelRecord>,
    /// `build-all --driverkit-configs DIR`: a tree of driverkit configs, instead of kernels
    /// (`command::driverkit::grid` runs it; `run` refuses it).
    pub driverkit_configs: Option<PathBuf>,
    /// With `driverkit_configs`: write each config's own output paths under this root,
    /// instead of publishing into `repo`.
    pub output_root: Option<PathBuf>,
    /// With `driverkit_configs`: refuse header URLs no signed metadata gives a digest for.
    pub require_verified: bool,
}

/// What a batch did.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub driver_version: String,
    pub repo: String,
    pub seconds: f64,
    pub built: usize,
    pub cached: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub unavailable: usize,
    pub failed: usize,
    /// `K/N` when the run was one shard of a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub kernels: Vec<KernelResult>,
    /// A target that could not be listed (the others went on).
    #[serde(skip)]
    pub list_failed: bool,
    /// Where new probes were published.
    #[serde(skip)]
    pub published_to: PathBuf,
    /// The site written after the batch (`--site`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<crate::site::Written>,
    /// A driverkit grid's pinned packages that the signed listing replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<crate::driverkit::Replacement>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failed == 0 && !self.list_failed
    }
}

/// Runs the batch. One kernel's failure is in its result, not an error.
pub fn run(
    o: &Options,
    net: &session::Options,
    tc: &Toolchain,
    rep: &dyn farm::Reporter,
) -> Result<Outcome> {
    if o.driverkit_configs.is_some() {
        return Err(Error::Usage(
            "a driverkit grid is built by `command::driverkit::grid`".into(),
        ));
    }
    need_files("driver source", &o.driver_source)?;
    need_files("kernel list", &o.from)?;
    if o.repo.is_empty() {
        return Err(Error::Usage("--repo is needed".into()));
    }
    let s = Session::open(net)?;
    let repo = Repo::parse(&o.repo);
    let publish_to = match (&repo, &o.output) {
        (Repo::Local(l), None) => &l.root,
        (_, Some(out)) => out,
        (Repo::Http(_), None) => {
            return Err(Error::Usage(
                "--repo is a URL: say where new probes go with --output DIR".into(),
            ))
        }
        (Repo::Github(_), None) => {
            return Err(Error::Usage(
                "--repo is GitHub Releases: give a local staging directory with --output DIR"
                    .into(),
            ))
        }
    };
    // Found before anything is listed or compiled.
    super::writable_dir("repository", publish_to)?;
    let publish_to = super::local_repo(publish_to, o.sign_key.as_deref(), &o.sign_passphrase)?;
    let Prepared {
        kernels,
        list_failed,
        version,
        batch,
        driver_dir,
        driver_digest,
        found,
        drivers,
    } = prepare(o, &s, rep)?;
    let select = o
        .shard
        .map(|shard| shard_keys(o, shard, &kernels, &version, &drivers));
    let keep = |k: &KernelRecord, d: Driver| {
        select
            .as_ref()
            .is_none_or(|keys| keys.contains(&sharding::key(k, &version, d)))
    };
    let lister = s.lister();
    let patches = Catalog::embedded();
    // The driver's event tables, once per arch and driver of the batch, for the VM's event
    // capture (a module's: the schema only).
    let mut tables = BTreeMap::new();
    if o.verify {
        let batch_arches: BTreeSet<Arch> = kernels.iter().map(|k| k.arch).collect();
        for &arch in &batch_arches {
            for &d in &drivers {
                let work = batch.path().join(format!("tables-{}-{d}", arch.uname_m()));
                std::fs::create_dir_all(&work).map_err(Error::write(&work))?;
                let t = match d {
                    Driver::Ebpf => {
                        crate::verify::events::driver_tables(&driver_dir, arch, tc, &work)
                    }
                    Driver::Kmod => {
                        crate::verify::events::module_tables(&driver_dir, arch, tc, &work)
                    }
                }
                .map_err(Error::tables)?;
                tables.insert((arch, d), t);
            }
        }
    }
    let verifier = |k: &KernelRecord, file: &str, bytes: &[u8]| -> Judgement {
        let d = match file.ends_with(".ko") {
            true => Driver::Kmod,
            false => Driver::Ebpf,
        };
        let proven =
            super::verify::kernel_image_for(&s, &k.target, k.arch, &k.release).and_then(|image| {
                super::verify::one(
                    &image,
                    file,
                    bytes.to_vec(),
                    tables.get(&(k.arch, d)).cloned(),
                )
            });
        match proven {
            Ok(v) => Judgement {
                ok: v.judgement.ok,
                line: v.to_string(),
            },
            Err(e) => Judgement {
                ok: false,
                line: super::chain(&e),
            },
        }
    };
    let jobs = o.jobs.unwrap_or_else(super::default_jobs).max(1);
    let compilers = s.compilers();
    let module_signer = match (&o.module_sign_key, &o.module_sign_cert) {
        (Some(k), Some(c)) => Some(crate::kmod::sign::Signer::from_files(k, c)?),
        _ => None,
    };
    let farm = Farm {
        compilers: &compilers,
        verify: if o.verify { Some(&verifier) } else { None },
        lister: &lister,
        repo: &repo,
        publish_to: &publish_to,
        driver_dir,
        driver_version: version.clone(),
        driver_digest,
        toolchain: tc,
        patches: &patches,
        module_source: drivers.contains(&Driver::Kmod).then_some(&found),
        drivers,
        // The farm runs `jobs` builds at once: each kbuild gets its share of the CPUs.
        kbuild_jobs: (super::default_jobs() / jobs).max(1),
        jobs,
        scratch: o.scratch.clone(),
        cache_dir: s.client.config().cache_dir.clone(),
        select: Some(&keep),
        module_signer: module_signer.as_ref(),
    };
    let started = Instant::now();
    let shipped: Vec<crate::site::Shipped> = match o.site {
        true => kernels.iter().map(Into::into).collect(),
        false => Vec::new(),
    };
    let mut results = farm.run(kernels, rep);
    // Every run (every shard) leaves a complete repository of its part, even of nothing.
    publish_to.reindex()?;
    // GitHub Releases: upload what this run built (and what was staged but not yet uploaded).
    if let Repo::Github(g) = &repo {
        for r in results
            .iter_mut()
            .filter(|r| matches!(r.status, Status::Built | Status::Cached | Status::Unchanged))
        {
            let path = publish_to.probe_path(&version, r.arch.uname_m(), &r.file);
            rep.phase(&r.release, Phase::Publish);
            let up = std::fs::read(&path)
                .map_err(Error::read(&path))
                .and_then(|b| Ok(g.upload(&s.client, &version, r.arch.uname_m(), &r.file, &b)?));
            rep.done(&r.release);
            if let Err(e) = up {
                r.status = Status::Failed;
                r.error = Some(super::chain(&e));
            }
        }
    }
    let site = match o.site {
        true => Some(write_site(o, &publish_to.root, shipped, &results, started)?),
        false => None,
    };
    let count = |st: Status| results.iter().filter(|r| r.status == st).count();
    Ok(Outcome {
        driver_version: version,
        repo: o.repo.clone(),
        seconds: elapsed(started),
        built: count(Status::Built),
        cached: count(Status::Cached),
        unchanged: count(Status::Unchanged),
        skipped: count(Status::Skipped),
        unavailable: count(Status::Unavailable),
        failed: count(Status::Failed),
        shard: o.shard.map(|s| s.to_string()),
        kernels: results,
        list_failed,
        published_to: publish_to.root.clone(),
        site,
        replaced: Vec::new(),
    })
}

/// `--site`: the repository's site over the batch's kernels, with this run's build times (of
/// what it built or failed to; what it skipped took no time).
fn write_site(
    o: &Options,
    root: &std::path::Path,
    shipped: Vec<crate::site::Shipped>,
    results: &[KernelResult],
    started: Instant,
) -> Result<crate::site::Written> {
    let seconds = results
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                Status::Built | Status::Cached | Status::Unchanged | Status::Failed
            )
        })
        .map(|r| r.seconds)
        .collect();
    let times = crate::site::Times {
        seconds,
        run_seconds: elapsed(started),
    };
    // With --only the batch is part of its targets' listings: added to the kept list, which
    // only a whole listing replaces.
    let targets: &[String] = match o.only {
        Some(_) => &[],
        None => &o.targets,
    };
    super::site::write(root, targets, shipped, Some(times))
}

/// What a batch and its plan share: the kernels, and the driver as the source says it is.
struct Prepared {
    kernels: Vec<KernelRecord>,
    list_failed: bool,
    version: String,
    /// The batch's scratch directory (the driver is unpacked in it).
    batch: tempfile::TempDir,
    driver_dir: PathBuf,
    driver_digest: String,
    found: crate::driver::DriverSource,
    drivers: Vec<Driver>,
}

fn prepare(o: &Options, s: &Session, rep: &dyn farm::Reporter) -> Result<Prepared> {
    let (kernels, list_failed) = kernels(o, s, rep)?;
    let cat = crate::driver::SourceCatalog::embedded();
    let version = o
        .driver_version
        .clone()
        .unwrap_or_else(|| cat.default_version.clone());
    let source = match &o.driver_source {
        Some(p) => p.clone(),
        None => {
            rep.phase(&version, Phase::Download);
            let p = s.driver_source(&version, None);
            rep.done(&version);
            p?
        }
    };
    let scratch_base = o
        .scratch
        .clone()
        .unwrap_or_else(crate::pipeline::default_scratch);
    let batch = tempfile::Builder::new()
        .prefix("probeforge-batch-")
        .tempdir_in(&scratch_base)
        .map_err(Error::write(&scratch_base))?;
    let (driver_dir, driver_digest) = farm::prepare_driver_source(&source, batch.path())?;
    // The version the probes are published under: given, else what the source says it is.
    let mut found = crate::driver::DriverSource::find(&driver_dir)?;
    found.identify(&driver_digest);
    let drivers = match o.drivers.is_empty() {
        true => vec![Driver::Ebpf],
        false => {
            let mut d = o.drivers.clone();
            d.sort();
            d.dedup();
            d
        }
    };
    let given = match &o.driver_source {
        Some(_) => o.driver_version.clone(),
        None => Some(version.clone()),
    };
    let version = found.version(given.as_deref())?;
    Ok(Prepared {
        kernels,
        list_failed,
        version,
        batch,
        driver_dir,
        driver_digest,
        found,
        drivers,
    })
}

/// Every (kernel, driver) item of the list.
fn items(kernels: &[KernelRecord], version: &str, drivers: &[Driver]) -> Vec<Item> {
    let mut items: Vec<Item> = kernels
        .iter()
        .flat_map(|k| drivers.iter().map(|&d| Item::new(k, version, d)))
        .collect();
    items.sort_by(|a, b| a.key.cmp(&b.key));
    items.dedup_by(|a, b| a.key == b.key);
    items
}

/// The keys of the items that fall in `shard`.
fn shard_keys(
    o: &Options,
    shard: Shard,
    kernels: &[KernelRecord],
    version: &str,
    drivers: &[Driver],
) -> BTreeSet<String> {
    sharding::assign(&items(kernels, version, drivers), shard.n, o.balance)
        .into_iter()
        .filter(|&(_, s)| s == shard.k)
        .map(|(key, _)| key)
        .collect()
}

/// The format tag of a plan file (`build-all --plan --json`), which `--from` reads back.
pub const PLAN_FORMAT: &str = "probeforge-plan-1";

/// What a run (or one shard of it) would build, with estimated costs, and every kernel listed
/// (so that one listing job's plan gives every shard the same list: `--from plan.json`).
#[derive(Debug, serde::Serialize)]
pub struct Plan {
    pub format: &'static str,
    pub driver_version: String,
    pub repo: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub balance: Balance,
    /// This shard's items (every item without `--shard`).
    pub items: Vec<PlanItem>,
    /// Of those: to build, already published, and modules with no compiler available.
    pub build: usize,
    pub published: usize,
    pub no_compiler: usize,
    /// Estimated CPU seconds of what is to build.
    pub cost_seconds: f64,
    /// Every shard's load of items to build (one shard without `--shard`), and the heaviest
    /// over the mean.
    pub shards: Vec<Load>,
    pub max_over_mean: f64,
    pub kernels: Vec<KernelRecord>,
    #[serde(skip)]
    pub list_failed: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct PlanItem {
    #[serde(flatten)]
    pub item: Item,
    pub shard: u32,
    /// `build`, `published`, or `no-compiler` (a module whose kernel's compiler is not
    /// available: see `compiler`).
    pub status: &'static str,
    /// A module's compiler: where it is resolved from, or why there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiler: Option<String>,
}

/// The plan of `o`: lists, looks every item up in the repository, and builds nothing.
pub fn plan(o: &Options, net: &session::Options, rep: &dyn farm::Reporter) -> Result<Plan> {
    if o.driverkit_configs.is_some() || o.repo.is_empty() {
        return Err(Error::Usage(
            "--plan reads --repo and kernels (not --driverkit-configs)".into(),
        ));
    }
    need_files("driver source", &o.driver_source)?;
    need_files("kernel list", &o.from)?;
    let s = Session::open(net)?;
    let repo = Repo::parse(&o.repo);
    let p = prepare(o, &s, rep)?;
    let all = items(&p.kernels, &p.version, &p.drivers);
    let n = o.shard.map_or(1, |s| s.n);
    let assigned = sharding::assign(&all, n, o.balance);
    let mut out = Vec::new();
    for item in all {
        let shard = assigned[&item.key];
        let exists = repo
            .exists(Some(&s.client), &p.version, &item.arch, &item.file)
            .map_err(|e| {
                Error::Usage(format!("looking up `{}`: {}", item.file, super::chain(&e)))
            })?;
        // A module's compiler, as far as the listing tells: a kernel with none is marked, not
        // left to fail late.
        let compiler = (item.driver == Driver::Kmod).then(|| {
            let k = p.kernels.iter().find(|k| {
                k.target == item.target
                    && k.release == item.release
                    && k.arch.uname_m() == item.arch
                    && k.kernel_version == item.kernel_version
            });
            match k.map(|k| crate::kmod::resolve::planned_source(&s.catalog, k)) {
                Some(Ok(from)) => Ok(format!("resolved from {from}")),
                Some(Err(why)) => Err(why),
                None => Err("the kernel of this item is not in the listing".into()),
            }
        });
        let status = match (&compiler, exists) {
            (_, true) => "published",
            (Some(Err(_)), false) => "no-compiler",
            _ => "build",
        };
        out.push(PlanItem {
            item,
            shard,
            status,
            compiler: compiler.map(|c| c.unwrap_or_else(|why| format!("none: {why}"))),
        });
    }
    let to_build: Vec<Item> = out
        .iter()
        .filter(|i| i.status == "build")
        .map(|i| i.item.clone())
        .collect();
    let (shards, max_over_mean) = sharding::loads(&to_build, &assigned, n);
    if let Some(sh) = o.shard {
        out.retain(|i| i.shard == sh.k);
    }
    let mine = out.iter().filter(|i| i.status == "build");
    let cost = mine.clone().map(|i| i.item.cost_seconds).sum::<f64>();
    Ok(Plan {
        format: PLAN_FORMAT,
        driver_version: p.version,
        repo: o.repo.clone(),
        shard: o.shard.map(|s| s.to_string()),
        balance: o.balance,
        build: mine.count(),
        published: out.iter().filter(|i| i.status == "published").count(),
        no_compiler: out.iter().filter(|i| i.status == "no-compiler").count(),
        cost_seconds: (cost * 10.0).round() / 10.0,
        items: out,
        shards,
        max_over_mean,
        kernels: p.kernels,
        list_failed: p.list_failed,
    })
}

fn elapsed(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// The kernels of the batch: the `from` list and the targets' listings, filtered by `only`
/// and `arch`. An `only` that matches nothing of a source is a usage error naming the closest
/// releases; a target that cannot be listed is reported and the others go on.
fn kernels(
    o: &Options,
    s: &Session,
    rep: &dyn farm::Reporter,
) -> Result<(Vec<KernelRecord>, bool)> {
    let only = o.only.as_deref().map(super::only_regex).transpose()?;
    let arches = match o.arch {
        Some(a) => vec![a],
        None => vec![Arch::X86_64, Arch::Aarch64],
    };
    let mut kernels = Vec::new();
    if let Some(f) = &o.from {
        kernels = super::read_list(f, &arches)?;
    } else if o.targets.is_empty() && o.kernels.is_empty() {
        return Err(Error::Usage(
            "give targets, or --from a kernel-crawler list".into(),
        ));
    }
    let (listed, list_failed) = super::query::list_targets(s, &o.targets, &arches, rep)?;
    kernels.extend(listed);
    kernels.extend(o.kernels.iter().cloned());
    if let Some(re) = &only {
        // A kernel matches by its `uname -r` or by the release in Falco's file name (a
        // kernel-crawler list's own `kernelrelease`: `6.1.176-1-amd64` for `6.1.0-50-amd64`).
        let matches = |k: &KernelRecord| re.is_match(&k.release) || re.is_match(&k.file_release());
        // A filter that matches nothing at all is a mistake to name, not "0 to build"; a
        // source (of several) it matches nothing of is said, and the others go on.
        let from = o.from.iter().map(|f| (f.display().to_string(), true));
        let mut empty = Vec::new();
        for (source, is_file) in from.chain(o.targets.iter().map(|t| (t.clone(), false))) {
            let of_source: Vec<&KernelRecord> = kernels
                .iter()
                .filter(|k| match is_file {
                    true => !o.targets.contains(&k.target),
                    false => k.target == source,
                })
                .collect();
            if !of_source.is_empty() && !of_source.iter().any(|k| matches(k)) {
                let releases: Vec<&str> = of_source.iter().map(|k| k.release.as_str()).collect();
                let closest = crate::repo::closest(&regex_text(re.as_str()), &releases, 3);
                empty.push(format!(
                    "--only `{re}` matches none of the {} of `{source}` (closest: {})",
                    crate::report::count(releases.len(), "kernel"),
                    closest.join(", ")
                ));
            }
        }
        kernels.retain(|k| matches(k));
        if kernels.is_empty() && !empty.is_empty() {
            return Err(Error::Usage(empty.join("; ")));
        }
        for e in empty {
            rep.note(&e);
        }
    }
    Ok((kernels, list_failed))
}

/// A regular expression as the plain text a person typed into it (`^6\.1\.` -> `6.1.`), to
/// find the releases it was probably meant to match.
fn regex_text(re: &str) -> String {
    let mut out = String::new();
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_regex_reads_as_the_text_it_was_meant_to_match() {
        assert_eq!(super::regex_text(r"^6\.1\.0-5.*-cloud$"), "6.1.0-5.-cloud");
        assert_eq!(super::regex_text(r"(5\.10|6\.1)"), "5.106.1");
    }
}
