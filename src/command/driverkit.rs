//! driverkit's configs as inputs and outputs: `build -c FILE.yaml`, `build-all
//! --driverkit-configs DIR`, `list-kernels --format driverkit`.
//!
//! A config's `kernelurls` are downloaded as given, but never trusted on their word: a URL
//! whose file the signed listing of the catalog target (the one driverkit's `target` maps to)
//! names must have the listing's digest, or it is refused naming the URL and both digests; a
//! URL no catalog repository knows is fetched unverified, recorded as such and said in one
//! line (`require_verified` refuses it). Where driverkit and probeforge read a config
//! differently, one line names both readings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::driverkit::{self, Config, Replacement};

pub use crate::driverkit::Request;
use crate::kernel::Arch;
use crate::pipeline::Driver;
use crate::repo::{KernelRecord, PackageRef};
use crate::report::Reporter;
use crate::session::Session;

use super::{Error, Result};

/// What builds without images say instead of `builderimage`, `builderrepo`, `gccversion`.
pub const NO_IMAGES: &str = "no builder images here: the probe is built with the pinned clang/llc, the module with the kernel's own gcc (its CONFIG_CC_VERSION_TEXT, pinned by digest)";

/// Reads a config file; unknown keys and image keys are said (one line each) to `rep`.
pub fn read(path: &Path, rep: &dyn Reporter) -> Result<Config> {
    let bytes = std::fs::read(path).map_err(Error::read(path))?;
    let p =
        driverkit::parse(&bytes).map_err(|e| Error::Usage(format!("`{}`: {e}", path.display())))?;
    if !p.unknown.is_empty() {
        rep.warn(&format!(
            "`{}`: probeforge does not know {} (ignored)",
            path.display(),
            p.unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let c = p.config;
    if c.builderimage.is_some() || !c.builderrepo.is_empty() || c.gccversion.is_some() {
        rep.note(&format!(
            "`{}`: builderimage/builderrepo/gccversion ignored: {NO_IMAGES}",
            path.display()
        ));
    }
    c.kernel_config()
        .map_err(|e| Error::Usage(format!("`{}`: {e}", path.display())))?;
    Ok(c)
}

/// Falco's target id for driverkit's `target` (driverkit's plain `ubuntu` reads its flavour
/// from the release, as Falco's loader does: `ubuntu-generic`, `ubuntu-aws`, ...).
pub fn falco_target_id(target: &str, release: &str) -> String {
    if target == "ubuntu" {
        let flavour = release.rsplit('-').next().unwrap_or("generic");
        let flavour = match flavour.chars().all(|c| c.is_ascii_digit()) {
            true => "generic",
            false => flavour,
        };
        return format!("ubuntu-{flavour}");
    }
    target.to_owned()
}

/// The target names driverkit itself builds for (its `--target`).
const DRIVERKIT_TARGETS: &[&str] = &[
    "almalinux",
    "alinux",
    "amazonlinux",
    "amazonlinux2",
    "amazonlinux2022",
    "amazonlinux2023",
    "arch",
    "bottlerocket",
    "centos",
    "debian",
    "fedora",
    "flatcar",
    "minikube",
    "ol",
    "opensuse",
    "photon",
    "redhat",
    "rocky",
    "sles",
    "talos",
    "ubuntu",
    "vanilla",
];

/// A config's `target` must be one driverkit or the catalog knows: a misspelt one (`debain`)
/// is refused, naming the closest, instead of building under a name no loader asks for.
fn known_target(s: &Session, target: &str) -> Result<()> {
    let mut known: Vec<&str> = DRIVERKIT_TARGETS.to_vec();
    known.extend(s.catalog.targets.iter().map(|t| t.target_id.as_str()));
    if known.contains(&target) || target.starts_with("ubuntu-") {
        return Ok(());
    }
    known.sort_unstable();
    known.dedup();
    Err(Error::Usage(format!(
        "unknown target `{target}` (closest: {}; driverkit's targets and the catalog's target ids are known)",
        crate::repo::closest(target, &known, 3).join(", ")
    )))
}

/// The catalog target whose signed listing authenticates a Falco target id's URLs: the one
/// named as the id (Debian's union of releases), else the first with that id.
fn catalog_target(s: &Session, target_id: &str) -> Option<String> {
    let id = match target_id.starts_with("ubuntu") {
        true => "ubuntu",
        false => target_id,
    };
    let mut with_id = s.catalog.targets.iter().filter(|t| t.target_id == id);
    s.catalog
        .targets
        .iter()
        .find(|t| t.target_id == id && t.name == id)
        .or_else(|| with_id.next())
        .map(|t| t.name.clone())
}

/// A config's kernel, its packages authenticated where the catalog can.
#[derive(Debug)]
pub struct Resolved {
    pub record: KernelRecord,
    /// URLs no signed listing gives a digest for (fetched unverified).
    pub unauthenticated: Vec<String>,
    /// Where driverkit's reading and probeforge's differ: one line each.
    pub disagreements: Vec<String>,
    /// Pinned packages the signed listing no longer names, replaced by its package of the
    /// same name.
    pub replaced: Vec<Replacement>,
    /// URLs on another host than the listing's whose file the listing names: fetched from the
    /// listing's mirror, checked against its digest (one line each).
    pub moved: Vec<String>,
}

/// Listings by (catalog target, arch), listed once per run.
#[derive(Default)]
pub struct Listings(std::sync::Mutex<BTreeMap<(String, Arch), Vec<KernelRecord>>>);

impl Listings {
    fn get(&self, s: &Session, target: &str, arch: Arch) -> Result<Vec<KernelRecord>> {
        let key = (target.to_owned(), arch);
        if let Some(l) = self.0.lock().expect("not poisoned").get(&key) {
            return Ok(l.clone());
        }
        let l = s.lister().list(target, &[arch])?;
        self.0.lock().expect("not poisoned").insert(key, l.clone());
        Ok(l)
    }
}

fn file_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// The kernel a config means: its `kernelurls` as packages, each with the digest the signed
/// listing gives its file; the packages the listing says the kernel needs (for `driver`) and
/// the config lacks are an error naming them.
pub fn resolve(
    s: &Session,
    listings: &Listings,
    c: &Config,
    driver: Driver,
    require_verified: bool,
) -> Result<Resolved> {
    let arch = c
        .arch()
        .map_err(|e| Error::Usage(format!("kernel `{}`: {e}", c.kernelrelease)))?;
    if c.kernelurls.is_empty() {
        // talos, minikube, flatcar, vanilla: kernel.org's source with the config's `.config`.
        if let Some(config) = c.kernel_config().map_err(|e| Error::Usage(e.to_string()))? {
            let mut record = crate::repo::kernel_org::source_record(
                &c.target,
                &c.kernelrelease,
                c.kernel_version(),
                &config,
                arch,
            )
            .map_err(Error::Usage)?;
            record.origin = "driverkit config".into();
            record.arch = arch;
            // The tarball's digest from kernel.org's signed sums (unsigned without its key).
            let record = s.lister().with_kernel_source(&record)?;
            return Ok(Resolved {
                record,
                unauthenticated: Vec::new(),
                disagreements: Vec::new(),
                replaced: Vec::new(),
                moved: Vec::new(),
            });
        }
        return Err(Error::Usage(format!(
            "kernel `{}`: the config has no `kernelurls` and no `kernelconfigdata` (probeforge does not guess header URLs: `list-kernels --format driverkit` writes configs that have them)",
            c.kernelrelease
        )));
    }
    let target_id = falco_target_id(&c.target, &c.kernelrelease);
    let mut disagreements = Vec::new();
    if target_id != c.target {
        disagreements.push(format!(
            "target: driverkit's `{}`, Falco's file names and probeforge's `{target_id}`",
            c.target
        ));
    }
    let catalog = catalog_target(s, &target_id);
    // The signed listing's packages of this kernel, by file name.
    let mut listed: Option<KernelRecord> = None;
    let mut by_file: BTreeMap<String, PackageRef> = BTreeMap::new();
    // The kernel's `uname -r`: the config's `kernelrelease` may be Falco's name for it (the
    // public grid's Debian configs say `5.10.223-1-amd64` for `5.10.0-32-amd64`).
    let mut release = c.kernelrelease.clone();
    if let Some(t) = &catalog {
        let all = listings.get(s, t, arch)?;
        if let Some((r, _)) = crate::names::resolve(&all, &c.kernelrelease)
            .map_err(|e| Error::Usage(e.to_string()))?
        {
            release = r;
        }
        let mut same: Vec<KernelRecord> =
            all.into_iter().filter(|k| k.release == release).collect();
        // The record whose files the config names most (a release can be in several suites).
        same.sort_by_key(|k| {
            std::cmp::Reverse(
                k.packages
                    .iter()
                    .filter(|p| {
                        c.kernelurls
                            .iter()
                            .any(|u| file_name(u) == file_name(&p.url))
                    })
                    .count(),
            )
        });
        for k in &same {
            for p in &k.packages {
                by_file
                    .entry(file_name(&p.url).to_owned())
                    .or_insert_with(|| p.clone());
            }
        }
        listed = same.into_iter().next();
    }
    // Each URL: the listing's package of that file, whatever the host (fetched from the
    // listing's mirror, checked against its digest); else, a package of a name the listed
    // kernel has at another version (a pinned kbuild the mirror dropped): the listing's;
    // else unauthenticated.
    let mut packages: Vec<PackageRef> = Vec::new();
    let mut replaced = Vec::new();
    let mut moved = Vec::new();
    for u in &c.kernelurls {
        let file = file_name(u);
        if let Some(p) = by_file.get(file) {
            if p.url != *u {
                moved.push(format!(
                    "`{}`: the signed listing's file, fetched from `{}` and checked against its digest",
                    crate::http::redact(u),
                    crate::http::redact(&p.url)
                ));
            }
            packages.push(p.clone());
            continue;
        }
        let same_name = driverkit::deb_name_version(file).and_then(|(name, version)| {
            let p = listed.as_ref()?.packages.iter().find(|p| p.name == name)?;
            Some((p.clone(), version))
        });
        match same_name {
            Some((p, pinned_version)) => {
                replaced.push(Replacement {
                    config: String::new(),
                    package: p.name.clone(),
                    pinned_version,
                    pinned_url: crate::http::redact(u),
                    version: p.version.clone(),
                    url: crate::http::redact(&p.url),
                });
                packages.push(p);
            }
            None => packages.push(PackageRef {
                name: driverkit::deb_name_version(file)
                    .map_or(file, |(n, _)| n)
                    .to_owned(),
                version: String::new(),
                url: u.clone(),
                size: 0,
                sha256: String::new(),
            }),
        }
    }
    packages.dedup_by(|a, b| a.url == b.url);
    // Unauthenticated: what no signed listing gives a digest for.
    let unauthenticated_of = |ps: &[PackageRef]| -> Vec<String> {
        ps.iter()
            .filter(|p| p.sha256.is_empty())
            .map(|p| crate::http::redact(&p.url))
            .collect()
    };
    let unauthenticated = unauthenticated_of(&packages);
    if let Some(k) = &listed {
        if k.kernel_version != c.kernel_version() {
            disagreements.push(format!(
                "kernelversion: the config's `{}`, the listing of `{}` says `{}` (the config's is used)",
                c.kernel_version(),
                k.target,
                k.kernel_version
            ));
        }
        let needed = match driver {
            Driver::Ebpf => crate::repo::Lister::for_build(k),
            Driver::Kmod => k.clone(),
        };
        // What an unauthenticated URL holds is not known before it is unpacked: with one, the
        // unpacked tree says what is missing.
        let missing: Vec<String> = needed
            .packages
            .iter()
            .filter(|p| unauthenticated.is_empty() && !packages.iter().any(|q| q.name == p.name))
            .map(|p| format!("`{}` ({})", p.name, crate::http::redact(&p.url)))
            .collect();
        if !missing.is_empty() {
            return Err(Error::Usage(format!(
                "kernel `{}`: the config's kernelurls lack {}, which the signed listing of `{}` says this kernel needs",
                c.kernelrelease,
                missing.join(", "),
                k.target
            )));
        }
    }
    // A probe never reads kbuild's tools: leave them out, as a listed kernel would.
    let mut record = KernelRecord {
        target: catalog.clone().unwrap_or_else(|| c.target.clone()),
        target_id,
        release,
        kernel_version: c.kernel_version().to_owned(),
        arch,
        origin: "driverkit config".into(),
        packages,
        unsigned_metadata: !unauthenticated.is_empty(),
    };
    if driver == Driver::Ebpf {
        record = crate::repo::Lister::for_build(&record);
    }
    // What is fetched: a package the probe does not read is not fetched, so not said.
    let unauthenticated = unauthenticated_of(&record.packages);
    replaced.retain(|x: &Replacement| record.packages.iter().any(|p| p.name == x.package));
    record.unsigned_metadata = !unauthenticated.is_empty();
    if require_verified && !unauthenticated.is_empty() {
        return Err(Error::Usage(format!(
            "kernel `{}`: no signed metadata gives a digest for {} (--require-verified)",
            c.kernelrelease,
            unauthenticated.join(", ")
        )));
    }
    Ok(Resolved {
        record,
        unauthenticated,
        disagreements,
        replaced,
        moved,
    })
}

/// Downloads a resolved kernel's packages (checked against the listing's digests where it
/// gives them). A URL that does not exist any more, whose file the signed listing serves at
/// another URL, is taken from there, said in one line naming both.
pub fn fetch(
    s: &Session,
    listings: &Listings,
    r: &mut Resolved,
    rep: &dyn Reporter,
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut gone = Vec::new();
    let base = KernelRecord {
        packages: Vec::new(),
        ..r.record.clone()
    };
    for p in &mut r.record.packages {
        let one = KernelRecord {
            packages: vec![p.clone()],
            ..base.clone()
        };
        match s.lister().fetch(&one) {
            Ok(mut f) => files.append(&mut f),
            Err(e @ crate::repo::Error::Unavailable { .. }) if !p.sha256.is_empty() => {
                let listed = listings
                    .get(s, &base.target, base.arch)?
                    .into_iter()
                    .flat_map(|k| k.packages)
                    .find(|q| q.sha256 == p.sha256 && q.url != p.url);
                let Some(q) = listed else {
                    return Err(e.into());
                };
                let line = format!(
                    "url: driverkit's `{}` is gone ({e}); the signed listing's `{}` is used",
                    crate::http::redact(&p.url),
                    crate::http::redact(&q.url)
                );
                rep.warn(&line);
                gone.push(line);
                p.url = q.url.clone();
                let one = KernelRecord {
                    packages: vec![p.clone()],
                    ..base.clone()
                };
                files.append(&mut s.lister().fetch(&one)?);
            }
            Err(e) => return Err(e.into()),
        }
    }
    r.disagreements.append(&mut gone);
    Ok(files)
}

/// `kernelconfigdata` against the headers' own `.config`: the same, or a line saying how they
/// differ (probeforge builds against the headers' configuration; it has no vanilla target
/// whose tree the config would configure).
pub fn check_kernel_config(
    given: &[u8],
    headers: &[PathBuf],
    release: &str,
    scratch: Option<&Path>,
) -> Result<Option<String>> {
    let staged =
        crate::extract::Staged::new(headers, crate::extract::Selection::ProbeBuild, scratch)?;
    let tree = crate::kernel::KernelTree::find(staged.root(), Some(release))?;
    let path = tree.objtree.join(".config");
    let own = std::fs::read(&path).map_err(Error::read(&path))?;
    if own == given {
        return Ok(None);
    }
    // The options set differently (or only in one): named, a few.
    let set = |b: &[u8]| -> BTreeMap<String, String> {
        String::from_utf8_lossy(b)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let (mine, theirs) = (set(&own), set(given));
    let differ = mine
        .iter()
        .filter(|(k, v)| theirs.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(theirs.keys().filter(|k| !mine.contains_key(*k)).cloned())
        .take(3)
        .collect::<Vec<_>>();
    Ok(Some(format!(
        "kernelconfigdata: the config's `.config` differs from the headers' ({}...): the headers' is what the build uses",
        differ.join(", ")
    )))
}

/// A grid config's driver version: its `driverversion`, else its folder's
/// (`<driver-version>/<arch>/<file>.yaml`, as Falco's grid leaves the key out); a
/// `driverversion` its folder contradicts is refused, naming both.
pub fn version_in_grid(c: &Config, path: &Path) -> Result<Option<String>> {
    let folder = driverkit::grid_version(path);
    match (&c.driverversion, folder) {
        (Some(v), Some(f)) if *v != f => Err(Error::Usage(format!(
            "`{}`: driverversion `{v}` contradicts its folder's `{f}`",
            path.display()
        ))),
        (Some(v), _) => Ok(Some(v.clone())),
        (None, f) => Ok(f),
    }
}

/// An output path that names a driver version (`output/8.0.0+driver/x86_64/...`) names the
/// one built: another is refused, naming both (a 9.1.0 probe is never written under 8.0.0).
fn outputs_of_version(c: &Config, version: &str) -> Result<()> {
    for p in [&c.output.probe, &c.output.module].into_iter().flatten() {
        let named = Path::new(p)
            .components()
            .filter_map(|c| c.as_os_str().to_str())
            .find(|c| c.ends_with("+driver"));
        if let Some(n) = named.filter(|n| *n != version) {
            return Err(Error::Usage(format!(
                "output `{p}` names driver version `{n}`, the build is of `{version}`"
            )));
        }
    }
    Ok(())
}

/// The config a `build` means: the file's keys, with driverkit's flags over them. `--target`
/// is driverkit's target here (a Falco target id), not a catalog target.
pub fn config_of(o: &super::build::Options, rep: &dyn Reporter) -> Result<Config> {
    let d = &o.driverkit;
    let mut c = match &d.config {
        Some(p) => {
            super::need_files("driverkit config", [p])?;
            let mut c = read(p, rep)?;
            c.driverversion = version_in_grid(&c, p)?;
            c
        }
        None => Config::default(),
    };
    if !d.kernelurls.is_empty() {
        c.kernelurls = d.kernelurls.clone();
    }
    if let Some(r) = &o.kernel_release {
        c.kernelrelease = r.clone();
    }
    if let Some(v) = &o.kernel_version {
        c.kernelversion = v.clone();
    }
    if let Some(t) = &o.target {
        c.target = t.clone();
    }
    if let Some(a) = o.arch {
        c.architecture = Some(driverkit::arch_name(a).to_owned());
    }
    if let Some(v) = &o.driver_version {
        c.driverversion = Some(v.clone());
    }
    if let Some(p) = &d.output_probe {
        c.output.probe = Some(p.display().to_string());
    }
    if let Some(p) = &d.output_module {
        c.output.module = Some(p.display().to_string());
    }
    if let Some(n) = &o.module_name {
        c.moduledrivername = Some(n.clone());
    }
    if let Some(v) = &c.driverversion {
        outputs_of_version(&c, v)?;
    }
    for (key, v) in [("kernelrelease", &c.kernelrelease), ("target", &c.target)] {
        if v.is_empty() {
            return Err(Error::Usage(format!(
                "a driverkit build needs `{key}` (in the config, or --{key})"
            )));
        }
    }
    Ok(c)
}

/// `probeforge build -c FILE.yaml` (or driverkit's flags): every driver the config's outputs
/// name, each written exactly at its output path (none named: the probe, into `o.output`).
pub fn build(
    o: &super::build::Options,
    net: &crate::session::Options,
    tc: &crate::toolchain::Toolchain,
    rep: &dyn Reporter,
) -> Result<Vec<super::build::Built>> {
    if !o.driverkit.is_config() {
        return exact_outputs(o, net, tc, rep);
    }
    let c = config_of(o, rep)?;
    let s = Session::open(net)?;
    known_target(&s, &c.target)?;
    let listings = Listings::default();
    let mut wanted: Vec<(Driver, Option<PathBuf>)> = Vec::new();
    if let Some(p) = &c.output.probe {
        wanted.push((Driver::Ebpf, Some(PathBuf::from(p))));
    }
    if let Some(p) = &c.output.module {
        wanted.push((Driver::Kmod, Some(PathBuf::from(p))));
    }
    if wanted.is_empty() {
        wanted.push((o.driver, None));
    }
    let given_config = c.kernel_config().map_err(|e| Error::Usage(e.to_string()))?;
    let mut config_checked = false;
    let mut out = Vec::new();
    for (driver, dest) in wanted {
        let mut r = resolve(&s, &listings, &c, driver, o.driverkit.require_verified)?;
        if driver == Driver::Kmod {
            if let (Some(host), true) = (Arch::host(), s.catalog.target(&r.record.target).is_ok()) {
                // kbuild's own programs run here: the host's build of them, from the listing.
                r.record = s.lister().with_host_kbuild(&r.record, host)?;
            }
        }
        for d in &r.disagreements {
            rep.warn(d);
        }
        for m in &r.moved {
            rep.note(m);
        }
        let config_path = o
            .driverkit
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for x in &mut r.replaced {
            x.config = config_path.clone();
            rep.warn(&format!("kernel `{}`: {x}", c.kernelrelease));
        }
        if !r.unauthenticated.is_empty() {
            rep.warn(&format!(
                "kernel `{}`: no signed metadata the catalog knows gives a digest for {}: fetched unauthenticated (recorded in the provenance; --require-verified refuses it)",
                c.kernelrelease,
                r.unauthenticated.join(", ")
            ));
        }
        rep.phase(&c.kernelrelease, crate::report::Phase::Download);
        let files = fetch(&s, &listings, &mut r, rep);
        rep.done(&c.kernelrelease);
        let files = files?;
        if let (Some(given), false, false) = (&given_config, config_checked, r.record.from_source())
        {
            config_checked = true;
            match check_kernel_config(given, &files, &c.kernelrelease, o.scratch.as_deref())? {
                Some(line) => rep.warn(&line),
                None => rep.note("kernelconfigdata: the same `.config` as the headers'"),
            }
        }
        let staging = match &dest {
            Some(d) => {
                let dir = d.parent().filter(|p| !p.as_os_str().is_empty());
                let dir = dir.unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir).map_err(Error::write(dir))?;
                Some(
                    tempfile::Builder::new()
                        .prefix(".probeforge-")
                        .tempdir_in(dir)
                        .map_err(Error::write(dir))?,
                )
            }
            None => None,
        };
        // A kernel built from source: its tarball and `.config`.
        let (source, config) = r.record.source_files(&files);
        let (headers, kernel_source, kernel_config, release, file_release) =
            match r.record.from_source() {
                true => (
                    Vec::new(),
                    source,
                    config,
                    r.record.release.clone(),
                    Some(r.record.file_release()).filter(|f| *f != r.record.release),
                ),
                // The headers' own `uname -r` (the config may name the kernel otherwise).
                false => (files, None, None, r.record.release.clone(), None),
            };
        let one = super::build::Options {
            headers,
            kernel_source,
            kernel_config,
            file_release,
            target: None,
            from: None,
            kernel: c.kernelrelease.clone(),
            kernel_release: Some(release),
            target_id: Some(r.record.target_id.clone()),
            kernel_version: Some(r.record.kernel_version.clone()),
            arch: Some(r.record.arch),
            driver_version: c.driverversion.clone(),
            output: staging
                .as_ref()
                .map_or(o.output.clone(), |t| t.path().to_owned()),
            driver,
            module_name: c.module_name().map(str::to_owned),
            driverkit: Request {
                unauthenticated: r.unauthenticated.clone(),
                ..Request::default()
            },
            ..o.clone()
        };
        let mut built = super::build::run(&one, net, tc, rep)?;
        if let Some(dest) = &dest {
            place(&mut built, dest)?;
        }
        built.replaced = r.replaced;
        out.push(built);
    }
    Ok(out)
}

/// A build of `--target`/`--headers`/`--from` with `--output-probe`/`--output-module`: the
/// one driver each names, written exactly there.
fn exact_outputs(
    o: &super::build::Options,
    net: &crate::session::Options,
    tc: &crate::toolchain::Toolchain,
    rep: &dyn Reporter,
) -> Result<Vec<super::build::Built>> {
    let d = &o.driverkit;
    let mut wanted = Vec::new();
    if let Some(p) = &d.output_probe {
        wanted.push((Driver::Ebpf, p.clone()));
    }
    if let Some(p) = &d.output_module {
        wanted.push((Driver::Kmod, p.clone()));
    }
    if wanted.is_empty() {
        return Ok(vec![super::build::run(o, net, tc, rep)?]);
    }
    let mut out = Vec::new();
    for (driver, dest) in wanted {
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(Error::write(dir))?;
        let staging = tempfile::Builder::new()
            .prefix(".probeforge-")
            .tempdir_in(dir)
            .map_err(Error::write(dir))?;
        let one = super::build::Options {
            output: staging.path().to_owned(),
            driver,
            ..o.clone()
        };
        let mut built = super::build::run(&one, net, tc, rep)?;
        place(&mut built, &dest)?;
        out.push(built);
    }
    Ok(out)
}

/// Moves what a build wrote into its staging directory to the exact path asked for.
pub fn place(built: &mut super::build::Built, dest: &Path) -> Result<()> {
    let from = match &mut built.product {
        super::build::Product::Probe(p) => &mut p.path,
        super::build::Product::Module(m) => &mut m.path,
    };
    std::fs::rename(&*from, dest).map_err(Error::write(dest))?;
    *from = dest.to_owned();
    Ok(())
}

/// The config of a listed kernel for one driver version, as the public grid writes it: its
/// whole package set from the signed listing (headers, `-common`, kbuild) as `kernelurls`,
/// both outputs under `output/<driver-version>/<arch>/` with Falco's file names.
pub fn config_for(k: &KernelRecord, driver_version: &str) -> Config {
    let mut c = Config {
        kernelversion: k.kernel_version.clone(),
        kernelrelease: k.release.clone(),
        target: k.target_id.clone(),
        architecture: Some(driverkit::arch_name(k.arch).to_owned()),
        driverversion: Some(driver_version.to_owned()),
        kernelurls: k.packages.iter().map(|p| p.url.clone()).collect(),
        ..Config::default()
    };
    // The outputs carry the name Falco's loader asks for (on Debian: package version and
    // flavour); `kernelrelease` stays the kernel's `uname -r`, which selects its headers.
    let named = Config {
        kernelrelease: k.file_release(),
        ..c.clone()
    };
    // A kernel built from its source: its `.config` inline, as kernel-crawler writes it, and
    // no URLs (the source is kernel.org's tarball of the config's version); Flatcar's
    // `kernelrelease` is its release, as driverkit reads it.
    if k.from_source() {
        use base64::Engine;
        c.kernelurls = Vec::new();
        c.kernelconfigdata = k
            .packages
            .iter()
            .find(|p| p.name == crate::repo::kernel_org::CONFIG)
            .and_then(|p| crate::repo::kernel_org::data_url_bytes(&p.url))
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b));
        if k.target_id == "flatcar" {
            c.kernelrelease = k.file_release();
        }
    }
    c.output.probe = Some(driverkit::grid_output(&named, driver_version, k.arch, "o"));
    c.output.module = Some(driverkit::grid_output(&named, driver_version, k.arch, "ko"));
    c
}

/// Writes a grid tree of configs (`DIR/<driver-version>/<arch>/<target>_<release>_<version>.yaml`)
/// for every kernel and driver version; returns the files written, sorted.
pub fn write_grid(
    kernels: &[KernelRecord],
    driver_versions: &[String],
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for v in driver_versions {
        // A vanilla kernel has no `.config` of its own: no config of it can build.
        for k in kernels
            .iter()
            .filter(|k| !k.from_source() || !k.config_version().is_empty())
        {
            let c = config_for(k, v);
            let path = dir.join(driverkit::grid_path(&c, v, k.arch));
            let parent = path.parent().expect("a grid path has folders");
            std::fs::create_dir_all(parent).map_err(Error::write(parent))?;
            crate::base::write_atomic(&path, &driverkit::to_yaml(&c))
                .map_err(Error::write(&path))?;
            written.push(path);
        }
    }
    written.sort();
    written.dedup();
    Ok(written)
}

/// One config of a grid, read and resolved: its kernel, the driver version its folder (or key)
/// says, the drivers its outputs name.
#[derive(Debug)]
pub struct GridConfig {
    pub path: PathBuf,
    pub config: Config,
    pub version: String,
    pub drivers: Vec<Driver>,
    pub record: KernelRecord,
}

/// A grid read: the configs to build, the items already decided (failed or skipped, each
/// naming why), and the pinned packages the listing replaced.
#[derive(Debug, Default)]
pub struct GridRead {
    pub configs: Vec<GridConfig>,
    pub done: Vec<crate::farm::KernelResult>,
    pub replaced: Vec<Replacement>,
}

/// A grid item that failed (or was skipped) before any build, naming its config.
fn grid_item(
    c: Option<&Config>,
    path: &Path,
    d: Driver,
    error: Option<String>,
) -> crate::farm::KernelResult {
    use crate::farm::{KernelResult, Status};
    KernelResult {
        driver: d,
        target_id: c.map(|c| c.target.clone()).unwrap_or_default(),
        release: c
            .map(|c| c.kernelrelease.clone())
            .unwrap_or_else(|| path.display().to_string()),
        arch: c.and_then(|c| c.arch().ok()).unwrap_or(Arch::X86_64),
        file: path.display().to_string(),
        status: match error {
            Some(_) => Status::Failed,
            None => Status::Skipped,
        },
        sha256: None,
        error,
        seconds: 0.0,
        clang_llc_cpu: 0.0,
        verified: None,
    }
}

/// Reads and resolves every config of a grid tree (`DIR/<driver-version>/<arch>/*.yaml`),
/// keeping `o.arch`, `o.only` (a config's `kernelrelease` or its kernel's `uname -r`) and
/// `o.drivers` (of the outputs a config names). A config that cannot be read, contradicts its
/// folder, or cannot be resolved is a failed item naming why; the others go on.
pub fn read_grid(
    o: &super::build_all::Options,
    s: &Session,
    listings: &Listings,
    rep: &dyn Reporter,
) -> Result<GridRead> {
    let dir = o.driverkit_configs.as_ref().expect("called for a grid");
    super::need_files("driverkit config tree", [dir])?;
    let files = driverkit::walk(dir).map_err(Error::read(dir))?;
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "no driverkit configs under `{}` (laid out as `<driver-version>/<arch>/*.yaml`)",
            dir.display()
        )));
    }
    let only = o.only.as_deref().map(super::only_regex).transpose()?;
    let mut out = GridRead::default();
    for (vdir, adir, path) in files {
        let c = match read(&path, rep) {
            Ok(c) => c,
            Err(e) => {
                let e = Some(super::chain(&e));
                out.done.push(grid_item(None, &path, Driver::Ebpf, e));
                continue;
            }
        };
        let mut drivers = Vec::new();
        if c.output.probe.is_some() {
            drivers.push(Driver::Ebpf);
        }
        if c.output.module.is_some() {
            drivers.push(Driver::Kmod);
        }
        match (drivers.is_empty(), o.drivers.is_empty()) {
            (true, true) => drivers = vec![Driver::Ebpf],
            (true, false) => drivers = o.drivers.clone(),
            // --driver keeps those of the config's outputs it names.
            (false, false) => drivers.retain(|d| o.drivers.contains(d)),
            (false, true) => {}
        }
        drivers.sort();
        drivers.dedup();
        if drivers.is_empty() {
            continue;
        }
        let fail = |out: &mut GridRead, e: String| {
            for &d in &drivers {
                out.done
                    .push(grid_item(Some(&c), &path, d, Some(e.clone())));
            }
        };
        // The folder's driver version when the config has none; a contradiction is refused.
        let version = match version_in_grid(&c, &path) {
            Ok(v) => v.unwrap_or_else(|| vdir.clone()),
            Err(e) => {
                fail(&mut out, e.to_string());
                continue;
            }
        };
        if let Err(e) = outputs_of_version(&c, &version) {
            fail(&mut out, format!("`{}`: {e}", path.display()));
            continue;
        }
        let arch = match c.arch() {
            Ok(a) => a,
            Err(e) => {
                fail(&mut out, e.to_string());
                continue;
            }
        };
        if Arch::parse(&adir) != Some(arch) {
            rep.warn(&format!(
                "`{}`: architecture: the config's `{}`, its folder's `{adir}` (the config's is used)",
                path.display(),
                driverkit::arch_name(arch)
            ));
        }
        if o.arch.is_some_and(|a| a != arch) {
            continue;
        }
        if let Some(root) = &o.output_root {
            let outs = [&c.output.probe, &c.output.module];
            let all_there = outs
                .iter()
                .filter_map(|p| p.as_ref())
                .all(|p| root.join(p).is_file());
            if all_there && outs.iter().any(|p| p.is_some()) {
                for &d in &drivers {
                    out.done.push(grid_item(Some(&c), &path, d, None));
                }
                continue;
            }
        }
        let widest = match drivers.contains(&Driver::Kmod) {
            true => Driver::Kmod,
            false => Driver::Ebpf,
        };
        let r = match resolve(s, listings, &c, widest, o.require_verified) {
            Ok(r) => r,
            Err(e) => {
                if only.as_ref().is_none_or(|re| re.is_match(&c.kernelrelease)) {
                    fail(&mut out, super::chain(&e));
                }
                continue;
            }
        };
        if only
            .as_ref()
            .is_some_and(|re| !re.is_match(&c.kernelrelease) && !re.is_match(&r.record.release))
        {
            continue;
        }
        for d in &r.disagreements {
            rep.warn(&format!("`{}`: {d}", path.display()));
        }
        for m in &r.moved {
            rep.note(&format!("`{}`: {m}", path.display()));
        }
        for x in r.replaced {
            rep.warn(&format!("`{}`: {x}", path.display()));
            out.replaced.push(Replacement {
                config: path.display().to_string(),
                ..x
            });
        }
        if !r.unauthenticated.is_empty() {
            rep.warn(&format!(
                "`{}`: fetched unauthenticated (no signed metadata gives a digest): {}",
                path.display(),
                r.unauthenticated.join(", ")
            ));
        }
        // Into a repository, the file is published under Falco's name for the kernel: it must
        // be the name the config's output gives, or the config is refused naming both.
        if o.output_root.is_none() {
            let k = &r.record;
            let named = drivers.iter().find_map(|&d| {
                let want = d.file_name(&k.target_id, &k.file_release(), &k.kernel_version);
                let given = match d {
                    Driver::Ebpf => &c.output.probe,
                    Driver::Kmod => &c.output.module,
                };
                let given = given.as_deref().map(file_name)?;
                (given != want).then(|| format!(
                    "`{}`: the output names `{given}`, the repository would publish `{want}` (give --output-root for the config's own names)",
                    path.display()
                ))
            });
            if let Some(e) = named {
                fail(&mut out, e);
                continue;
            }
        }
        out.configs.push(GridConfig {
            path,
            config: c,
            version,
            drivers,
            record: r.record,
        });
    }
    Ok(out)
}

/// `build-all --driverkit-configs DIR --plan`: what each config would build, resolved against
/// the signed listings (kernel, packages, replacements), building nothing.
#[derive(Debug, serde::Serialize)]
pub struct GridPlan {
    pub configs: Vec<GridPlanItem>,
    /// Configs refused before any build, each naming why.
    pub refused: Vec<crate::farm::KernelResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replacement>,
}

#[derive(Debug, serde::Serialize)]
pub struct GridPlanItem {
    pub config: String,
    pub driver_version: String,
    pub drivers: Vec<Driver>,
    /// The kernel's `uname -r`, and the release in Falco's file name.
    pub release: String,
    pub file_release: String,
    pub arch: Arch,
    pub outputs: Vec<String>,
    /// The packages fetched: the signed listing's URLs and digests.
    pub packages: Vec<PackageRef>,
}

impl GridPlan {
    pub fn ok(&self) -> bool {
        self.refused.is_empty()
    }
}

impl std::fmt::Display for GridPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for i in &self.configs {
            let drivers: Vec<String> = i.drivers.iter().map(|d| d.to_string()).collect();
            writeln!(
                f,
                "{} {} {} ({}) {}: {}",
                i.driver_version,
                i.arch,
                i.release,
                i.file_release,
                drivers.join(","),
                i.outputs.join(", ")
            )?;
        }
        for r in &self.replaced {
            writeln!(f, "replaced: `{}`: {r}", r.config)?;
        }
        for r in &self.refused {
            writeln!(
                f,
                "refused: {}: {}",
                r.file,
                r.error.as_deref().unwrap_or_default()
            )?;
        }
        write!(
            f,
            "{} to build, {} refused",
            crate::report::count(self.configs.len(), "config"),
            self.refused.len()
        )
    }
}

/// The plan of a grid: every config read and resolved, nothing downloaded but the listings.
pub fn grid_plan(
    o: &super::build_all::Options,
    net: &crate::session::Options,
    rep: &dyn Reporter,
) -> Result<GridPlan> {
    let s = Session::open(net)?;
    let read = read_grid(o, &s, &Listings::default(), rep)?;
    let configs = read
        .configs
        .into_iter()
        .map(|g| GridPlanItem {
            config: g.path.display().to_string(),
            outputs: g
                .drivers
                .iter()
                .filter_map(|d| match d {
                    Driver::Ebpf => g.config.output.probe.clone(),
                    Driver::Kmod => g.config.output.module.clone(),
                })
                .collect(),
            driver_version: g.version,
            drivers: g.drivers,
            release: g.record.release.clone(),
            file_release: g.record.file_release(),
            arch: g.record.arch,
            packages: g.record.packages,
        })
        .collect();
    Ok(GridPlan {
        configs,
        refused: read
            .done
            .into_iter()
            .filter(|r| r.error.is_some())
            .collect(),
        replaced: read.replaced,
    })
}

/// `build-all --driverkit-configs DIR`: every config of a grid tree, as one batch per driver
/// version (and set of drivers its outputs name), with `build-all`'s skipping, reporting and
/// outcome. Into `o.repo` (Falco's layout), or with `o.output_root`, each config's own output
/// paths under that root (a config whose outputs are all there is skipped). A config that
/// cannot be read or resolved, and a batch that cannot start (its driver's source not to be
/// had), are failed items naming why; the others go on.
pub fn grid(
    o: &super::build_all::Options,
    net: &crate::session::Options,
    tc: &crate::toolchain::Toolchain,
    rep: &dyn crate::farm::Reporter,
) -> Result<super::build_all::Outcome> {
    use crate::farm::Status;
    if o.repo.is_empty() && o.output_root.is_none() {
        return Err(Error::Usage(
            "give --repo DIR, or --output-root ROOT for the configs' own output paths".into(),
        ));
    }
    let started = std::time::Instant::now();
    let s = Session::open(net)?;
    let listings = Listings::default();
    let GridRead {
        configs,
        mut done,
        replaced,
    } = read_grid(o, &s, &listings, rep)?;
    type Group = Vec<(KernelRecord, Config, PathBuf)>;
    let mut groups: BTreeMap<(String, Vec<Driver>), Group> = BTreeMap::new();
    for g in configs {
        groups
            .entry((g.version, g.drivers))
            .or_default()
            .push((g.record, g.config, g.path));
    }
    let versions: std::collections::BTreeSet<&String> = groups.keys().map(|(v, _)| v).collect();
    if o.driver_source.is_some() && versions.len() > 1 {
        return Err(Error::Usage(format!(
            "--driver-source is one driver, the grid has {} versions ({}): leave it out (each version's source is downloaded)",
            versions.len(),
            versions.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut list_failed = false;
    let mut versions_done = Vec::new();
    let mut published_to = o.output_root.clone().unwrap_or_default();
    for ((version, drivers), members) in groups {
        let staging = match &o.output_root {
            Some(root) => {
                std::fs::create_dir_all(root).map_err(Error::write(root))?;
                Some(
                    tempfile::Builder::new()
                        .prefix(".probeforge-grid-")
                        .tempdir_in(root)
                        .map_err(Error::write(root))?,
                )
            }
            None => None,
        };
        let sub = super::build_all::Options {
            targets: Vec::new(),
            from: None,
            only: None,
            repo: match &staging {
                Some(t) => t.path().display().to_string(),
                None => o.repo.clone(),
            },
            driver_version: Some(version.clone()),
            drivers: drivers.clone(),
            kernels: members.iter().map(|(k, _, _)| k.clone()).collect(),
            driverkit_configs: None,
            output_root: None,
            ..o.clone()
        };
        let out = match super::build_all::run(&sub, net, tc, rep) {
            Ok(out) => out,
            Err(e) => {
                // This batch could not start (e.g. its driver's source is not to be had): each
                // of its configs failed, naming why; the other batches go on.
                let why = format!(
                    "the batch of `{version}` did not start: {}",
                    super::chain(&e)
                );
                rep.warn(&why);
                for (_, c, path) in &members {
                    for &d in &drivers {
                        done.push(grid_item(Some(c), path, d, Some(why.clone())));
                    }
                }
                continue;
            }
        };
        list_failed |= out.list_failed;
        if staging.is_none() {
            published_to = out.published_to.clone();
        }
        versions_done.push(out.driver_version.clone());
        for mut r in out.kernels {
            if let (Some(root), true) = (
                &o.output_root,
                matches!(r.status, Status::Built | Status::Cached | Status::Unchanged),
            ) {
                // The config's own output path for this item.
                let dest = members.iter().find_map(|(k, c, _)| {
                    let same = k.release == r.release && k.arch == r.arch;
                    let p = match r.driver {
                        Driver::Ebpf => &c.output.probe,
                        Driver::Kmod => &c.output.module,
                    };
                    same.then(|| p.clone()).flatten()
                });
                let from = out
                    .published_to
                    .join(&out.driver_version)
                    .join(r.arch.uname_m())
                    .join(&r.file);
                if let Some(dest) = dest {
                    let dest = root.join(dest);
                    let copied = std::fs::read(&from)
                        .map_err(Error::read(&from))
                        .and_then(|b| {
                            if let Some(parent) = dest.parent() {
                                std::fs::create_dir_all(parent).map_err(Error::write(parent))?;
                            }
                            crate::base::write_atomic(&dest, &b).map_err(Error::write(&dest))
                        });
                    match copied {
                        Ok(()) => r.file = dest.display().to_string(),
                        Err(e) => {
                            r.status = Status::Failed;
                            r.error = Some(super::chain(&e));
                        }
                    }
                }
            }
            done.push(r);
        }
    }
    done.sort_by(|a, b| {
        (a.arch, &a.release, a.driver, &a.file).cmp(&(b.arch, &b.release, b.driver, &b.file))
    });
    let count = |st: Status| done.iter().filter(|r| r.status == st).count();
    Ok(super::build_all::Outcome {
        driver_version: versions_done.join(","),
        repo: o.repo.clone(),
        seconds: started.elapsed().as_secs_f64(),
        built: count(Status::Built),
        cached: count(Status::Cached),
        unchanged: count(Status::Unchanged),
        skipped: count(Status::Skipped),
        unavailable: count(Status::Unavailable),
        failed: count(Status::Failed),
        shard: o.shard.map(|s| s.to_string()),
        kernels: done,
        list_failed,
        published_to,
        site: None,
        replaced,
    })
}
