//! `probeforge site`: writes the repository's static site ([`crate::site`]) from its records
//! and the kernels its targets ship. The shipped list it used is kept in the repository
//! (`.probeforge/site/kernels.json`), so a later `site --repo DIR` without targets still shows
//! the kernels not built yet. `build-all --site` calls [`write`] with its batch and times.

use std::path::{Path, PathBuf};

use crate::kernel::Arch;
use crate::publish::LocalRepo;
use crate::report::Reporter;
use crate::session::{self, Session};
use crate::site::{self, Shipped, Times};

use super::{Error, Result};

/// What `probeforge site` is asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The local repository the site is written into.
    pub repo: PathBuf,
    /// Catalog targets whose listings give the shipped kernels.
    pub targets: Vec<String>,
    /// A plan (`build-all --plan --json`) or a kernel-crawler list of shipped kernels.
    pub from: Option<PathBuf>,
    /// `None`: both.
    pub arch: Option<Arch>,
}

/// Where the shipped list of the last site is kept.
pub const SHIPPED_FILE: &str = ".probeforge/site/kernels.json";

/// Lists what `o` names (nothing: no listing, no network) and writes the site.
pub fn run(o: &Options, net: &session::Options, rep: &dyn Reporter) -> Result<site::Written> {
    super::need_files("kernel list", &o.from)?;
    if !o.repo.is_dir() {
        return Err(Error::Usage(format!(
            "--repo `{}` is not a directory (the site is written into a local repository)",
            o.repo.display()
        )));
    }
    super::writable_dir("repository", &o.repo)?;
    let arches = match o.arch {
        Some(a) => vec![a],
        None => vec![Arch::X86_64, Arch::Aarch64],
    };
    let mut listed = Vec::new();
    if let Some(f) = &o.from {
        listed = super::read_list(f, &arches)?;
    }
    if !o.targets.is_empty() {
        let s = Session::open(net)?;
        let (more, failed) = super::query::list_targets(&s, &o.targets, &arches, rep)?;
        if failed {
            // A half-listed target would show its kernels as gone: keep the old list instead.
            return Err(Error::Usage(
                "a target could not be listed (see the warning): the site was not written".into(),
            ));
        }
        listed.extend(more);
    }
    let shipped: Vec<Shipped> = listed.iter().map(Shipped::from).collect();
    write(&o.repo, &o.targets, shipped, None)
}

/// Writes the site of the repository at `root`: `shipped` (the kernels just listed; those of
/// `targets` replace what the kept list had of them) merged into the kept list, and the run's
/// `times` when a batch has them.
pub fn write(
    root: &Path,
    targets: &[String],
    shipped: Vec<Shipped>,
    times: Option<Times>,
) -> Result<site::Written> {
    let repo = LocalRepo::new(root);
    let kept_path = root.join(SHIPPED_FILE);
    let mut kept: Vec<Shipped> = match std::fs::read(&kept_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            Error::Usage(format!(
                "`{}` is not a shipped-kernel list: {e}",
                kept_path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::read(&kept_path)(e)),
    };
    // A listing is the whole of its target: kernels it no longer lists go.
    kept.retain(|k| !targets.contains(&k.target));
    kept.extend(shipped);
    kept.sort();
    kept.dedup();
    let bytes = serde_json::to_vec_pretty(&kept).expect("serializable");
    crate::base::write_atomic(&kept_path, &bytes).map_err(Error::write(&kept_path))?;
    let input = site::Input {
        probes: repo.entries()?,
        failures: repo.failures()?,
        shipped: kept,
        times,
        generated: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .map(|_| crate::base::timestamp()),
    };
    Ok(site::write(root, &input)?)
}
