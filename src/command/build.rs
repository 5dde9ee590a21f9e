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
    /// The probe (default) or the kernel module.
    pub driver: Driver,
    /// `make -j` for a module (`None`: every CPU).
    pub jobs: Option<usize>,
}

/// Which driver a build makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Driver {
    /// The legacy eBPF probe (`falco_*.o`): clang and llc.
    #[default]
    Ebpf,
    /// The kernel module (`falco_*.ko`): kbuild with the kernel's own gcc.
    Kmod,
}

impl std::str::FromStr for Driver {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Driver, String> {
        match s {
            "ebpf" | "bpf" | "probe" => Ok(Driver::Ebpf),
            "kmod" | "module" => Ok(Driver::Kmod),
            _ => Err(format!("unknown driver `{s}` (ebpf, kmod)")),
        }
    }
}

/// What a build made.
#[derive(Debug)]
pub struct Built {
    pub product: Product,
    /// The VM's verdict, with `verify`.
    pub verdict: Option<super::verify::OneVerdict>,
}

/// A probe, or a kernel module.
#[derive(Debug)]
pub enum Product {
    Probe(Box<Output>),
    Module(Box<BuiltModule>),
}

/// A kernel module written to the output directory, validated against its kernel.
#[derive(Debug, serde::Serialize)]
pub struct BuiltModule {
    #[serde(flatten)]
    pub module: crate::kmod::Module,
    pub path: PathBuf,
    /// The kernel's `Module.symvers` symbols the module was checked against.
    pub symbols_checked: usize,
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
                with_kbuild: o.driver == Driver::Kmod,
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
    if o.driver == Driver::Kmod {
        let m = module(
            o,
            net,
            session.as_ref(),
            &headers,
            &driver_source,
            rep,
            ModuleFacts {
                driver_version: driver_version.as_deref(),
                target_id: target_id.as_deref(),
                kernel_release: kernel_release.as_deref(),
            },
        )?;
        return Ok(Built {
            product: Product::Module(Box::new(m)),
            verdict: None,
        });
    }
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
                product: Product::Probe(Box::new(out)),
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
        product: Product::Probe(Box::new(out)),
        verdict,
    })
}

impl Built {
    /// Whether the probe is built and, when it was verified, proven.
    pub fn ok(&self) -> bool {
        self.verdict.as_ref().is_none_or(|v| v.judgement.ok)
    }
}

/// What the request says of the kernel and driver, before the headers are unpacked.
struct ModuleFacts<'a> {
    driver_version: Option<&'a str>,
    target_id: Option<&'a str>,
    kernel_release: Option<&'a str>,
}

/// Builds the kernel module: the kernel's packages unpacked whole (kbuild's tools included),
/// its own compiler (pinned by digest, or the host's with the very same version text), kbuild,
/// validation against the kernel's `Module.symvers`; the `.ko` written into `o.output`.
fn module(
    o: &Options,
    net: &session::Options,
    session: Option<&Session>,
    headers: &[PathBuf],
    driver_source: &std::path::Path,
    rep: &dyn Reporter,
    facts: ModuleFacts,
) -> Result<BuiltModule> {
    use crate::kmod::{self, gcc, Compiler, CompilerSource, GccManifest, KernelCompiler};
    if o.verify {
        return Err(Error::Usage(
            "--verify boots probes; proving a kernel module in its VM is not built yet".into(),
        ));
    }
    let scratch = o.scratch.clone().unwrap_or_else(pipeline::default_scratch);
    let work = tempfile::Builder::new()
        .prefix("probeforge-kmod-")
        .tempdir_in(&scratch)
        .map_err(Error::write(&scratch))?;
    let subject = facts.kernel_release.unwrap_or("kernel").to_owned();
    rep.phase(&subject, Phase::Unpack);
    let staged = kmod::kbuild::stage_kernel(headers, &work.path().join("root"));
    rep.done(&subject);
    let tree = staged?;
    if let Some(r) = facts.kernel_release.filter(|r| *r != tree.release) {
        return Err(Error::Usage(format!(
            "the headers are kernel `{}`, not `{r}`",
            tree.release
        )));
    }
    if let Some(a) = o.arch.filter(|a| *a != tree.arch) {
        return Err(Error::Usage(format!(
            "kernel `{}` is {}, but {a} was asked for",
            tree.release, tree.arch
        )));
    }
    let target_id = match facts.target_id {
        Some(t) => t.to_owned(),
        None => pipeline::default_target_id(&tree).ok_or_else(|| {
            Error::Usage(format!(
                "kernel `{}`: cannot tell the target id from the headers: pass --target-id",
                tree.release
            ))
        })?,
    };
    let driver = crate::driver::open(driver_source, work.path())?;
    let want = KernelCompiler::of(&tree)?;
    let compiler = match gcc::choose(&want, tree.arch, &GccManifest::embedded())? {
        CompilerSource::Host(path) => Compiler::host(&path, &want)?,
        CompilerSource::Pinned(m) => {
            let opened;
            let s = match session {
                Some(s) => s,
                None => {
                    opened = Session::open(net)?;
                    &opened
                }
            };
            rep.phase(&m.name, Phase::Download);
            let root = gcc::fetch(&m, &s.client, &s.catalog, &s.mirrors);
            rep.done(&m.name);
            Compiler::pinned(&m, &root?, &want)?
        }
    };
    rep.phase(&tree.release, Phase::Compile);
    let built = kmod::build(&kmod::KmodRequest {
        tree: &tree,
        driver: &driver,
        driver_version: facts.driver_version,
        compiler: &compiler,
        target_id: &target_id,
        scratch: &work.path().join("build"),
        jobs: o.jobs.unwrap_or_else(super::default_jobs),
    });
    rep.done(&tree.release);
    let module = built?;
    rep.phase(&tree.release, Phase::Validate);
    let symvers_path = tree.objtree.join("Module.symvers");
    let symvers = std::fs::read_to_string(&symvers_path).map_err(Error::read(&symvers_path))?;
    let symvers = kmod::Symvers::parse(&symvers);
    let checked = kmod::validate(&module.bytes, &tree, &symvers);
    rep.done(&tree.release);
    checked?;
    let path = o.output.join(&module.file_name);
    crate::base::write_atomic(&path, &module.bytes).map_err(Error::write(&path))?;
    if let Some(p) = &o.provenance {
        let v = serde_json::json!({
            "subject": [{"name": module.file_name, "digest": {"sha256": module.sha256}}],
            "builder": {"compiler": module.compiler, "compiler_text": module.compiler_text},
            "kernel": {"release": module.kernel_release, "vermagic": module.vermagic},
            "driver": {"version": module.driver_version, "sha256": driver.sha256},
        });
        let text = serde_json::to_vec_pretty(&v).expect("JSON values serialize");
        crate::base::write_atomic(p, &text).map_err(Error::write(p))?;
    }
    Ok(BuiltModule {
        symbols_checked: symvers.len(),
        module,
        path,
    })
}
