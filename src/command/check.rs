//! `probeforge check`: is a published repository what its records say, and `--repair` from
//! those records.

use std::path::{Path, PathBuf};

use crate::check::{self, Repair, Report};
use crate::session::{self, Session};
use crate::trust::Keyring;

use super::{need_files, Error, Result};

/// What `probeforge check` is asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A directory or an HTTP base URL.
    pub repo: String,
    pub repair: bool,
    /// With `repair`: the driver source to rebuild with.
    pub driver_source: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub scratch: Option<PathBuf>,
    /// With `repair`: the clang/llc to rebuild with.
    pub toolchain: super::toolchain::Options,
    /// Verify every kernel module's signature against this certificate (a local repository).
    pub sign_cert: Option<PathBuf>,
}

/// What was found, what was repaired, and what is left.
#[derive(Debug)]
pub struct Checked {
    /// Before any repair.
    pub found: Report,
    pub repairs: Vec<Repair>,
    /// After the repairs (the same as `found` without them).
    pub report: Report,
}

/// Checks (and repairs) a repository. The session's keyrings check each `SHA256SUMS.asc`.
pub fn run(
    o: &Options,
    net: &session::Options,
    rep: &dyn crate::report::Reporter,
) -> Result<Checked> {
    let url = check::is_url(&o.repo);
    if !url {
        need_files("repository", [&PathBuf::from(&o.repo)])?;
    }
    if o.repair && url {
        return Err(Error::Usage(
            check::Error::RepairRemote(o.repo.clone()).to_string(),
        ));
    }
    need_files("driver source", &o.driver_source)?;
    let mut keyring: Option<Keyring> = None;
    for k in &net.keyrings {
        need_files("keyring", [k])?;
        let bytes = std::fs::read(k).map_err(Error::read(k))?;
        let one = Keyring::parse(&bytes, &k.display().to_string())
            .map_err(|e| Error::Usage(e.to_string()))?;
        keyring.get_or_insert_with(Default::default).extend(one);
    }
    let cert = match &o.sign_cert {
        Some(_) if url => {
            return Err(Error::Usage(
                "--sign-cert verifies the modules of a local repository".into(),
            ))
        }
        Some(c) => Some(crate::kmod::sign::Cert::from_file(c)?),
        None => None,
    };
    let s = Session::open(net)?;
    // Every module's signature, with --sign-cert.
    let signatures = |r: &mut Report| -> Result<()> {
        let Some(c) = &cert else { return Ok(()) };
        let n = check::module_signatures(Path::new(&o.repo), c, r)?;
        let said = format!(
            "{n} module signature(s) checked against `{}`",
            c.identity.subject
        );
        r.note = Some(match r.note.take() {
            Some(n) => format!("{n}; {said}"),
            None => said,
        });
        Ok(())
    };
    let mut found = check::check(&o.repo, Some(&s.client), keyring.as_ref())?;
    signatures(&mut found)?;
    if !o.repair || found.problems.is_empty() {
        return Ok(Checked {
            report: found.clone(),
            found,
            repairs: Vec::new(),
        });
    }
    let tc = super::toolchain::resolve(&o.toolchain, net, rep)?;
    let lister = s.lister();
    let env = check::RepairEnv {
        lister: &lister,
        toolchain: &tc,
        driver_source: o.driver_source.clone(),
        jobs: o.jobs.unwrap_or_else(super::default_jobs),
        scratch: o.scratch.clone(),
    };
    let repairs = check::repair(Path::new(&o.repo), &found, &env)?;
    let mut report = check::check(&o.repo, Some(&s.client), keyring.as_ref())?;
    signatures(&mut report)?;
    Ok(Checked {
        found,
        repairs,
        report,
    })
}
