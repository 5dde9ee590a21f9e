//! The kernel's compiler found in its own distribution's signed indexes.
//!
//! A kernel's headers name the compiler that built it (`CONFIG_CC_VERSION_TEXT`, e.g.
//! `x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0`). The parentheses hold the
//! distribution's package version of that gcc, so the archive that shipped the kernel also
//! says which package it is: `gcc-<major>-<triplet>` (split packages: Debian 13, Ubuntu 24.04)
//! or `gcc-<major>` at exactly that version. Its dependency closure (cpp, binutils, the
//! libraries they load, and the C library whose loader starts them) is read from the same
//! indexes, every package later fetched by the sha256 the signed index lists, and the whole is
//! a [`GccManifest`] like the ones `toolchain/` pins: one mechanism, and adding a distribution
//! is adding its catalog target.
//!
//! When the archive no longer serves that exact build, the newest build of the same major
//! version from the same indexes is taken, said in one line and recorded (`nearest`), unless
//! the caller requires the exact one. Never a compiler of another major version, never the
//! host's under another name.
//!
//! Resolution is pure over the index ([`resolve`]); [`IndexCompilers`] reads the indexes once
//! per target and arch and resolves each compiler text once per process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::gcc::{self, CompilerSource, GccManifest, GccPackage, KernelCompiler};
use super::Error;
use crate::kernel::{Arch, KernelTree};
use crate::repo::apt::{self, Package};

/// What `gcc --version` says first, in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionText {
    /// `x86_64-linux-gnu-gcc-13`, `gcc-12`, `gcc`.
    pub program: String,
    /// `Ubuntu`, `Debian`.
    pub vendor: String,
    /// The distribution's package version: `13.3.0-6ubuntu2~24.04.1`.
    pub package_version: String,
    /// gcc's own version: `13.3.0`.
    pub upstream: String,
    /// 13.
    pub major: u32,
}

impl VersionText {
    /// Parses `<program> (<vendor> <package version>) <version>[ <date>]`; `None` for any other
    /// shape (clang, a compiler built without a vendor string).
    pub fn parse(text: &str) -> Option<VersionText> {
        let (program, rest) = text.trim().split_once(" (")?;
        let (inside, after) = rest.split_once(") ")?;
        let (vendor, package_version) = inside.split_once(' ')?;
        let upstream = after.split_whitespace().next()?.to_owned();
        if !program.ends_with("gcc") && !program.contains("gcc-") {
            return None;
        }
        // `gcc-13`, `x86_64-linux-gnu-gcc-13`: the name's own number; a plain `gcc` is the
        // release's default, whose major is gcc's own version's first number.
        let major = program
            .rsplit_once("gcc-")
            .map(|(_, n)| n)
            .unwrap_or(&upstream)
            .split('.')
            .next()?
            .parse()
            .ok()?;
        Some(VersionText {
            program: program.to_owned(),
            vendor: vendor.to_owned(),
            package_version: package_version.to_owned(),
            upstream,
            major,
        })
    }
}

/// A compiler resolved from an index.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub manifest: GccManifest,
    /// The package that ships the compiler driver, and its version.
    pub driver_package: String,
    pub version: String,
    /// The kernel's exact build (false: the nearest of the same major version).
    pub exact: bool,
}

/// Packages a compiler never needs to run, though its libraries name them (configuration and
/// package-management tools).
const NEVER: &[&str] = &[
    "debconf",
    "debconf-2.0",
    "perl-base",
    "dpkg",
    "install-info",
    "libc-bin",
];

/// Runtime libraries of the kernel's own kbuild tools (`fixdep`, `modpost`, `objtool`,
/// `sign-file`, shipped in the header packages and built on the kernel's release), so they
/// start through the same loader as the compiler: the first name of each group the index has.
const KBUILD_TOOL_LIBS: &[&[&str]] = &[
    &["libelf1t64", "libelf1"],
    &["libssl3t64", "libssl3", "libssl1.1"],
    &["zlib1g"],
    &["libc6"],
];

/// Programs kbuild runs for a kernel of this configuration besides the compiler: `pahole`
/// where modules get BTF (`CONFIG_DEBUG_INFO_BTF_MODULES`; Debian and Ubuntu 24.04 name its
/// package `pahole`, Ubuntu 22.04 `dwarves`).
pub fn kbuild_tools(tree: &KernelTree) -> Vec<&'static [&'static str]> {
    let mut v: Vec<&'static [&'static str]> = Vec::new();
    if tree.config.builtin("DEBUG_INFO_BTF_MODULES") {
        v.push(&["pahole", "dwarves"]);
    }
    v
}

/// The kernel's compiler and its closure from `index` (each package with the catalog mirror
/// it is under). `host` is where it will run; `kernel` what it compiles for. `target` names
/// the index for messages and records.
pub fn resolve(
    want: &KernelCompiler,
    kernel: Arch,
    host: Arch,
    index: &[(String, Package)],
    exact_only: bool,
    target: &str,
    tools: &[&[&str]],
) -> Result<Resolved, Error> {
    let text = VersionText::parse(&want.text).ok_or_else(|| Error::NotInIndex {
        kernel: want.text.clone(),
        target: target.to_owned(),
        why: "the text names no gcc and package version".into(),
    })?;
    let host_arch = host.debian();
    let on_host = |p: &Package| p.arch == host_arch || p.arch == "all";
    let triplet = kernel.triple().replace('_', "-");
    // The package that ships `<triplet>-gcc-<major>`: split out on Debian 13 and Ubuntu 24.04,
    // inside `gcc-<major>` before; a cross compiler is always `gcc-<major>-<triplet>`.
    let names = [
        format!("gcc-{}-{triplet}", text.major),
        format!("gcc-{}", text.major),
    ];
    let cross = Some(kernel) != Some(host);
    let candidates: Vec<&(String, Package)> = names
        .iter()
        .take(if cross { 1 } else { 2 })
        .flat_map(|n| {
            index
                .iter()
                .filter(move |(_, p)| &p.name == n && on_host(p))
        })
        .collect();
    // A cross compiler's package version adds `cross<N>` to the gcc build it is made from.
    let same_build = |v: &str| {
        v == text.package_version
            || v.strip_prefix(text.package_version.as_str())
                .and_then(|r| r.strip_prefix("cross"))
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
    };
    let newest = |it: &mut dyn Iterator<Item = &&(String, Package)>| {
        it.max_by(|a, b| apt::compare_versions(&a.1.version, &b.1.version))
            .map(|x| (*x).clone())
    };
    // The exact build under the first name that has it (the split package, whose name says
    // what it ships), else the nearest.
    let exact_build = names.iter().find_map(|n| {
        newest(
            &mut candidates
                .iter()
                .filter(|(_, p)| &p.name == n && same_build(&p.version)),
        )
    });
    let (exact, driver) = match exact_build {
        Some(d) => (true, d),
        None if exact_only => {
            return Err(Error::NotInIndex {
                kernel: want.text.clone(),
                target: target.to_owned(),
                why: format!(
                    "no `{}` {} (exact build required){}",
                    names[0],
                    text.package_version,
                    offered(&candidates)
                ),
            })
        }
        // The newest build under either name; on a tie the split package, as for the exact
        // build (one root in the cache for one compiler).
        None => match names
            .iter()
            .filter_map(|n| newest(&mut candidates.iter().filter(|(_, p)| &p.name == n)))
            .reduce(
                |a, b| match apt::compare_versions(&b.1.version, &a.1.version) {
                    std::cmp::Ordering::Greater => b,
                    _ => a,
                },
            ) {
            Some(d) => (false, d),
            None => {
                return Err(Error::NotInIndex {
                    kernel: want.text.clone(),
                    target: target.to_owned(),
                    why: format!("no package `{}` for {host_arch}", names.join("` or `")),
                })
            }
        },
    };
    let mut roots: Vec<&(String, Package)> = vec![candidates
        .iter()
        .copied()
        .find(|c| c.1 == driver.1)
        .expect("the driver is a candidate")];
    // A kernel built by plain `gcc` (Ubuntu 22.04: `gcc (Ubuntu 11.4.0-...) 11.4.0`) ran the
    // release's default `gcc`, a link to `gcc-<major>`: that package gives the very name.
    if text.program == "gcc" {
        let link = index.iter().find(|(_, p)| {
            p.name == "gcc"
                && on_host(p)
                && apt::parse_depends(&p.depends)
                    .iter()
                    .any(|(n, _)| *n == format!("gcc-{}", text.major))
        });
        roots.extend(link);
    }
    for group in KBUILD_TOOL_LIBS.iter().chain(tools) {
        roots.extend(
            group
                .iter()
                .find_map(|n| index.iter().find(|(_, p)| p.name == *n && on_host(p))),
        );
    }
    let closure = closure(&roots, index, on_host);
    let packages = closure
        .iter()
        .map(|(mirror, p)| GccPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            mirror: mirror.clone(),
            filename: p.filename.clone(),
            size: p.size,
            sha256: p.sha256.clone(),
            own_signature: None,
        })
        .collect();
    let host_triplet = host.triple();
    let (_, d) = &driver;
    let version_text = if exact {
        want.text.clone()
    } else {
        // What the nearest build will say: its own package and gcc versions.
        let v = d
            .version
            .rsplit_once("cross")
            .map_or(d.version.as_str(), |(v, _)| v);
        let upstream = v.split('-').next().unwrap_or(v);
        format!("{} ({} {v}) {upstream}", text.program, text.vendor)
    };
    let manifest = GccManifest {
        name: format!("{}_{}@{target}", d.name, d.version),
        version_text,
        host_arch: host,
        target_arch: kernel,
        pinned_from: target.to_owned(),
        note: match exact {
            true => format!(
                "resolved from {target}'s signed indexes: `{}` {} and its dependency closure",
                d.name, d.version
            ),
            false => format!(
                "resolved from {target}'s signed indexes: the kernel names {} {}, a build they do \
                 not carry as `{}`; the nearest build of gcc {}, `{}` {}, is used",
                text.program, text.package_version, names[0], text.major, d.name, d.version
            ),
        },
        gcc: format!("usr/bin/{}-gcc-{}", kernel.triple(), text.major),
        binutils_prefix: format!("usr/bin/{}-", kernel.triple()),
        loader: host.loader().to_owned(),
        library_path: vec![
            format!("lib/{host_triplet}"),
            format!("usr/lib/{host_triplet}"),
        ],
        packages,
        nearest: !exact,
        major_only: false,
    };
    Ok(Resolved {
        manifest,
        driver_package: d.name.clone(),
        version: d.version.clone(),
        exact,
    })
}

/// The newest build of gcc `major` in a Debian release's `index`, for a kernel whose own
/// distribution does not carry its compiler where probeforge can read it (`want` names another
/// vendor's build): another distribution's build of the same major version, said in the
/// manifest's note and recorded (`major_only`).
pub fn resolve_major(
    want: &KernelCompiler,
    major: u32,
    kernel: Arch,
    host: Arch,
    index: &[(String, Package)],
    target: &str,
    tools: &[&[&str]],
) -> Result<Resolved, Error> {
    // Any build of `gcc-<major>`: a package version no build has is always the nearest.
    let probe = KernelCompiler {
        text: format!("gcc-{major} (Debian 0) {major}.0.0"),
        gcc_version: 0,
    };
    let mut r = resolve(&probe, kernel, host, index, false, target, tools)?;
    let m = &mut r.manifest;
    m.major_only = true;
    m.note = format!(
        "the kernel names `{}`, a build its own distribution's indexes do not give; gcc {major} \
         from {target}'s signed indexes, `{}` {}, is used (the same major version, another \
         distribution's build)",
        want.text, r.driver_package, r.version
    );
    r.exact = false;
    Ok(r)
}

fn offered(c: &[&(String, Package)]) -> String {
    if c.is_empty() {
        return String::new();
    }
    let mut v: Vec<&str> = c.iter().map(|(_, p)| p.version.as_str()).collect();
    v.sort();
    v.dedup();
    format!("; the index offers {}", v.join(", "))
}

/// The dependency closure of `roots` over `index`: each dependency (`Depends` and
/// `Pre-Depends`, the first alternative the index has) resolved to the highest version that
/// satisfies it; a name already chosen is kept. Sorted by name, so the manifest's digest is
/// stable.
fn closure(
    roots: &[&(String, Package)],
    index: &[(String, Package)],
    on_host: impl Fn(&Package) -> bool,
) -> Vec<(String, Package)> {
    let mut set: Vec<(String, Package)> = Vec::new();
    let mut queue: Vec<(String, Package)> = roots.iter().map(|r| (*r).clone()).collect();
    while let Some(next) = queue.pop() {
        if set.iter().any(|(_, p)| p.name == next.1.name) {
            continue;
        }
        for alternatives in next.1.depends.split(',') {
            let pick = alternatives.split('|').find_map(|alt| {
                let (name, c) = apt::parse_depends(alt).into_iter().next()?;
                if NEVER.contains(&name.as_str()) {
                    return Some(None);
                }
                if set.iter().chain(queue.iter()).any(|(_, p)| p.name == name) {
                    return Some(None);
                }
                index
                    .iter()
                    .filter(|(_, p)| p.name == name && on_host(p) && apt::satisfies(&p.version, &c))
                    .max_by(|a, b| apt::compare_versions(&a.1.version, &b.1.version))
                    .map(|x| Some(x.clone()))
            });
            if let Some(Some(dep)) = pick {
                queue.push(dep);
            }
        }
        set.push(next);
    }
    set.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    set
}

/// A target's packages for one arch, each with the catalog mirror it is under.
type Index = Vec<(String, Package)>;
/// A pacman target's packages for one arch, each with its repository's path.
type PacIndex = crate::repo::PacmanIndex;
/// A yum target's packages for one arch ([`super::resolve_rpm`]).
type YumIndex = Vec<super::resolve_rpm::Listed>;
/// A compiler text resolved, or why not.
type Resolution = Result<GccManifest, String>;

/// Where a build's compilers come from: the pinned manifests and the host ([`gcc::choose`]),
/// else the kernel's own distribution's indexes. Shared by every kernel of a run: each
/// target's indexes are read once, each compiler resolved once.
pub struct IndexCompilers<'a> {
    pub lister: crate::repo::Lister<'a>,
    /// Refuse the nearest build when the exact one is gone (`--exact-compiler`).
    pub exact_only: bool,
    indexes: Mutex<BTreeMap<(String, Arch), Arc<Index>>>,
    pacman: Mutex<BTreeMap<(String, Arch), Arc<PacIndex>>>,
    yum_indexes: Mutex<BTreeMap<(String, Arch), Arc<YumIndex>>>,
    resolved: Mutex<BTreeMap<(String, Arch, String), Resolution>>,
    /// Manifests already said (another distribution's build: one warning per run).
    said: Mutex<std::collections::BTreeSet<String>>,
}

/// A target's index for one host arch, read by `read` the first time only (per process).
fn once<T>(
    memo: &Mutex<BTreeMap<(String, Arch), Arc<T>>>,
    target: &str,
    host: Arch,
    read: impl FnOnce() -> crate::repo::Result<T>,
) -> Result<Arc<T>, Error> {
    let key = (target.to_owned(), host);
    let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = memo.get(&key) {
        return Ok(i.clone());
    }
    let all = Arc::new(read().map_err(|source| Error::Index {
        target: target.to_owned(),
        source: Box::new(source),
    })?);
    memo.insert(key, all.clone());
    Ok(all)
}

/// What a module build asks of its compilers.
pub trait FindCompiler: Sync {
    /// The compiler of `tree`, a kernel listed by catalog target `target` (when known).
    fn find(&self, tree: &KernelTree, target: Option<&str>) -> Result<CompilerSource, Error>;
    /// Fetches a manifest's packages into the cache: its root.
    fn fetch(&self, m: &GccManifest) -> Result<PathBuf, Error>;
}

impl<'a> IndexCompilers<'a> {
    pub fn new(lister: crate::repo::Lister<'a>, exact_only: bool) -> IndexCompilers<'a> {
        IndexCompilers {
            lister,
            exact_only,
            indexes: Mutex::default(),
            pacman: Mutex::default(),
            yum_indexes: Mutex::default(),
            resolved: Mutex::default(),
            said: Mutex::default(),
        }
    }

    /// The catalog target whose indexes hold a kernel's compiler: the one release that listed
    /// it (a pre-release pocket names its release in `compilers_from`); else, for a target
    /// spanning several releases (`debian`) or none (`inspect`), the APT target of the release
    /// the kernel says it is for (os-release's id and `VERSION_ID`, or for Ubuntu the `~24.04`
    /// its compiler's package version carries); else the distribution's own target.
    fn compiler_target(&self, tree: &KernelTree, target: Option<&str>) -> Option<String> {
        let catalog = self.lister.catalog;
        let apt = |name: &str| catalog.target(name).is_ok_and(|t| t.kind == "apt");
        if let Some(own) = target.and_then(|t| catalog.target(t).ok()) {
            // A pacman target's kernels' compilers are in its own databases.
            if own.kind == "pacman" {
                return Some(own.name.clone());
            }
            if let Some(from) = &own.compilers_from {
                return apt(from).then(|| from.clone());
            }
            if own.version_id.is_some() && own.kind == "apt" {
                return Some(own.name.clone());
            }
            // A yum target is one release: its own repositories carry its compiler.
            if own.kind == "yum" {
                return Some(own.name.clone());
            }
        }
        let os = tree.os_release.as_ref()?;
        let version = os.version_id.clone().or_else(|| {
            // `x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0` -> `24.04`.
            let text = VersionText::parse(&KernelCompiler::of(tree).ok()?.text)?;
            let (_, after) = text.package_version.rsplit_once('~')?;
            let v: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            Some(v.trim_end_matches('.').to_owned())
        });
        let release = catalog.targets.iter().find(|t| {
            t.kind == "apt"
                && t.target_id == os.id
                && t.compilers_from.is_none()
                && t.version_id.is_some()
                && t.version_id == version
        });
        let pacman = catalog.target(&os.id).is_ok_and(|t| t.kind == "pacman");
        match release {
            Some(t) => Some(t.name.clone()),
            None => (apt(&os.id) || pacman).then(|| os.id.clone()),
        }
    }

    fn index(&self, target: &str, host: Arch) -> Result<Arc<Index>, Error> {
        once(&self.indexes, target, host, || {
            self.lister.apt_index(target, host, |_| true)
        })
    }

    /// A pacman target's databases for `host`, read once.
    fn pacman_index(&self, target: &str, host: Arch) -> Result<Arc<PacIndex>, Error> {
        once(&self.pacman, target, host, || {
            self.lister.pacman_index(target, host)
        })
    }

    /// A yum target's primary index for `host`, read once.
    fn yum_index(&self, target: &str, host: Arch) -> Result<Arc<YumIndex>, Error> {
        once(&self.yum_indexes, target, host, || {
            self.lister.yum_index(target, host)
        })
    }

    /// The compiler `want` from `target`'s indexes, with the kbuild `tools` groups it needs,
    /// resolved once.
    pub fn resolve(
        &self,
        want: &KernelCompiler,
        kernel: Arch,
        target: &str,
        tools: &[&[&str]],
    ) -> Result<GccManifest, Error> {
        let host = Arch::host().ok_or_else(|| Error::NotInIndex {
            kernel: want.text.clone(),
            target: target.to_owned(),
            why: "this host's architecture is not one probeforge knows".into(),
        })?;
        let key = (
            target.to_owned(),
            kernel,
            format!("{}\0{tools:?}", want.text),
        );
        if let Some(r) = self
            .resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return r.clone().map_err(|why| Error::NotInIndex {
                kernel: want.text.clone(),
                target: target.to_owned(),
                why,
            });
        }
        let r = match self.lister.catalog.target(target) {
            Ok(t) if t.kind == "pacman" => {
                let index = self.pacman_index(target, host)?;
                super::resolve_pacman::resolve(
                    want,
                    kernel,
                    host,
                    &index.packages,
                    &index.unsigned,
                    self.exact_only,
                    target,
                    &t.mirror,
                    tools,
                )
            }
            Ok(t) if t.kind == "yum" => {
                let index = self.yum_index(target, host)?;
                super::resolve_rpm::resolve(
                    want,
                    kernel,
                    host,
                    &index,
                    self.exact_only,
                    target,
                    tools,
                )
            }
            _ => {
                let index = self.index(target, host)?;
                resolve(want, kernel, host, &index, self.exact_only, target, tools)
            }
        };
        match &r {
            Ok(r) if !r.exact => tracing::warn!("{}", r.manifest.note),
            Ok(r) => tracing::info!("{}", r.manifest.note),
            Err(_) => {}
        }
        let stored = r.as_ref().map(|r| r.manifest.clone()).map_err(|e| match e {
            Error::NotInIndex { why, .. } => why.clone(),
            e => e.to_string(),
        });
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, stored);
        r.map(|r| r.manifest)
    }
}

impl IndexCompilers<'_> {
    /// The Debian releases of the catalog, newest first: where another distribution's build
    /// of a gcc major version is looked for.
    fn debian_releases(&self) -> Vec<String> {
        let mut v: Vec<(Vec<u32>, String)> = self
            .lister
            .catalog
            .targets
            .iter()
            .filter(|t| t.kind == "apt" && t.target_id == "debian" && t.compilers_from.is_none())
            .filter_map(|t| {
                let v = t.version_id.as_ref()?;
                let key = v.split('.').map(|n| n.parse().unwrap_or(0)).collect();
                Some((key, t.name.clone()))
            })
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// The newest build of the kernel's gcc major version in the newest Debian release that
    /// carries it, when nothing gave the kernel's own build (`--exact-compiler` refuses); the
    /// reason when none does.
    fn same_major(
        &self,
        want: &KernelCompiler,
        kernel: Arch,
        tools: &[&[&str]],
    ) -> Result<GccManifest, String> {
        let Some(major) = gcc::gcc_major(&want.text) else {
            return Err(format!(
                "`{}` names no gcc version: no other build of it is looked for",
                want.text
            ));
        };
        if self.exact_only {
            return Err(format!(
                "another distribution's build of gcc {major} is not used (exact build required)"
            ));
        }
        let host = Arch::host().ok_or("this host's architecture is not one probeforge knows")?;
        let mut found: Vec<GccManifest> = Vec::new();
        let mut why = Vec::new();
        for t in &self.debian_releases() {
            let key = (t.clone(), kernel, format!("major {major}\0{tools:?}"));
            let memo = self
                .resolved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned();
            let r = match memo {
                Some(r) => r,
                None => {
                    let r = match self.index(t, host) {
                        Ok(index) => resolve_major(want, major, kernel, host, &index, t, tools)
                            .map(|r| r.manifest)
                            .map_err(|e| match e {
                                Error::NotInIndex { why, .. } => why,
                                e => e.to_string(),
                            }),
                        Err(e) => Err(e.to_string()),
                    };
                    self.resolved
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, r.clone());
                    r
                }
            };
            match r {
                Ok(m) => found.push(m),
                Err(e) => why.push(format!("{t}: {e}")),
            }
        }
        // The build nearest the kernel's own gcc version; on a tie the newest release's.
        let wanted = gcc::gcc_version(&want.text).unwrap_or_default();
        let distance = |m: &GccManifest| {
            let v = gcc::gcc_version(&m.version_text).unwrap_or_default();
            (0..3)
                .map(|i| {
                    let (a, b) = (*wanted.get(i).unwrap_or(&0), *v.get(i).unwrap_or(&0));
                    a.abs_diff(b)
                })
                .collect::<Vec<u32>>()
        };
        if let Some(m) = found.iter().min_by_key(|m| distance(m)) {
            let said = &mut self.said.lock().unwrap_or_else(|e| e.into_inner());
            if said.insert(format!("{}\0{}", want.text, m.name)) {
                tracing::warn!("{}", m.note);
            }
            return Ok(m.clone());
        }
        Err(format!(
            "no Debian release of the catalog carries gcc {major} ({})",
            match why.is_empty() {
                true => "no Debian release target".to_owned(),
                false => why.join("; "),
            }
        ))
    }
}

impl FindCompiler for IndexCompilers<'_> {
    fn find(&self, tree: &KernelTree, target: Option<&str>) -> Result<CompilerSource, Error> {
        let want = KernelCompiler::of(tree)?;
        // The kernel's own kit's compiler first, when it says exactly the kernel's text.
        let mut kit_said = None;
        if let Some(root) = gcc::kit_toolchain(tree) {
            match gcc::kit_manifest(&want, tree.arch, &root) {
                Some(m) => match gcc::Compiler::pinned(&m, &root, &want) {
                    Ok(_) => return Ok(CompilerSource::Kit(Box::new(m), root)),
                    Err(e) => kit_said = Some(format!("the kit's toolchain: {e}")),
                },
                None => {
                    kit_said = Some(format!(
                        "the kit's toolchain `{}` has no `usr/bin/{}`",
                        root.display(),
                        want.program()
                    ))
                }
            }
        }
        let pinned = gcc::choose(&want, tree.arch, &GccManifest::embedded());
        let Err(Error::NoCompiler {
            kernel,
            arch,
            mut available,
        }) = pinned
        else {
            return pinned;
        };
        available.extend(kit_said);
        let tools = kbuild_tools(tree);
        if let Some(t) = self.compiler_target(tree, target) {
            match self.resolve(&want, tree.arch, &t, &tools) {
                Ok(m) => return Ok(CompilerSource::Pinned(Box::new(m))),
                Err(Error::NotInIndex { why, target, .. }) => {
                    available.push(format!("{target}'s indexes: {why}"))
                }
                Err(e) => return Err(e),
            }
        }
        match self.same_major(&want, tree.arch, &tools) {
            Ok(m) => Ok(CompilerSource::Pinned(Box::new(m))),
            Err(why) => {
                available.push(why);
                Err(Error::NoCompiler {
                    kernel,
                    arch,
                    available,
                })
            }
        }
    }

    /// Fetches `m`'s packages; one from an unsigned pacman database must carry its own valid
    /// signature by the keys of the target it was resolved from (`pinned_from`), checked
    /// before anything is unpacked.
    fn fetch(&self, m: &GccManifest) -> Result<PathBuf, Error> {
        let check = |p: &gcc::GccPackage, url: &str, file: &std::path::Path| {
            let Some(sig) = &p.own_signature else {
                return Ok(());
            };
            let pgpsig = match sig {
                gcc::OwnSignature::Pgpsig(s) => Some(s.as_str()),
                gcc::OwnSignature::Beside => None,
            };
            self.lister
                .pacman_package_signed(&m.pinned_from, url, file, pgpsig)
                .map(drop)
                .map_err(Box::new)
        };
        gcc::fetch(
            m,
            self.lister.client,
            self.lister.catalog,
            self.lister.mirrors,
            &check,
        )
    }
}

/// Where the module compiler of a listed kernel will come from, known before its headers are
/// read (`build-all --plan`): `Ok` names the indexes it is resolved from at build time; `Err`
/// says why no compiler is available for it, so a plan marks it instead of the build failing
/// it late.
pub fn planned_source(
    catalog: &crate::repo::Catalog,
    k: &crate::repo::KernelRecord,
) -> Result<String, String> {
    // Built from its source (kernel.org, Flatcar, talos and minikube lists): the tree is
    // prepared by this host's compiler, which then builds its module.
    if k.from_source() {
        return Ok(format!(
            "this host's compiler, which prepares `{}` kernels' trees from their source (the \
             tree's CONFIG_CC_VERSION_TEXT names it)",
            k.target
        ));
    }
    let Ok(t) = catalog.target(&k.target) else {
        return Ok(format!(
            "a pinned compiler or this host's that says exactly the kernel's text, else \
             Debian's build of its gcc major version (`{}` is not a catalog target: no index \
             of its own is read)",
            k.target
        ));
    };
    match t.kind.as_str() {
        "apt" => {
            let from = t
                .compilers_from
                .clone()
                .or_else(|| t.version_id.is_some().then(|| t.name.clone()));
            Ok(match from {
                Some(r) => format!("{r}'s signed indexes"),
                None => format!(
                    "the signed indexes of the {} release its headers name",
                    t.target_id
                ),
            })
        }
        // Neither carries a cross compiler of its kernels' gcc: Debian's cross build of its
        // major version then.
        "pacman" | "yum" if Arch::host() != Some(k.arch) => Ok(format!(
            "Debian's cross build of the kernel's gcc major version (`{}` carries no cross \
             compiler for {} kernels on this {} host)",
            t.name,
            k.arch.uname_m(),
            Arch::host().map_or("unknown", |a| a.uname_m())
        )),
        "pacman" => Ok(format!(
            "{}'s pacman databases (signed, or each package by its own signature), else \
             Debian's build of the kernel's gcc major version",
            t.name
        )),
        "yum" => Ok(format!(
            "{}'s signed indexes, else Debian's build of the kernel's gcc major version",
            t.name
        )),
        // Chromium OS's clang builds COS kernels: only a host clang of exactly that text.
        "cos" => Err(format!(
            "`{}` kernels are built by Chromium OS's clang: only this host's clang of exactly \
             the kernel's text builds their module (Debian's clang of the same major is not \
             looked up yet)",
            t.name
        )),
        "bottlerocket" => Ok(
            "the kit's own toolchain (`toolchain/` beside `kernel-devel`), else Debian's build \
             of the kernel's gcc major version"
                .into(),
        ),
        kind => Ok(format!(
            "Debian's build of the kernel's gcc major version (`{}` is {kind}: its own \
             compilers are not read)",
            t.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_texts_in_their_parts() {
        let t =
            VersionText::parse("x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0")
                .unwrap();
        assert_eq!(t.program, "x86_64-linux-gnu-gcc-13");
        assert_eq!(t.vendor, "Ubuntu");
        assert_eq!(t.package_version, "13.3.0-6ubuntu2~24.04.1");
        assert_eq!(t.major, 13);
        let t = VersionText::parse("gcc (Ubuntu 11.4.0-1ubuntu1~22.04.3) 11.4.0").unwrap();
        assert_eq!((t.program.as_str(), t.major), ("gcc", 11));
        let t = VersionText::parse("gcc-10 (Debian 10.2.1-6) 10.2.1 20210110").unwrap();
        assert_eq!((t.package_version.as_str(), t.major), ("10.2.1-6", 10));
        assert!(VersionText::parse("Ubuntu clang version 18.1.3 (1ubuntu1)").is_none());
        assert!(VersionText::parse("").is_none());
    }

    fn pkg(name: &str, version: &str, arch: &str, depends: &str) -> (String, Package) {
        (
            "ubuntu".into(),
            Package {
                name: name.into(),
                version: version.into(),
                arch: arch.into(),
                depends: depends.into(),
                filename: format!("pool/{name}_{version}_{arch}.deb"),
                size: 1,
                sha256: format!("{:0>64}", name.len()),
                ..Default::default()
            },
        )
    }

    fn index() -> Vec<(String, Package)> {
        vec![
            pkg("gcc-13", "13.2.0-23ubuntu4", "amd64", "gcc-13-x86-64-linux-gnu (= 13.2.0-23ubuntu4)"),
            pkg("gcc-13-x86-64-linux-gnu", "13.2.0-23ubuntu4", "amd64", "cpp-13-x86-64-linux-gnu (= 13.2.0-23ubuntu4), binutils-x86-64-linux-gnu (>= 2.42), libc6 (>= 2.38)"),
            pkg("gcc-13-x86-64-linux-gnu", "13.3.0-6ubuntu2~24.04.1", "amd64", "cpp-13-x86-64-linux-gnu (= 13.3.0-6ubuntu2~24.04.1), binutils-x86-64-linux-gnu (>= 2.39), libc6 (>= 2.38) | libc6-udeb, debconf"),
            pkg("cpp-13-x86-64-linux-gnu", "13.2.0-23ubuntu4", "amd64", "libc6"),
            pkg("cpp-13-x86-64-linux-gnu", "13.3.0-6ubuntu2~24.04.1", "amd64", "libc6"),
            pkg("binutils-x86-64-linux-gnu", "2.42-4ubuntu2", "amd64", "libc6, libzstd1"),
            pkg("libc6", "2.39-0ubuntu8", "amd64", "libgcc-s1"),
            pkg("libgcc-s1", "14.2.0-4ubuntu2~24.04", "amd64", "libc6 (>= 2.35)"),
            pkg("libzstd1", "1.5.5+dfsg2-2build1", "amd64", ""),
            pkg("libelf1t64", "0.190-1.1build4", "amd64", "libc6, zlib1g"),
            pkg("zlib1g", "1:1.3.dfsg-3.1ubuntu2", "amd64", "libc6"),
            pkg("libssl3t64", "3.0.13-0ubuntu3", "amd64", "libc6"),
            pkg("gcc-13-aarch64-linux-gnu", "13.3.0-6ubuntu2~24.04.1cross1", "amd64", "libc6"),
        ]
    }

    /// `text`'s compiler for a `kernel` kernel on an x86_64 host, from [`index`].
    fn from_index(text: &str, kernel: Arch, exact_only: bool) -> Result<Resolved, Error> {
        let want = KernelCompiler {
            text: text.into(),
            gcc_version: 0,
        };
        resolve(
            &want,
            kernel,
            Arch::X86_64,
            &index(),
            exact_only,
            "ubuntu-noble",
            &[],
        )
    }

    #[test]
    fn the_exact_build_and_its_closure_sorted() {
        let want = KernelCompiler {
            text: "x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0".into(),
            gcc_version: 130300,
        };
        let r = from_index(&want.text, Arch::X86_64, true).unwrap();
        assert!(r.exact);
        assert_eq!(r.version, "13.3.0-6ubuntu2~24.04.1");
        let names: Vec<(&str, &str)> = r
            .manifest
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("binutils-x86-64-linux-gnu", "2.42-4ubuntu2"),
                ("cpp-13-x86-64-linux-gnu", "13.3.0-6ubuntu2~24.04.1"),
                ("gcc-13-x86-64-linux-gnu", "13.3.0-6ubuntu2~24.04.1"),
                ("libc6", "2.39-0ubuntu8"),
                ("libelf1t64", "0.190-1.1build4"),
                ("libgcc-s1", "14.2.0-4ubuntu2~24.04"),
                ("libssl3t64", "3.0.13-0ubuntu3"),
                ("libzstd1", "1.5.5+dfsg2-2build1"),
                ("zlib1g", "1:1.3.dfsg-3.1ubuntu2"),
            ]
        );
        assert_eq!(r.manifest.version_text, want.text);
        assert_eq!(r.manifest.gcc, "usr/bin/x86_64-linux-gnu-gcc-13");
        assert!(!r.manifest.nearest);
    }

    #[test]
    fn a_build_gone_from_the_archive_takes_the_nearest_unless_exact_is_required() {
        let want = KernelCompiler {
            text: "x86_64-linux-gnu-gcc-13 (Ubuntu 13.2.0-4ubuntu3) 13.2.0".into(),
            gcc_version: 130200,
        };
        let err = from_index(&want.text, Arch::X86_64, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("13.2.0-4ubuntu3") && err.contains("13.3.0-6ubuntu2~24.04.1"),
            "{err}"
        );
        let r = from_index(&want.text, Arch::X86_64, false).unwrap();
        assert!(!r.exact && r.manifest.nearest);
        assert_eq!(r.version, "13.3.0-6ubuntu2~24.04.1");
        assert!(
            r.manifest.note.contains("13.2.0-4ubuntu3"),
            "{}",
            r.manifest.note
        );
        // Another major version is never near.
        let want = KernelCompiler {
            text: "x86_64-linux-gnu-gcc-14 (Ubuntu 14.2.0-4ubuntu2~24.04) 14.2.0".into(),
            gcc_version: 140200,
        };
        let err = from_index(&want.text, Arch::X86_64, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gcc-14-x86-64-linux-gnu"), "{err}");
    }

    #[test]
    fn a_cross_compiler_is_its_gcc_build_plus_cross() {
        let want = KernelCompiler {
            text: "aarch64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0".into(),
            gcc_version: 130300,
        };
        let r = from_index(&want.text, Arch::Aarch64, true).unwrap();
        assert!(r.exact);
        assert_eq!(r.driver_package, "gcc-13-aarch64-linux-gnu");
        assert_eq!(r.manifest.gcc, "usr/bin/aarch64-linux-gnu-gcc-13");
        assert_eq!(r.manifest.binutils_prefix, "usr/bin/aarch64-linux-gnu-");
    }
}
