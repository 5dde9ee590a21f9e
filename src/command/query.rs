//! The commands that read repositories without building: `list-kernels`, `fetch`, `exists`.

use std::path::PathBuf;

use crate::kernel::Arch;
use crate::repo::KernelRecord;
use crate::report::{Phase, Reporter};
use crate::session::{self, Session};

use super::{Error, Result};

/// Lists several targets; an unknown target is a usage error, a target that cannot be listed
/// is reported (a warning) and the others go on (the bool says whether any failed).
pub fn list_targets(
    s: &Session,
    targets: &[String],
    arches: &[Arch],
    rep: &dyn Reporter,
) -> Result<(Vec<KernelRecord>, bool)> {
    let mut all = Vec::new();
    let mut failed = false;
    for t in targets {
        match s.lister().list(t, arches) {
            Ok(v) => all.extend(v),
            // What the request got wrong (an unknown target, unreadable keys, a listing
            // `--offline` does not have) stops the command; a repository that fails is said.
            Err(e) if super::repo_usage(&e) => return Err(Error::Usage(super::chain(&e))),
            Err(e) => {
                rep.warn(&format!("{t}: {}", super::chain(&e)));
                failed = true;
            }
        }
    }
    Ok((all, failed))
}

/// One kernel's header packages, verified, and where they are.
#[derive(Debug, serde::Serialize)]
pub struct Fetched {
    pub kernel: KernelRecord,
    pub files: Vec<FetchedFile>,
}

#[derive(Debug, serde::Serialize)]
pub struct FetchedFile {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub path: PathBuf,
}

/// Downloads and verifies a kernel's header packages; copies them into `output` when given.
pub fn fetch(
    net: &session::Options,
    target: &str,
    arch: Arch,
    kernel: &str,
    output: Option<&std::path::Path>,
    rep: &dyn Reporter,
) -> Result<Fetched> {
    if let Some(dir) = output {
        super::writable_dir("output directory", dir)?;
    }
    let s = Session::open(net)?;
    rep.phase(kernel, Phase::Download);
    let got = s.lister().fetch_kernel(target, arch, kernel, false);
    rep.done(kernel);
    let got = got?;
    super::report_passed_over(&got.unavailable, rep);
    let mut files = Vec::new();
    for (p, f) in got.kernel.packages.iter().zip(&got.files) {
        let path = match output {
            Some(dir) => {
                let name = p.url.rsplit('/').next().unwrap_or(&p.name);
                let d = dir.join(name);
                let bytes = std::fs::read(f).map_err(Error::read(f))?;
                crate::base::write_atomic(&d, &bytes).map_err(Error::write(&d))?;
                d
            }
            None => f.clone(),
        };
        files.push(FetchedFile {
            name: p.name.clone(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
            path,
        });
    }
    Ok(Fetched {
        kernel: got.kernel,
        files,
    })
}

/// Whether a repository has a probe. A repository that cannot be asked is a usage error.
pub fn exists(
    net: &session::Options,
    repo: &str,
    driver_version: &str,
    arch: Arch,
    file: &str,
) -> Result<bool> {
    let repo = crate::publish::Repo::parse(repo);
    if let crate::publish::Repo::Local(l) = &repo {
        if !l.root.is_dir() {
            return Err(Error::Usage(format!(
                "repository `{}` is not a directory",
                l.root.display()
            )));
        }
    }
    let s = Session::open(net)?;
    repo.exists(Some(&s.client), driver_version, arch.uname_m(), file)
        .map_err(|e| Error::Usage(super::chain(&e)))
}
