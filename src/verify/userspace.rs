//! Falco's real userspace in the verification VM: Debian's `sysdig`, built on the real libscap,
//! loads the probe (`sysdig --bpf=<probe>`) and prints the events of the loader's workload.
//!
//! sysdig and the shared libraries it needs come from one Debian suite: resolved through the
//! catalog's APT target (so the suite's InRelease is verified), fetched by the digest its
//! Packages index lists, and read in memory. Every archive entry kept passes the one path
//! guard ([`crate::extract::safe_path::Guard`]); only the files the dynamic loader opens for
//! sysdig (its ELF closure, through the suite's own links) go into the initramfs, under
//! `/userspace`, where the loader runs sysdig chrooted, apart from its own libraries. A
//! usr-merged suite (forky) ships nothing in `/lib64`, `/lib`, `/bin`: those become links to
//! `usr/`, as an installed system has them.
//!
//! Nothing here judges the probe by probeforge's own reading: sysdig's words (its stderr and
//! exit) and the events it printed do, checked against the workload the loader ran.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use rayon::prelude::*;
use serde::Serialize;

use crate::extract::safe_path::{Decision, Guard, Kind};
use crate::kernel::Arch;
use crate::repo;

pub use super::workload::{EXEC_ARG, INIT_PATH, MARKER_PATH};

/// Where the userspace lives in the initramfs (the root sysdig is chrooted into).
pub const ROOT: &str = "userspace";
/// The binary that captures.
const SYSDIG: &str = "usr/bin/sysdig";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown userspace `{0}` (known: sysdig, sysdig=<suite>)")]
    UnknownUserspace(String),
    #[error("no Debian sysdig for suite `{suite}` (known: {known})")]
    UnknownSuite { suite: String, known: String },
    #[error("no Debian sysdig reads this probe's driver (API {api}, schema {schema}; probe_version {version}): {known}; give --userspace sysdig=<suite> to try one anyway")]
    NoSuiteForProbe {
        api: String,
        schema: String,
        version: String,
        known: String,
    },
    #[error("`{first}` needs {first_suite}'s sysdig, `{second}` {second_suite}'s: verify them separately")]
    MixedSuites {
        first: String,
        first_suite: String,
        second: String,
        second_suite: String,
    },
    #[error("sysdig ({suite}) for {arch}: `{package}` is not in `{target}`")]
    NotFound {
        suite: String,
        arch: Arch,
        package: String,
        target: String,
        #[source]
        source: Option<Box<repo::Error>>,
    },
    #[error("sysdig ({suite}): cannot look up `{package}` in `{target}`")]
    Lookup {
        suite: String,
        package: String,
        target: String,
        #[source]
        source: Box<repo::Error>,
    },
    #[error("sysdig ({suite}): cannot fetch `{package}` {version}")]
    Fetch {
        suite: String,
        package: String,
        version: String,
        #[source]
        source: Box<crate::http::Error>,
    },
    #[error("`{package}` ({path}): {what}")]
    Package {
        package: String,
        path: PathBuf,
        what: String,
    },
    #[error("`{package}`: entry `{entry}` refused: {refusal}")]
    Entry {
        package: String,
        entry: String,
        #[source]
        refusal: crate::extract::safe_path::Refusal,
    },
    #[error("sysdig ({suite}): `{needed_by}` needs `{soname}`, which none of the {count} packages of its dependency closure holds{unresolved}")]
    MissingLibrary {
        suite: String,
        needed_by: String,
        soname: String,
        count: usize,
        unresolved: String,
    },
    #[error("sysdig ({suite}): `{path}` is not a {arch} ELF binary the guest can run: {what}")]
    BadElf {
        suite: String,
        path: String,
        arch: Arch,
        what: String,
    },
}

/// A Debian suite whose `sysdig` is built on libscap, and the driver that libscap reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Suite {
    /// The Debian suite (`bookworm`).
    pub name: &'static str,
    /// The catalog's APT target holding it.
    pub target: &'static str,
    /// The sysdig Debian ships there (upstream version, for messages).
    pub sysdig: &'static str,
    /// The driver of the same suite's `falcosecurity-scap-dkms`, which this libscap pairs with.
    pub driver: &'static str,
    /// That driver's API and schema versions (major, minor, patch): libscap refuses a probe
    /// whose majors differ.
    pub api: (u64, u64, u64),
    pub schema: (u64, u64, u64),
    /// What is known not to work with this userspace (shown with a failure it explains).
    pub known_limits: &'static str,
}

/// The Debian suites with a libscap sysdig, oldest first. The versions are those of each
/// suite's `falcosecurity-scap-dkms` (`driver_config.h`; libs 0.23.2 is 9.1.0+driver).
pub const SUITES: &[Suite] = &[
    Suite {
        name: "bookworm",
        target: "debian-bookworm",
        sysdig: "0.29.3",
        driver: "0.1.1dev+git20220316.e5c53d64 (falcosecurity-scap-dkms, 2022)",
        api: (1, 0, 0),
        schema: (1, 0, 0),
        known_limits: "its 2022 libscap maps each perf ring twice, the second time at a page \
                       offset, which 6.1 and bullseye-security's later 5.10 kernels refuse \
                       (measured: 5.10.0-46 refuses, 5.10.0-32 of bullseye's point release \
                       accepts): use a point-release 5.10 kernel, or forky's sysdig",
    },
    Suite {
        name: "forky",
        target: "debian-forky",
        sysdig: "0.41.4",
        driver: "0.23.2 = 9.1.0+driver (falcosecurity-scap-dkms)",
        api: (8, 0, 4),
        schema: (4, 1, 0),
        known_limits: "",
    },
];

/// Which userspace `verify --userspace` asked for: `sysdig` (suite matched to the probe's
/// driver) or `sysdig=<suite>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub suite: Option<String>,
}

impl std::str::FromStr for Request {
    type Err = Error;
    fn from_str(s: &str) -> Result<Request, Error> {
        match s.split_once('=') {
            None if s == "sysdig" => Ok(Request { suite: None }),
            Some(("sysdig", suite)) if !suite.is_empty() => Ok(Request {
                suite: Some(suite.to_owned()),
            }),
            _ => Err(Error::UnknownUserspace(s.to_owned())),
        }
    }
}

fn known_suites() -> String {
    SUITES
        .iter()
        .map(|s| {
            format!(
                "{}'s sysdig {} reads driver API {} schema {} ({})",
                s.name,
                s.sysdig,
                triple(s.api),
                triple(s.schema),
                s.driver
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn triple(v: (u64, u64, u64)) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

/// A driver version as the probe's `api_version`/`schema_version` sections encode it
/// (`PPM_API_VERSION`: major << 44 | minor << 24 | patch).
pub fn decode_version(v: u64) -> (u64, u64, u64) {
    (v >> 44, (v >> 24) & 0xfffff, v & 0xffffff)
}

impl Request {
    /// The suite asked for, or the one whose libscap reads the probe's driver: the same API
    /// and schema majors (what libscap itself checks), the closest schema first.
    pub fn suite_for(&self, probe: &crate::validate::Report) -> Result<&'static Suite, Error> {
        if let Some(name) = &self.suite {
            return SUITES
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| Error::UnknownSuite {
                    suite: name.clone(),
                    known: SUITES.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
                });
        }
        let api = probe.api_version.map(decode_version);
        let schema = probe.schema_version.map(decode_version);
        let found = SUITES
            .iter()
            .filter(|s| api.is_some_and(|a| a.0 == s.api.0))
            .filter(|s| schema.is_some_and(|v| v.0 == s.schema.0))
            .min_by_key(|s| {
                let v = schema.unwrap_or_default();
                v.1.abs_diff(s.schema.1)
            });
        found.ok_or_else(|| Error::NoSuiteForProbe {
            api: api.map_or_else(|| "none".into(), triple),
            schema: schema.map_or_else(|| "none".into(), triple),
            version: probe.probe_version.clone().unwrap_or_else(|| "none".into()),
            known: known_suites(),
        })
    }
}

/// The userspace for these probes: the suite asked for, else the one whose libscap reads
/// their driver (all the probes must need the same one), resolved and fetched.
pub fn prepare(
    lister: &repo::Lister,
    request: &Request,
    probes: &[super::VmProbe],
    arch: Arch,
) -> Result<Userspace, Error> {
    let mut chosen: Option<(&'static Suite, &str)> = None;
    for p in probes {
        let s = request.suite_for(&p.driver_meta())?;
        match chosen {
            Some((c, other)) if c.name != s.name => {
                return Err(Error::MixedSuites {
                    first: other.to_owned(),
                    first_suite: c.name.into(),
                    second: p.name.clone(),
                    second_suite: s.name.into(),
                })
            }
            _ => chosen = Some((s, &p.name)),
        }
    }
    let suite = chosen.map_or(&SUITES[SUITES.len() - 1], |(s, _)| s);
    resolve(lister, suite, arch)
}

/// The workload's events as sysdig printed them, one line each, for people.
pub fn event_lines(report: &serde_json::Value) -> Vec<String> {
    ["openat", "execve"]
        .iter()
        .filter_map(|k| {
            let e: Event = serde_json::from_value(report["sysdig"][k].clone()).ok()?;
            Some(e.line())
        })
        .collect()
}

/// One package of the userspace, as fetched.
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    #[serde(skip)]
    pub path: PathBuf,
}

/// sysdig of one suite with its libraries, laid out for the initramfs.
#[derive(Debug, Clone, Serialize)]
pub struct Userspace {
    pub suite: Suite,
    pub arch: Arch,
    /// The `sysdig` package's version.
    pub sysdig_version: String,
    /// The dependency closure, sysdig first.
    pub packages: Vec<Package>,
    /// Dependencies no package of the suite is named as (virtual packages no provider was
    /// found for); harmless when the ELF closure is whole.
    pub unresolved: Vec<String>,
    /// Links added for a usr-merged suite (`lib64 -> usr/lib64`, ...).
    pub usr_merge: Vec<String>,
    /// Files (and bytes) of the ELF closure put in the initramfs.
    pub files: usize,
    pub bytes: u64,
    #[serde(skip)]
    pub tree: Tree,
}

/// Files and links under the userspace root, root-relative.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub files: BTreeMap<String, (u32, Vec<u8>)>,
    pub links: BTreeMap<String, String>,
}

/// A `.deb`'s control fields the closure needs.
#[derive(Debug, Default)]
struct Control {
    depends: Vec<Vec<String>>,
    provides: Vec<String>,
}

/// `a (>= 1), b | c:any` -> [[a], [b, c]].
fn parse_relations(field: &str) -> Vec<Vec<String>> {
    field
        .split(',')
        .map(|d| {
            d.split('|')
                .filter_map(|alt| {
                    let name = alt.split_whitespace().next()?;
                    Some(name.split(':').next().unwrap_or(name).to_owned())
                })
                .collect::<Vec<_>>()
        })
        .filter(|alts| !alts.is_empty())
        .collect()
}

fn bad_package(name: &str, path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Package {
        package: name.to_owned(),
        path: path.to_owned(),
        what: what.to_string(),
    }
}

/// One data entry of a `.deb`, as its tar header says.
struct Entry {
    path: Vec<u8>,
    ty: tar::EntryType,
    link: Option<Vec<u8>>,
    mode: u32,
    size: u64,
}

/// What [`read_deb`] calls for each data entry.
type OnData<'a> = dyn FnMut(&Entry, &mut dyn Read) -> Result<(), Error> + 'a;

/// Reads a `.deb`: its control, and (when `keep` says) the data entries wanted.
fn read_deb(
    name: &str,
    path: &Path,
    mut on_data: Option<&mut OnData<'_>>,
) -> Result<Control, Error> {
    let f = std::fs::File::open(path).map_err(|e| bad_package(name, path, e))?;
    let mut ar = ar::Archive::new(std::io::BufReader::new(f));
    let mut control = Control::default();
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(|e| bad_package(name, path, e))?;
        let id = entry.header().identifier().to_vec();
        if id.starts_with(b"control.tar") {
            let dec = crate::extract::decompress(&mut entry, name)
                .map_err(|e| bad_package(name, path, e))?;
            let mut tar = tar::Archive::new(dec);
            for e in tar.entries().map_err(|e| bad_package(name, path, e))? {
                let mut e = e.map_err(|e| bad_package(name, path, e))?;
                let p = e.path_bytes().into_owned();
                if p == b"./control" || p == b"control" {
                    let mut text = String::new();
                    e.by_ref()
                        .take(1 << 20)
                        .read_to_string(&mut text)
                        .map_err(|e| bad_package(name, path, e))?;
                    for line in text.lines() {
                        match line.split_once(':') {
                            Some(("Depends" | "Pre-Depends", v)) => {
                                control.depends.extend(parse_relations(v))
                            }
                            Some(("Provides", v)) => control
                                .provides
                                .extend(parse_relations(v).into_iter().flatten()),
                            _ => {}
                        }
                    }
                }
            }
            if on_data.is_none() {
                return Ok(control);
            }
        } else if id.starts_with(b"data.tar") {
            if let Some(f) = on_data.as_mut() {
                let dec = crate::extract::decompress(&mut entry, name)
                    .map_err(|e| bad_package(name, path, e))?;
                let mut tar = tar::Archive::new(dec);
                for e in tar.entries().map_err(|e| bad_package(name, path, e))? {
                    let mut e = e.map_err(|e| bad_package(name, path, e))?;
                    let h = e.header();
                    let info = Entry {
                        path: e.path_bytes().into_owned(),
                        ty: h.entry_type(),
                        link: e.link_name_bytes().map(|b| b.into_owned()),
                        mode: h.mode().unwrap_or(0o644),
                        size: h.size().unwrap_or(0),
                    };
                    f(&info, &mut e)?;
                }
            }
        }
    }
    Ok(control)
}

/// Every binary package of a target's suites for one arch (the highest version of each name),
/// read once: the dependency closure is some sixty lookups, and each `find_package` reads
/// every index again. Only an `InRelease` signed by the target's own keys is read here; any
/// other state of the repository (no InRelease, a bad signature, an unsigned target) leaves
/// `None`, and each lookup goes through [`repo::Lister::find_package`] and its trust policy.
struct SuiteIndex {
    by_name: BTreeMap<String, repo::PackageRef>,
}

fn suite_index(lister: &repo::Lister, target: &str, arch: Arch) -> Option<SuiteIndex> {
    use crate::repo::apt;
    let t = lister.catalog.target(target).ok()?;
    let keyring = t.keyring().ok()?;
    let mut best: BTreeMap<String, (String, apt::Package)> = BTreeMap::new();
    for s in &t.suites {
        let mname = s.mirror.clone().unwrap_or_else(|| t.mirror.clone());
        let mirror = lister.mirrors.resolve(lister.catalog, &mname).ok()?;
        let base = format!("{mirror}/dists/{}", s.suite);
        let (bytes, _) = lister
            .client
            .fetch_metadata(&format!("{base}/InRelease"))
            .ok()?;
        let text = crate::trust::verify_cleartext(
            &bytes,
            &keyring,
            &crate::http::redact(&base),
            "InRelease",
        )
        .ok()?;
        let rel = apt::parse_release(&text);
        for comp in &t.components {
            let listed = ["xz", "gz"].iter().find_map(|ext| {
                let path = format!("{comp}/binary-{}/Packages.{ext}", arch.debian());
                rel.sha256.get(&path).map(|l| (path, l.clone()))
            });
            let Some((path, listed)) = listed else {
                continue;
            };
            let url = if rel.acquire_by_hash {
                format!(
                    "{base}/{comp}/binary-{}/by-hash/SHA256/{}",
                    arch.debian(),
                    listed.sha256
                )
            } else {
                format!("{base}/{path}")
            };
            let (file, _) = lister
                .client
                .fetch_verified(&url, &listed.sha256, Some(listed.size))
                .ok()?;
            let f = std::fs::File::open(&file).ok()?;
            let mut text = String::new();
            crate::extract::decompress(std::io::BufReader::new(f), &url)
                .ok()?
                .read_to_string(&mut text)
                .ok()?;
            for p in apt::parse_packages(&text, |_| true) {
                let newer = best.get(&p.name).is_none_or(|(_, b)| {
                    apt::compare_versions(&p.version, &b.version) == std::cmp::Ordering::Greater
                });
                if newer {
                    best.insert(p.name.clone(), (mirror.clone(), p));
                }
            }
        }
    }
    let by_name = best
        .into_iter()
        .map(|(name, (mirror, p))| {
            let r = repo::PackageRef {
                url: format!("{mirror}/{}", p.filename),
                name: p.name,
                version: p.version,
                size: p.size,
                sha256: p.sha256,
            };
            (name, r)
        })
        .collect();
    Some(SuiteIndex { by_name })
}

/// A package found and fetched, with its control.
type Hit = (Package, Control);
/// One dependency's alternatives, and what was found for them.
type Resolved = (Vec<String>, Option<Hit>);

/// Looks one package up in the suite and fetches it: `None` when the suite has no package of
/// that name (a virtual one).
fn fetch_one(
    lister: &repo::Lister,
    index: Option<&SuiteIndex>,
    suite: &Suite,
    arch: Arch,
    name: &str,
) -> Result<Option<Hit>, Error> {
    let found = match index {
        Some(i) => i.by_name.get(name).cloned().ok_or(None),
        None => lister.find_package(suite.target, arch, name).map_err(Some),
    };
    let p = match found {
        Ok(p) => p,
        Err(None | Some(repo::Error::NoSuchKernel { .. })) => return Ok(None),
        Err(Some(e)) => {
            return Err(Error::Lookup {
                suite: suite.name.into(),
                package: name.into(),
                target: suite.target.into(),
                source: Box::new(e),
            })
        }
    };
    let (path, _) = lister
        .client
        .fetch_verified(&p.url, &p.sha256, Some(p.size))
        .map_err(|source| Error::Fetch {
            suite: suite.name.into(),
            package: p.name.clone(),
            version: p.version.clone(),
            source: Box::new(source),
        })?;
    let control = read_deb(&p.name, &path, None)?;
    Ok(Some((
        Package {
            name: p.name,
            version: p.version,
            sha256: p.sha256,
            size: p.size,
            path,
        },
        control,
    )))
}

/// The real package behind a virtual one, by Debian's ABI-tagged naming
/// (`libre2-11-absl20260526` is provided by `libre2-11`): the name shortened one `-part` at a
/// time, accepted only if that package's control says it provides the virtual name.
fn provider(
    lister: &repo::Lister,
    index: Option<&SuiteIndex>,
    suite: &Suite,
    arch: Arch,
    virtual_name: &str,
) -> Result<Option<Hit>, Error> {
    let mut name = virtual_name;
    while let Some((head, _)) = name.rsplit_once('-') {
        name = head;
        if let Some((p, c)) = fetch_one(lister, index, suite, arch, name)? {
            if c.provides.iter().any(|v| v == virtual_name) {
                return Ok(Some((p, c)));
            }
        }
    }
    Ok(None)
}

/// Resolves and fetches `sysdig` of `suite` for `arch` with its dependency closure (Depends
/// and Pre-Depends, the first alternative the suite has, each level looked up in parallel),
/// then lays out its ELF closure.
pub fn resolve(lister: &repo::Lister, suite: &Suite, arch: Arch) -> Result<Userspace, Error> {
    let index = suite_index(lister, suite.target, arch);
    if index.is_none() {
        tracing::info!(
            "{}: no signed InRelease read at once; looking each package up on its own",
            suite.target
        );
    }
    let index = index.as_ref();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut packages: Vec<Package> = Vec::new();
    let mut unresolved = Vec::new();
    // Each item: the alternatives of one dependency.
    let mut level: Vec<Vec<String>> = vec![vec!["sysdig".to_owned()]];
    while !level.is_empty() {
        level.retain(|alts| !alts.iter().any(|a| seen.contains(a)));
        let mut uniq = BTreeSet::new();
        level.retain(|alts| uniq.insert(alts.clone()));
        let found: Vec<Result<Resolved, Error>> = level
            .par_iter()
            .map(|alts| {
                for a in alts {
                    if let Some(hit) = fetch_one(lister, index, suite, arch, a)? {
                        return Ok((alts.clone(), Some(hit)));
                    }
                }
                for a in alts {
                    if let Some(hit) = provider(lister, index, suite, arch, a)? {
                        return Ok((alts.clone(), Some(hit)));
                    }
                }
                Ok((alts.clone(), None))
            })
            .collect();
        let mut next = Vec::new();
        for r in found {
            let (alts, hit) = r?;
            seen.extend(alts.iter().cloned());
            match hit {
                Some((p, c)) => {
                    if seen.insert(p.name.clone()) || !packages.iter().any(|q| q.name == p.name) {
                        seen.extend(c.provides.iter().cloned());
                        if !packages.iter().any(|q| q.name == p.name) {
                            packages.push(p);
                            next.extend(c.depends);
                        }
                    }
                }
                None if packages.is_empty() => {
                    return Err(Error::NotFound {
                        suite: suite.name.into(),
                        arch,
                        package: alts.join(" | "),
                        target: suite.target.into(),
                        source: None,
                    })
                }
                None => unresolved.push(alts.join(" | ")),
            }
        }
        level = next;
    }
    // sysdig first, the rest by name: a deterministic order for the tree and the report.
    packages[1..].sort_by(|a, b| a.name.cmp(&b.name));
    unresolved.sort();
    let (tree, usr_merge) = layout(suite, arch, &packages, &unresolved)?;
    let bytes = tree.files.values().map(|(_, d)| d.len() as u64).sum();
    Ok(Userspace {
        suite: *suite,
        arch,
        sysdig_version: packages[0].version.clone(),
        files: tree.files.len(),
        bytes,
        packages,
        unresolved,
        usr_merge,
        tree,
    })
}

/// Whether an archive path is one the ELF closure can need: sysdig, or under a library dir.
fn wanted(path: &str) -> bool {
    path == SYSDIG
        || ["lib/", "lib64/", "usr/lib/", "usr/lib64/"]
            .iter()
            .any(|p| path.starts_with(p) && !path.starts_with("usr/lib/debug/"))
}

/// The largest file kept (libc's and libstdc++'s are a few MB).
const MAX_FILE: u64 = 256 << 20;

/// Unpacks the wanted entries of every package in memory through one path guard, adds the
/// usr-merge links, and keeps sysdig's ELF closure.
fn layout(
    suite: &Suite,
    arch: Arch,
    packages: &[Package],
    unresolved: &[String],
) -> Result<(Tree, Vec<String>), Error> {
    let mut guard = Guard::new();
    let mut all = Tree::default();
    for p in packages {
        let mut on = |e: &Entry, data: &mut dyn Read| -> Result<(), Error> {
            let raw = e.path.clone();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let norm = shown.trim_start_matches("./");
            if !wanted(norm) {
                return Ok(());
            }
            let link = || e.link.clone().unwrap_or_default();
            let kind = match e.ty {
                tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
                tar::EntryType::Directory => return Ok(()),
                tar::EntryType::Symlink => Kind::Symlink(link()),
                tar::EntryType::Link => Kind::Hardlink(link()),
                tar::EntryType::Char => Kind::CharDevice,
                tar::EntryType::Block => Kind::BlockDevice,
                tar::EntryType::Fifo => Kind::Fifo,
                _ => Kind::Other,
            };
            let mode = e.mode;
            let refused = |refusal| Error::Entry {
                package: p.name.clone(),
                entry: shown.clone(),
                refusal,
            };
            match guard.decide(&raw, &kind, mode).map_err(refused)? {
                Decision::File(path) => {
                    let size = e.size;
                    if size > MAX_FILE {
                        return Err(bad_package(
                            &p.name,
                            &p.path,
                            format!("`{shown}` is {size} bytes (more than {MAX_FILE})"),
                        ));
                    }
                    let mut bytes = Vec::with_capacity(size as usize);
                    data.read_to_end(&mut bytes)
                        .map_err(|err| bad_package(&p.name, &p.path, err))?;
                    all.files
                        .insert(path.to_string_lossy().into_owned(), (mode & 0o777, bytes));
                }
                Decision::Symlink(path, target) => {
                    all.links
                        .insert(path.to_string_lossy().into_owned(), target);
                }
                Decision::Hardlink(path, target) => {
                    let data = all
                        .files
                        .get(&*target.to_string_lossy())
                        .cloned()
                        .unwrap_or_default();
                    all.files.insert(path.to_string_lossy().into_owned(), data);
                }
                Decision::Skip | Decision::Dir(_) => {}
            }
            Ok(())
        };
        read_deb(&p.name, &p.path, Some(&mut on))?;
    }
    // Usr-merged suites: the top-level dirs an installed system has as links into usr/.
    let mut usr_merge = Vec::new();
    for d in ["bin", "sbin", "lib", "lib64"] {
        let prefix = format!("{d}/");
        let shipped = all
            .files
            .keys()
            .chain(all.links.keys())
            .any(|p| p.starts_with(&prefix) || p == d);
        let in_usr = format!("usr/{d}/");
        let has_usr = all
            .files
            .keys()
            .chain(all.links.keys())
            .any(|p| p.starts_with(&in_usr));
        if !shipped && has_usr {
            let target = format!("usr/{d}");
            guard
                .decide(
                    d.as_bytes(),
                    &Kind::Symlink(target.clone().into_bytes()),
                    0o777,
                )
                .map_err(|refusal| Error::Entry {
                    package: "(usr-merge)".into(),
                    entry: d.into(),
                    refusal,
                })?;
            all.links.insert(d.to_owned(), target.clone());
            usr_merge.push(format!("{d} -> {target}"));
        }
    }
    if let Err((link, refusal)) = guard.recheck() {
        return Err(Error::Entry {
            package: "(all)".into(),
            entry: link.display().to_string(),
            refusal,
        });
    }
    let tree = elf_closure(suite, arch, &all, packages.len(), unresolved)?;
    Ok((tree, usr_merge))
}

/// Resolves a root-relative path through the tree's links: the real path and every link on
/// the way; `None` if it ends nowhere.
fn walk(tree: &Tree, path: &str) -> Option<(String, Vec<String>)> {
    let mut visited = Vec::new();
    let mut pending: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(comp) = pending.pop() {
        match comp.as_str() {
            "" | "." => continue,
            ".." => {
                cur.pop()?;
                continue;
            }
            _ => {}
        }
        cur.push(comp);
        let joined = cur.join("/");
        if let Some(target) = tree.links.get(&joined) {
            hops += 1;
            if hops > 40 {
                return None;
            }
            visited.push(joined);
            cur.pop();
            if target.starts_with('/') {
                cur.clear();
            }
            pending.extend(target.split('/').rev().map(str::to_owned));
        }
    }
    let real = cur.join("/");
    tree.files.contains_key(&real).then_some((real, visited))
}

/// PT_INTERP and DT_NEEDED of an ELF file of `arch`.
fn elf_needs(bytes: &[u8], arch: Arch) -> Result<(Option<String>, Vec<String>), String> {
    type Elf = object::elf::FileHeader64<object::Endianness>;
    let header = Elf::parse(bytes).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let machine = header.e_machine(endian);
    let want = match arch {
        Arch::X86_64 => object::elf::EM_X86_64,
        Arch::Aarch64 => object::elf::EM_AARCH64,
        Arch::S390x => object::elf::EM_S390,
        Arch::Ppc64le => object::elf::EM_PPC64,
        Arch::Riscv64 => object::elf::EM_RISCV,
    };
    if machine != want {
        return Err(format!("machine {machine}, not {want}"));
    }
    let mut interp = None;
    for ph in header
        .program_headers(endian, bytes)
        .map_err(|e| e.to_string())?
    {
        if let Some(i) = ph.interpreter(endian, bytes).map_err(|e| e.to_string())? {
            interp = Some(String::from_utf8_lossy(i).into_owned());
        }
    }
    let sections = header.sections(endian, bytes).map_err(|e| e.to_string())?;
    let mut needed = Vec::new();
    if let Some((dynamic, link)) = sections.dynamic(endian, bytes).map_err(|e| e.to_string())? {
        let strings = sections
            .strings(endian, bytes, link)
            .map_err(|e| e.to_string())?;
        for d in dynamic {
            if d.tag32(endian) == Some(object::elf::DT_NEEDED) {
                let s = d.string(endian, strings).map_err(|e| e.to_string())?;
                needed.push(String::from_utf8_lossy(s).into_owned());
            }
        }
    }
    Ok((interp, needed))
}

/// sysdig, its interpreter and every library it needs, transitively, found where the guest's
/// dynamic loader looks without a cache (Debian's glibc: the multiarch dirs, then /lib,
/// /usr/lib), with the links on the way.
fn elf_closure(
    suite: &Suite,
    arch: Arch,
    all: &Tree,
    count: usize,
    unresolved: &[String],
) -> Result<Tree, Error> {
    // Debian's multiarch triplet.
    let triplet = match arch {
        Arch::Ppc64le => "powerpc64le-linux-gnu".to_owned(),
        a => format!("{}-linux-gnu", a.uname_m()),
    };
    let dirs = [
        format!("lib/{triplet}"),
        format!("usr/lib/{triplet}"),
        "lib".to_owned(),
        "usr/lib".to_owned(),
    ];
    let mut out = Tree::default();
    let keep = |real: &str, links: &[String], out: &mut Tree| {
        for l in links {
            out.links.insert(l.clone(), all.links[l].clone());
        }
        if !out.files.contains_key(real) {
            out.files.insert(real.to_owned(), all.files[real].clone());
            true
        } else {
            false
        }
    };
    let missing = |needed_by: &str, soname: &str| Error::MissingLibrary {
        suite: suite.name.into(),
        needed_by: needed_by.into(),
        soname: soname.into(),
        count,
        unresolved: if unresolved.is_empty() {
            String::new()
        } else {
            format!(
                " (dependencies not found in the suite: {})",
                unresolved.join(", ")
            )
        },
    };
    let (real, links) = walk(all, SYSDIG).ok_or_else(|| missing("sysdig package", SYSDIG))?;
    keep(&real, &links, &mut out);
    let mut queue = vec![(SYSDIG.to_owned(), real)];
    while let Some((shown, real)) = queue.pop() {
        let (interp, needed) =
            elf_needs(&all.files[&real].1, arch).map_err(|what| Error::BadElf {
                suite: suite.name.into(),
                path: shown.clone(),
                arch,
                what,
            })?;
        if let Some(i) = interp {
            let i = i.trim_start_matches('/');
            let (r, l) = walk(all, i).ok_or_else(|| missing(&shown, i))?;
            if keep(&r, &l, &mut out) {
                queue.push((i.to_owned(), r));
            }
        }
        for soname in needed {
            let found = dirs
                .iter()
                .find_map(|d| walk(all, &format!("{d}/{soname}")))
                .ok_or_else(|| missing(&shown, &soname))?;
            if keep(&found.0, &found.1, &mut out) {
                queue.push((soname, found.0));
            }
        }
    }
    Ok(out)
}

impl Userspace {
    /// The loader's instructions: chroot into [`ROOT`], run sysdig on the probe (`{probe}` is
    /// replaced by its path inside the root), print the workload's syscalls as JSON.
    pub fn manifest(&self, deadline: std::time::Duration) -> serde_json::Value {
        serde_json::json!({
            "name": format!("sysdig {} ({})", self.sysdig_version, self.suite.name),
            "root": format!("/{ROOT}"),
            "argv": [
                format!("/{SYSDIG}"),
                "--bpf={probe}",
                // Whole argument strings, not the 40-character default.
                "-v",
                "-j",
                "-p", "%evt.num %thread.tid %proc.name %evt.dir %evt.type %evt.args",
                "evt.type in (openat, execve)",
            ],
            "env": ["PATH=/usr/bin:/bin", "HOME=/tmp", "TERM=dumb"],
            "deadline_secs": deadline.as_secs(),
        })
    }
}

/// One event sysdig printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Event {
    pub num: u64,
    pub tid: i64,
    pub process: String,
    pub dir: String,
    pub name: String,
    /// The event's arguments as sysdig renders them (`name=/tmp/x`), in order.
    pub args: Vec<(String, String)>,
}

impl Event {
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A line of sysdig's `-j -p` output.
    pub fn parse(line: &str) -> Option<Event> {
        let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
        let text = |k: &str| match &v[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let num = |k: &str| {
            v[k].as_i64()
                .or_else(|| v[k].as_str().and_then(|s| s.parse().ok()))
        };
        let args = text("evt.args")
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Event {
            num: num("evt.num")? as u64,
            tid: num("thread.tid")?,
            process: text("proc.name"),
            dir: text("evt.dir"),
            name: text("evt.type"),
            args,
        })
    }

    /// `tid > name k=v ...`, as sysdig prints it.
    pub fn line(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} {} {} {}", self.tid, self.dir, self.name, args.join(" "))
    }
}

/// Why sysdig did not capture the workload.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// libscap refused a probe built for another kernel: a wrong probe, named by sysdig.
    #[error("the probe is for kernel `{probe_kernel}`, the VM runs `{running}` (sysdig: {said})")]
    ProbeForAnotherKernel {
        probe_kernel: String,
        running: String,
        said: String,
    },
    /// libscap refused the probe's driver API or schema version.
    #[error("sysdig's libscap does not read this probe's driver version (sysdig: {said})")]
    DriverVersion { said: String },
    /// The probe loaded, then libscap could not set up capture on this kernel: the userspace
    /// is too old (or new) for the kernel, not a fault of the probe.
    #[error("userspace/kernel mismatch, not the probe: {userspace} cannot map its perf rings on `{running}` (sysdig: {said}){limits}")]
    UserspaceKernelMismatch {
        userspace: String,
        running: String,
        said: String,
        limits: String,
    },
    /// sysdig could not start in the VM (a library the closure lacked, a bad binary).
    #[error("{userspace} did not start in the VM (exit {status}): {said}")]
    DidNotStart {
        userspace: String,
        status: String,
        said: String,
    },
    /// sysdig stopped with an error of its own.
    #[error("{userspace} failed (exit {status}): {said}")]
    Failed {
        userspace: String,
        status: String,
        said: String,
    },
    /// sysdig ran, but some of the workload's events never came out.
    #[error("{userspace} ran for {seconds:.0}s over {rounds} workload round(s) and printed {events} matching event(s), but not: {missing}")]
    EventsMissing {
        userspace: String,
        missing: String,
        rounds: u64,
        events: usize,
        seconds: f64,
    },
    /// The loader could not run sysdig at all.
    #[error("the loader could not run {userspace}: {said}")]
    Loader { userspace: String, said: String },
}

/// What sysdig did with one probe, judged.
#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    pub ok: bool,
    /// `sysdig <version> (<suite>)`.
    pub userspace: String,
    pub failure: Option<Failure>,
    /// The failure in words.
    pub message: Option<String>,
    /// The workload's exec, as sysdig printed it (exit event: `exe`, `args`).
    pub execve: Option<Event>,
    /// The workload's open of the marker (exit event: `fd`, `name`).
    pub openat: Option<Event>,
    /// Events sysdig printed (openat and execve of every process).
    pub events: usize,
    pub exit_status: Option<String>,
    /// Workload rounds the loader ran before sysdig printed both events (capture starts some
    /// seconds after sysdig does: the probe loads first).
    pub rounds: u64,
    pub seconds_to_capture: Option<f64>,
    pub stderr_tail: String,
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Judges the loader's raw userspace report (`stdout`, `stderr`, `status`, `rounds`, ...):
/// both workload events must be among sysdig's output, the exec with its exact arguments
/// and the open with its exact path; anything else is the [`Failure`] sysdig's words show.
pub fn check(raw: &serde_json::Value, running: &str, limits: &str) -> Capture {
    let userspace = raw["name"].as_str().unwrap_or("sysdig").to_owned();
    let stdout = raw["stdout"].as_str().unwrap_or("");
    let stderr = raw["stderr"].as_str().unwrap_or("");
    let status = raw["status"].as_str().map(str::to_owned);
    let rounds = raw["rounds"].as_u64().unwrap_or(0);
    let events: Vec<Event> = stdout.lines().filter_map(Event::parse).collect();
    let execve = events
        .iter()
        .find(|e| {
            e.name == "execve"
                && e.dir == "<"
                && e.arg("res") == Some("0")
                && e.arg("exe") == Some(INIT_PATH)
                && e.arg("args").map(|a| a.trim_end_matches('.')) == Some(EXEC_ARG)
        })
        .cloned();
    let openat = events
        .iter()
        .find(|e| {
            e.name == "openat"
                && e.dir == "<"
                && e.arg("name") == Some(MARKER_PATH)
                && e.arg("fd")
                    .and_then(|fd| fd.split('(').next()?.parse::<i64>().ok())
                    .is_some_and(|fd| fd >= 0)
        })
        .cloned();
    let said = last_lines(stderr, 3).replace('\n', " | ");
    let status_text = status.clone().unwrap_or_else(|| "none".into());
    let failure = if let Some(e) = raw["error"].as_str() {
        Some(Failure::Loader {
            userspace: userspace.clone(),
            said: e.to_owned(),
        })
    } else if execve.is_some() && openat.is_some() {
        None
    } else if let Some((probe_kernel, run)) = other_kernel(stderr) {
        Some(Failure::ProbeForAnotherKernel {
            probe_kernel,
            running: run,
            said,
        })
    } else if stderr.contains("mmap") && stderr.contains("Cannot allocate memory") {
        Some(Failure::UserspaceKernelMismatch {
            userspace: userspace.clone(),
            running: running.to_owned(),
            said,
            limits: if limits.is_empty() {
                String::new()
            } else {
                format!("; {limits}")
            },
        })
    } else if ["API version", "schema version", "api version"]
        .iter()
        .any(|k| stderr.contains(k))
    {
        Some(Failure::DriverVersion { said })
    } else if stderr.contains("error while loading shared libraries")
        || status.as_deref() == Some("127")
    {
        Some(Failure::DidNotStart {
            userspace: userspace.clone(),
            status: status_text,
            said,
        })
    } else if raw["exited_early"] == true {
        Some(Failure::Failed {
            userspace: userspace.clone(),
            status: status_text,
            said,
        })
    } else {
        let mut missing = Vec::new();
        if execve.is_none() {
            missing.push(format!("execve exe={INIT_PATH} args={EXEC_ARG}"));
        }
        if openat.is_none() {
            missing.push(format!("openat name={MARKER_PATH}"));
        }
        Some(Failure::EventsMissing {
            userspace: userspace.clone(),
            missing: missing.join(", "),
            rounds,
            events: events.len(),
            seconds: raw["seconds"].as_f64().unwrap_or(0.0),
        })
    };
    Capture {
        ok: failure.is_none(),
        userspace,
        message: failure.as_ref().map(|f| f.to_string()),
        failure,
        execve,
        openat,
        events: events.len(),
        exit_status: status,
        rounds,
        seconds_to_capture: raw["seconds_to_capture"].as_f64(),
        stderr_tail: last_lines(stderr, 12),
    }
}

/// libscap's refusal of a probe for another kernel: `BPF probe is compiled for A, but running
/// version is B`.
fn other_kernel(stderr: &str) -> Option<(String, String)> {
    let rest = stderr.split("BPF probe is compiled for ").nth(1)?;
    let (probe, rest) = rest.split_once(", but running version is ")?;
    let running = rest.split_whitespace().next()?.trim_end_matches(['.', ',']);
    Some((probe.trim().to_owned(), running.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!("sysdig".parse::<Request>().unwrap().suite, None);
        assert_eq!(
            "sysdig=forky".parse::<Request>().unwrap().suite.as_deref(),
            Some("forky")
        );
        assert!("falco".parse::<Request>().is_err());
        assert!("sysdig=".parse::<Request>().is_err());
    }

    #[test]
    fn the_suite_follows_the_probes_driver_version() {
        let v = |a: u64, b: u64, c: u64| (a << 44) | (b << 24) | c;
        let probe = |api, schema| crate::validate::Report {
            kernel_version: None,
            probe_version: Some("x".into()),
            license: None,
            build_commit: None,
            api_version: Some(api),
            schema_version: Some(schema),
            maps: vec![],
            programs: vec![],
            checks: vec![],
        };
        let any = Request { suite: None };
        // The 2022 dkms driver and libs 0.23.2 (9.1.0+driver), as their probes say.
        assert_eq!(
            any.suite_for(&probe(v(1, 0, 0), v(1, 0, 0))).unwrap().name,
            "bookworm"
        );
        assert_eq!(
            any.suite_for(&probe(v(8, 0, 4), v(4, 1, 0))).unwrap().name,
            "forky"
        );
        // 8.0.0+driver (schema 3.5.0): no Debian libscap reads it.
        let e = any
            .suite_for(&probe(v(8, 0, 3), v(3, 5, 0)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("API 8.0.3, schema 3.5.0") && e.contains("forky's sysdig 0.41.4"),
            "{e}"
        );
        assert_eq!(decode_version(140737488355331), (8, 0, 3));
    }

    #[test]
    fn sysdig_lines_parse_and_the_workload_is_found() {
        let out = r#"{"evt.args":"fd=3(<f>/tmp/probeforge-marker) dirfd=-100(AT_FDCWD) name=/tmp/probeforge-marker flags=1(O_RDONLY) mode=0 dev=2 ino=7","evt.dir":"<","evt.num":812,"evt.type":"openat","proc.name":"init","thread.tid":1}
{"evt.args":"res=0 exe=/init args=probeforge-exec-marker. tid=64(init) pid=64(init) ptid=1(init) cwd=<NA>","evt.dir":"<","evt.num":830,"evt.type":"execve","proc.name":"init","thread.tid":64}"#;
        let raw = serde_json::json!({"name": "sysdig 0.41.4 (forky)", "stdout": out, "stderr": "", "rounds": 3});
        let c = check(&raw, "6.12.1", "");
        assert!(c.ok, "{c:?}");
        assert_eq!(
            c.openat.unwrap().arg("fd"),
            Some("3(<f>/tmp/probeforge-marker)")
        );
        assert_eq!(c.execve.unwrap().tid, 64);
        // Only the open: the exec is named as missing.
        let raw = serde_json::json!({"name": "s", "stdout": out.lines().next().unwrap(), "stderr": "", "rounds": 9});
        let c = check(&raw, "6.12.1", "");
        match c.failure {
            Some(Failure::EventsMissing { missing, .. }) => {
                assert_eq!(missing, "execve exe=/init args=probeforge-exec-marker")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sysdigs_refusals_are_typed() {
        let raw = serde_json::json!({"name": "sysdig 0.29.3 (bookworm)", "stdout": "", "exited_early": true, "status": "1",
            "stderr": "Unable to load the driver\nerror opening device /dev/scap0. BPF probe is compiled for 6.1.0-50-cloud-amd64, but running version is 5.10.0-32-cloud-amd64\n"});
        assert_eq!(
            check(&raw, "5.10.0-32-cloud-amd64", "").failure,
            Some(Failure::ProbeForAnotherKernel {
                probe_kernel: "6.1.0-50-cloud-amd64".into(),
                running: "5.10.0-32-cloud-amd64".into(),
                said: "Unable to load the driver | error opening device /dev/scap0. BPF probe is compiled for 6.1.0-50-cloud-amd64, but running version is 5.10.0-32-cloud-amd64".into(),
            })
        );
        let raw = serde_json::json!({"name": "sysdig 0.29.3 (bookworm)", "stdout": "", "exited_early": true, "status": "1",
            "stderr": "mmap (3): Cannot allocate memory\n"});
        let f = check(&raw, "6.1.0-50-amd64", SUITES[0].known_limits)
            .failure
            .unwrap();
        assert!(matches!(f, Failure::UserspaceKernelMismatch { .. }));
        let text = f.to_string();
        assert!(
            text.starts_with("userspace/kernel mismatch, not the probe: sysdig 0.29.3 (bookworm)")
                && text.contains("use a point-release 5.10 kernel"),
            "{text}"
        );
    }

    #[test]
    fn links_are_walked_and_recorded() {
        let mut t = Tree::default();
        t.files.insert(
            "usr/lib/x86_64-linux-gnu/libz.so.1.3".into(),
            (0o644, vec![]),
        );
        t.links.insert("lib".into(), "usr/lib".into());
        t.links.insert(
            "usr/lib/x86_64-linux-gnu/libz.so.1".into(),
            "libz.so.1.3".into(),
        );
        assert_eq!(
            walk(&t, "lib/x86_64-linux-gnu/libz.so.1"),
            Some((
                "usr/lib/x86_64-linux-gnu/libz.so.1.3".into(),
                vec!["lib".into(), "usr/lib/x86_64-linux-gnu/libz.so.1".into()]
            ))
        );
        assert_eq!(walk(&t, "lib/x86_64-linux-gnu/libc.so.6"), None);
    }
}
