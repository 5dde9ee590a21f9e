//! `probeforge build`: one probe for one kernel, from header files or a target's repository,
//! optionally proven in its kernel's VM, with a provenance statement.

use std::path::PathBuf;

use crate::kernel::Arch;
use crate::patch::Catalog;
use crate::pipeline::{self, Output};
use crate::report::{Phase, Reporter};
use crate::session::{self, KernelSpec, Session};

use super::{need_files, Error, Result};

/// What `probeforge build` is asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Header packages or one directory (instead of `target`/`from`).
    pub headers: Vec<PathBuf>,
    /// A catalog target to take the kernel from.
    pub target: Option<String>,
    /// A kernel-crawler list to take the kernel from.
    pub from: Option<PathBuf>,
    /// With `target` or `from`: a release, or `latest`.
    pub kernel: String,
    /// Which kernel, when the header files hold several.
    pub kernel_release: Option<String>,
    pub driver_source: Option<PathBuf>,
    pub driver_version: Option<String>,
    /// Base URL of falcosecurity/libs archives.
    pub driver_archive: Option<String>,
    pub target_id: Option<String>,
    pub kernel_version: Option<String>,
    pub arch: Option<Arch>,
    pub output: PathBuf,
    pub scratch: Option<PathBuf>,
    /// A patch directory replacing the embedded `driver-patches/`.
    pub patches: Option<PathBuf>,
    pub provenance: Option<PathBuf>,
    /// Boot the kernel with the probe before saying it is built.
    pub verify: bool,
    pub kernel_image: Option<PathBuf>,
}

/// What a build made.
#[derive(Debug)]
pub struct Built {
    pub output: Output,
    /// The VM's verdict, with `verify`.
    pub verdict: Option<super::verify::OneVerdict>,
}

/// Builds (and with `verify`, proves) one probe. A verdict that is not ok is returned, not an
/// error: the probe was built.
pub fn run(
    o: &Options,
    net: &session::Options,
    tc: &crate::toolchain::Toolchain,
    rep: &dyn Reporter,
) -> Result<Built> {
    need_files("header package", &o.headers)?;
    need_files("driver source", &o.driver_source)?;
    need_files("kernel list", &o.from)?;
    need_files("kernel image", &o.kernel_image)?;
    let from_repo = o.target.is_some() || o.from.is_some();
    let session = if from_repo || o.driver_source.is_none() {
        Some(Session::open(net)?)
    } else {
        None
    };
    let mut unsigned_metadata = false;
    let mut header_digests = Vec::new();
    let (headers, kernel_release, target_id, kernel_version) = match &session {
        Some(s) if from_repo => {
            rep.phase(&o.kernel, Phase::Download);
            let got = s.kernel(&KernelSpec {
                target: o.target.clone(),
                from: o.from.clone(),
                kernel: o.kernel.clone(),
                arch: o.arch,
            })?;
            rep.done(&o.kernel);
            super::report_passed_over(&got.passed_over, rep);
            header_digests = got.header_digests();
            let k = got.record;
            unsigned_metadata = k.unsigned_metadata;
            if o.target.is_some() {
                rep.note(&format!(
                    "kernel {} ({}) from {}: {} header packages",
                    k.release,
                    k.arch,
                    k.origin,
                    k.packages.len()
                ));
            }
            (
                got.headers,
                Some(k.release),
                o.target_id.clone().or(Some(k.target_id)),
                o.kernel_version.clone().or(Some(k.kernel_version)),
            )
        }
        _ => (
            o.headers.clone(),
            o.kernel_release.clone(),
            o.target_id.clone(),
            o.kernel_version.clone(),
        ),
    };
    let (driver_source, driver_version) = match (&session, &o.driver_source) {
        (_, Some(p)) => (p.clone(), o.driver_version.clone()),
        (Some(s), None) => s.driver(
            None,
            o.driver_version.as_deref(),
            o.driver_archive.as_deref(),
        )?,
        (None, None) => unreachable!("a session is opened when no driver source is given"),
    };
    let patches = match &o.patches {
        Some(d) => Catalog::from_dir(d).map_err(|source| Error::Patches {
            path: d.clone(),
            source,
        })?,
        None => Catalog::embedded(),
    };
    let scratch = o.scratch.clone().unwrap_or_else(pipeline::default_scratch);
    // With --verify the driver serves twice (the probe, then its event tables): unpacked once.
    let work = tempfile::Builder::new()
        .prefix("probeforge-build-")
        .tempdir_in(&scratch)
        .map_err(Error::write(&scratch))?;
    let (driver_source, driver_digest) = match o.verify {
        true => {
            let (dir, digest) = crate::farm::prepare_driver_source(&driver_source, work.path())?;
            (dir, Some(digest))
        }
        false => (driver_source, None),
    };
    let req = pipeline::Request {
        headers,
        kernel_release,
        driver_source,
        driver_version,
        target_id,
        kernel_version,
        arch: o.arch,
        out_dir: o.output.clone(),
        scratch: Some(scratch.clone()),
        driver_digest,
        header_digests,
    };
    rep.phase(
        req.kernel_release.as_deref().unwrap_or("kernel"),
        Phase::Compile,
    );
    let out = pipeline::build(&req, tc, &patches);
    rep.done(req.kernel_release.as_deref().unwrap_or("kernel"));
    let out = out?;
    let mut verdict = None;
    if o.verify {
        let image = match (&o.kernel_image, &o.target, &session) {
            (Some(i), _, _) => i.clone(),
            (None, Some(t), Some(s)) => {
                super::verify::kernel_image_for(s, t, out.kernel.arch, &out.kernel.release)?
            }
            _ => {
                return Err(Error::Usage(
                    "--verify needs --kernel-image when the headers are files".into(),
                ))
            }
        };
        let bytes = std::fs::read(&out.path).map_err(Error::read(&out.path))?;
        let tables_work = work.path().join("tables");
        std::fs::create_dir_all(&tables_work).map_err(Error::write(&tables_work))?;
        let tables = crate::verify::events::driver_tables(
            &req.driver_source,
            out.kernel.arch,
            tc,
            &tables_work,
        )
        .map_err(Error::tables)?;
        rep.phase(&out.kernel.release, Phase::Boot);
        let v = super::verify::one(&image, &out.file_name, bytes, Some(tables));
        rep.done(&out.kernel.release);
        let v = v?;
        let proven = v.judgement.ok;
        verdict = Some(v);
        if !proven {
            // Not proven: no provenance statement for it.
            return Ok(Built {
                output: out,
                verdict,
            });
        }
    }
    if let Some(p) = &o.provenance {
        let mut v = pipeline::provenance(&out, tc);
        if unsigned_metadata {
            // Say it where a reviewer looks: the headers' listing was not signed by a key
            // probeforge trusts (--allow-unsigned, or a kernel-crawler list).
            v["predicate"]["repository_metadata"] = serde_json::json!({"signed": false});
        }
        let text = serde_json::to_vec_pretty(&v).expect("JSON values serialize");
        crate::base::write_atomic(p, &text).map_err(Error::write(p))?;
    }
    Ok(Built {
        output: out,
        verdict,
    })
}

impl Built {
    /// Whether the probe is built and, when it was verified, proven.
    pub fn ok(&self) -> bool {
        self.verdict.as_ref().is_none_or(|v| v.judgement.ok)
    }
}
