//! Which clang/llc a command builds with: the host's, a pinned toolchain (fetched once into the
//! cache), or a manifest file, chosen once from [`Options`].

use crate::kernel::Arch;
use crate::report::{Phase, Reporter};
use crate::session::{self, Session};
use crate::toolchain::{self, Manifest, Toolchain};

use super::{Error, Result};

/// What `--toolchain`, `--clang`, `--llc` and `--require-llvm` say.
#[derive(Debug, Clone)]
pub struct Options {
    /// `auto` (the host's pair, else the pinned toolchain for this machine), `host`, a pinned
    /// toolchain's name, or a manifest file's path.
    pub choice: String,
    pub clang: Option<std::path::PathBuf>,
    pub llc: Option<std::path::PathBuf>,
    /// Refuse any LLVM but this version ("14" or "14.0.6").
    pub require_llvm: Option<String>,
    /// The pinned toolchain's packages as files (a hermetic build with no network): each
    /// matched to its manifest package by sha256, then unpacked into the cache.
    pub packages: Vec<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            choice: "auto".into(),
            clang: None,
            llc: None,
            require_llvm: None,
            packages: Vec::new(),
        }
    }
}

/// A pinned toolchain by name, or a manifest file; anything else is a usage error naming the
/// pinned ones.
pub fn manifest(name: &str) -> Result<Manifest> {
    if let Some(m) = Manifest::named(name) {
        return Ok(m);
    }
    let p = std::path::Path::new(name);
    if p.is_file() {
        let text = std::fs::read_to_string(p).map_err(Error::read(p))?;
        return serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("toolchain manifest `{name}`: {e}")));
    }
    let names: Vec<String> = Manifest::embedded().into_iter().map(|m| m.name).collect();
    Err(Error::Usage(format!(
        "unknown toolchain `{name}` (pinned: {}; or `host`, or a manifest file)",
        names.join(", ")
    )))
}

/// Fetches (once, into the cache) and opens a pinned toolchain.
pub fn pinned(m: &Manifest, s: &Session, rep: &dyn Reporter) -> Result<Toolchain> {
    let mirror = s.mirrors.resolve(&s.catalog, &m.mirror)?;
    rep.phase(&m.name, Phase::Download);
    let root = toolchain::fetch(m, &s.client, &mirror);
    rep.done(&m.name);
    Ok(Toolchain::pinned(m, &root?)?)
}

/// A pinned toolchain from its package files: every file matched to a manifest package by
/// sha256 and every package to a file (either missing is a usage error naming it), unpacked
/// into the cache as [`toolchain::fetch`] does after downloading.
pub fn from_files(
    m: &Manifest,
    files: &[std::path::PathBuf],
    cache_dir: &std::path::Path,
    rep: &dyn Reporter,
) -> Result<Toolchain> {
    super::need_files("toolchain package", files)?;
    let mut by_digest = std::collections::BTreeMap::new();
    for f in files {
        let digest = crate::base::sha256_file(f).map_err(Error::read(f))?;
        if !m.packages.iter().any(|p| p.sha256 == digest) {
            return Err(Error::Usage(format!(
                "toolchain package `{}` (sha256 {digest}) is none of the packages of `{}`",
                f.display(),
                m.name
            )));
        }
        by_digest.insert(digest, f.clone());
    }
    let ordered = m
        .packages
        .iter()
        .map(|p| {
            by_digest.get(&p.sha256).cloned().ok_or_else(|| {
                Error::Usage(format!(
                    "--toolchain-packages lacks `{}` of `{}` ({}, sha256 {})",
                    p.name, m.name, p.filename, p.sha256
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    rep.phase(&m.name, Phase::Unpack);
    let root = toolchain::install(m, &ordered, cache_dir);
    rep.done(&m.name);
    Ok(Toolchain::pinned(m, &root?)?)
}

/// The toolchain `o` means. A session is opened only when a pinned toolchain must be fetched.
/// What cannot be had is a usage error (exit 2): the environment lacks it.
pub fn resolve(o: &Options, net: &session::Options, rep: &dyn Reporter) -> Result<Toolchain> {
    resolve_inner(o, net, rep).map_err(|e| match e {
        Error::Usage(_) => e,
        e => Error::Usage(super::chain(&e)),
    })
}

fn resolve_inner(o: &Options, net: &session::Options, rep: &dyn Reporter) -> Result<Toolchain> {
    let explicit = o.clang.is_some() || o.llc.is_some();
    let pinned_choice = o.choice != "host" && o.choice != "auto";
    if !o.packages.is_empty() && (!pinned_choice || explicit) {
        return Err(Error::Usage(
            "--toolchain-packages are the packages of a pinned toolchain: name it with --toolchain NAME (or a manifest file), without --clang/--llc".into(),
        ));
    }
    let tc = if !o.packages.is_empty() {
        let cache = net
            .cache_dir
            .clone()
            .unwrap_or_else(crate::http::default_cache_dir);
        from_files(&manifest(&o.choice)?, &o.packages, &cache, rep)?
    } else if o.choice == "host" || o.choice == "auto" && explicit {
        Toolchain::find(o.clang.as_deref(), o.llc.as_deref())?
    } else if o.choice == "auto" {
        match Toolchain::find(None, None) {
            Ok(tc) => tc,
            Err(why) => {
                let m = Manifest::for_host().ok_or_else(|| {
                    Error::Usage(format!(
                        "{why}; and no pinned toolchain runs on {} (see `probeforge toolchain list`)",
                        Arch::host().map_or("this machine".into(), |a| a.to_string())
                    ))
                })?;
                let s = Session::open(net)?;
                let cached = toolchain::root_in_cache(&m, &s.client.config().cache_dir)
                    .join(".complete")
                    .is_file();
                rep.note(&format!(
                    "no usable clang/llc on this host ({why}): building with the pinned toolchain `{}` (LLVM {}){}",
                    m.name,
                    m.llvm_version,
                    if cached { "" } else { ", fetching it into the cache once" }
                ));
                pinned(&m, &s, rep)?
            }
        }
    } else {
        if explicit {
            return Err(Error::Usage(format!(
                "--toolchain {} pins clang and llc; it cannot be combined with --clang/--llc or CLANG/LLC",
                o.choice
            )));
        }
        let m = manifest(&o.choice)?;
        pinned(&m, &Session::open(net)?, rep)?
    };
    if let Some(v) = &o.require_llvm {
        tc.require(v)?;
    }
    Ok(tc)
}
