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
            Ok(v) => all.extend(v.into_iter().filter(|k| k.has_flavour(&s.flavours))),
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
    /// The name asked for, when it was not the kernel's `uname -r`, and which of its names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named_as: Option<NamedAs>,
}

#[derive(Debug, serde::Serialize)]
pub struct NamedAs {
    pub name: String,
    pub form: crate::names::Form,
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
    // The whole set, kbuild's package included (the host's build of it).
    let got = s.kernel(&session::KernelSpec {
        target: Some(target.to_owned()),
        from: None,
        kernel: kernel.to_owned(),
        arch: Some(arch),
        with_kbuild: true,
    });
    rep.done(kernel);
    let got = got?;
    super::report_passed_over(&got.passed_over, rep);
    super::report_named_as(&got, rep);
    let mut files = Vec::new();
    for (p, f) in got.record.packages.iter().zip(&got.headers) {
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
        named_as: got.named_as.map(|(name, form)| NamedAs { name, form }),
        kernel: got.record,
        files,
    })
}

/// The probe `exists` asks about: Falco's three parts of its file name.
#[derive(Debug, Clone)]
pub struct Probe<'a> {
    pub target_id: &'a str,
    /// Falco's file release, or any other name of the kernel (`uname -r`, its header package).
    pub kernel_release: &'a str,
    pub kernel_version: &'a str,
}

/// Whether a repository has a probe. A repository that cannot be asked is a usage error. A
/// kernel named otherwise than Falco's file names it (`uname -r` of a Debian kernel) is looked
/// up under its file name too, found in the listing of the catalog's targets of that target id
/// (said on the reporter).
pub fn exists(
    net: &session::Options,
    repo: &str,
    driver_version: &str,
    arch: Arch,
    probe: &Probe,
    rep: &dyn Reporter,
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
    let look = |release: &str| {
        let file = crate::pipeline::probe_file_name(probe.target_id, release, probe.kernel_version);
        repo.exists(Some(&s.client), driver_version, arch.uname_m(), &file)
            .map_err(|e| Error::Usage(super::chain(&e)))
    };
    if look(probe.kernel_release)? {
        return Ok(true);
    }
    // The catalog's targets of this target id (`ubuntu` for `ubuntu-generic`), the one named
    // as the id first (`debian`: every Debian release).
    let mut targets: Vec<&str> = s
        .catalog
        .targets
        .iter()
        .filter(|t| probe.target_id.starts_with(t.target_id.as_str()))
        .map(|t| t.name.as_str())
        .collect();
    targets.sort_by_key(|t| *t != probe.target_id);
    for t in targets {
        let listed = match s.lister().list(t, &[arch]) {
            Ok(all) => all,
            Err(e) => {
                tracing::info!("{t}: {}", super::chain(&e));
                continue;
            }
        };
        let listed: Vec<KernelRecord> = listed
            .into_iter()
            .filter(|k| k.target_id == probe.target_id)
            .collect();
        let Some((release, form)) = crate::names::resolve(&listed, probe.kernel_release)
            .map_err(|e| Error::Usage(e.to_string()))?
        else {
            continue;
        };
        let k = listed.iter().find(|k| k.release == release);
        let file_release = k.map(KernelRecord::file_release).unwrap_or(release);
        if file_release == probe.kernel_release {
            return Ok(false);
        }
        rep.note(&format!(
            "`{}` ({form}) is Falco's `{file_release}` in `{t}`",
            probe.kernel_release
        ));
        return look(&file_release);
    }
    Ok(false)
}

/// The `uname -r` a kernel name means, for a command that holds a file to it (`validate
/// --kernel-release`). With `target`, any name its listing knows (`uname -r`, Falco's file
/// release `6.1.176-1-amd64`, the header package or its file name) is that kernel's `uname -r`,
/// said on the reporter; a name it does not know is a usage error. Without, a header package's
/// name or file name (`linux-headers-R`, `linux-headers-R_V_amd64.deb`) is `R`, offline, and any
/// other name is taken as `uname -r`.
pub fn kernel_release_of(
    net: &session::Options,
    name: &str,
    target: Option<&str>,
    arch: Option<Arch>,
    rep: &dyn Reporter,
) -> Result<String> {
    if let Some(t) = target {
        let s = Session::open(net)?;
        let arches = arch.map_or_else(|| vec![Arch::X86_64, Arch::Aarch64], |a| vec![a]);
        let (listed, _) = list_targets(&s, &[t.to_owned()], &arches, rep)?;
        return match crate::names::resolve(&listed, name).map_err(|e| Error::Usage(e.to_string()))? {
            Some((r, form)) => {
                if r != name {
                    rep.note(&format!("`{name}` ({form}) is kernel `{r}` in `{t}`"));
                }
                Ok(r)
            }
            None => Err(Error::Usage(format!(
                "no kernel `{name}` in `{t}` (by `uname -r`, Falco's file release or header package)"
            ))),
        };
    }
    match name
        .strip_prefix("linux-headers-")
        .and_then(|rest| rest.split('_').next())
        .filter(|r| !r.is_empty())
    {
        Some(r) => {
            rep.note(&format!(
                "`{name}` ({}) is kernel `{r}`",
                crate::names::Form::HeaderPackage
            ));
            Ok(r.to_owned())
        }
        None => Ok(name.to_owned()),
    }
}
