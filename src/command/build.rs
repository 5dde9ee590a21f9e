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
    /// The module's and its devices' name (`None`: Falco's, `falco`).
    pub module_name: Option<String>,
    /// `--driver kmod`: sign the module with this key and certificate, as the kernel's
    /// `sign-file` does, with the kernel's `CONFIG_MODULE_SIG_HASH`.
    pub module_sign_key: Option<PathBuf>,
    pub module_sign_cert: Option<PathBuf>,
    /// A kernel source tarball (or a package holding one) and a `.config` (or the kernel image
    /// package shipping one), instead of headers: the tree is prepared from them (see
    /// [`crate::vanilla`]) for `kernel_release`.
    pub kernel_source: Option<PathBuf>,
    pub kernel_config: Option<PathBuf>,
    /// With `kernel_source`: the kernel release in Falco's file name, where it is not
    /// `uname -r` (a Flatcar kernel is named by its Flatcar release).
    pub file_release: Option<String>,
    /// driverkit's config and flags (`command::driverkit::build` reads them; `run` only
    /// records the URLs it fetched unauthenticated).
    pub driverkit: crate::driverkit::Request,
    /// Replace a different file already under the output's name (without it: refused).
    pub force: bool,
}

pub use crate::pipeline::Driver;

/// What a build made.
#[derive(Debug)]
pub struct Built {
    pub product: Product,
    /// The VM's verdict, with `verify`.
    pub verdict: Option<super::verify::OneVerdict>,
    /// A driverkit config's pinned packages that the signed listing replaced.
    pub replaced: Vec<crate::driverkit::Replacement>,
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
    // An output that cannot be written is found before anything is downloaded or compiled.
    super::writable_dir("output directory", &o.output)?;
    if let Some(dir) = o.provenance.as_deref().and_then(std::path::Path::parent) {
        if !dir.as_os_str().is_empty() {
            super::writable_dir("provenance directory", dir)?;
        }
    }
    let from_repo = o.target.is_some() || o.from.is_some();
    let session = if from_repo || o.driver_source.is_none() {
        Some(Session::open(net)?)
    } else {
        None
    };
    // Headers from a driverkit config's URLs that no signed listing gave a digest for.
    let mut unsigned_metadata = !o.driverkit.unauthenticated.is_empty();
    let mut header_digests = Vec::new();
    // Falco's file name of a kernel built from source, where it is not `uname -r` (Flatcar).
    let mut file_release = None;
    let mut source_built = false;
    // The catalog target that listed the kernel: its indexes hold the kernel's compiler.
    let mut catalog_target = None;
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
            super::report_named_as(&got, rep);
            header_digests = got.header_digests();
            let k = got.record;
            unsigned_metadata |= k.unsigned_metadata;
            catalog_target = Some(k.target.clone());
            if o.target.is_some() {
                rep.note(&format!(
                    "kernel {} ({}) from {}: {} header packages",
                    k.release,
                    k.arch,
                    k.origin,
                    k.packages.len()
                ));
            }
            let (headers, release) = match k.from_source() {
                true => {
                    source_built = true;
                    header_digests.clear();
                    file_release = Some(k.file_release()).filter(|r| *r != k.release);
                    let (source, config) = source_and_config(o, &k, &got.headers)?;
                    let release = o.kernel_release.clone().unwrap_or(k.release);
                    let tree = prepared_tree(o, &source, &config, Some(release), net, rep)?;
                    (vec![tree.tree], tree.release)
                }
                false => (got.headers, k.release),
            };
            (
                headers,
                Some(release),
                o.target_id.clone().or(Some(k.target_id)),
                o.kernel_version.clone().or(Some(k.kernel_version)),
            )
        }
        _ => match (&o.kernel_source, &o.kernel_config) {
            (Some(source), Some(config)) => {
                let release = o.kernel_release.clone();
                let tree = prepared_tree(o, source, config, release, net, rep)?;
                file_release = o.file_release.clone();
                source_built = true;
                (
                    vec![tree.tree],
                    Some(tree.release),
                    o.target_id.clone(),
                    o.kernel_version.clone(),
                )
            }
            _ => (
                o.headers.clone(),
                o.kernel_release.clone(),
                o.target_id.clone(),
                o.kernel_version.clone(),
            ),
        },
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
        let (m, verdict) = module(
            o,
            net,
            session.as_ref(),
            tc,
            &headers,
            &driver_source,
            rep,
            ModuleFacts {
                driver_version: driver_version.as_deref(),
                target_id: target_id.as_deref(),
                kernel_release: kernel_release.as_deref(),
                catalog_target: catalog_target.as_deref(),
                kernel_version: kernel_version.as_deref(),
                source_tree: source_built,
                file_release: file_release.as_deref(),
            },
        )?;
        return Ok(Built {
            product: Product::Module(Box::new(m)),
            verdict,
            replaced: Vec::new(),
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
        file_release,
    };
    rep.phase(
        req.kernel_release.as_deref().unwrap_or("kernel"),
        Phase::Compile,
    );
    let out = pipeline::build_probe(&req, tc, &patches);
    rep.done(req.kernel_release.as_deref().unwrap_or("kernel"));
    let (out, bytes) = out?;
    write_new(&out.path, &bytes, o.force)?;
    let mut verdict = None;
    if o.verify {
        let image = image_to_verify(o, session.as_ref(), out.kernel.arch, &out.kernel.release)?;
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
                replaced: Vec::new(),
            });
        }
    }
    if let Some(p) = &o.provenance {
        let mut v = pipeline::provenance(&out, tc);
        if unsigned_metadata {
            // Say it where a reviewer looks: the headers' listing was not signed by a key
            // probeforge trusts (--allow-unsigned, or a kernel-crawler list).
            v["predicate"]["repository_metadata"] = serde_json::json!({"signed": false});
            if !o.driverkit.unauthenticated.is_empty() {
                v["predicate"]["repository_metadata"]["unauthenticated"] =
                    serde_json::json!(o.driverkit.unauthenticated);
            }
        }
        let text = serde_json::to_vec_pretty(&v).expect("JSON values serialize");
        crate::base::write_atomic(p, &text).map_err(Error::write(p))?;
    }
    Ok(Built {
        product: Product::Probe(Box::new(out)),
        verdict,
        replaced: Vec::new(),
    })
}

/// Writes a built file, unless a different file is already there: never replaced silently
/// (`force` replaces it). The same bytes are left as they are.
fn write_new(path: &std::path::Path, bytes: &[u8], force: bool) -> Result<()> {
    if let Ok(old) = std::fs::read(path) {
        if old == bytes {
            return Ok(());
        }
        if !force {
            return Err(Error::WouldReplace {
                path: path.to_owned(),
                old: crate::base::sha256(&old),
                new: crate::base::sha256(bytes),
            });
        }
    }
    crate::base::write_atomic(path, bytes).map_err(Error::write(path))
}

/// The kernel image `--verify` boots: `--kernel-image`, else the kernel's own from the
/// repository of its headers.
fn image_to_verify(
    o: &Options,
    session: Option<&Session>,
    arch: crate::kernel::Arch,
    release: &str,
) -> Result<PathBuf> {
    match (&o.kernel_image, &o.target, session) {
        (Some(i), _, _) => Ok(i.clone()),
        (None, Some(t), Some(s)) => super::verify::kernel_image_for(s, t, arch, release),
        _ => Err(Error::Usage(
            "--verify needs --kernel-image when the headers are files".into(),
        )),
    }
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
    catalog_target: Option<&'a str>,
    kernel_version: Option<&'a str>,
    /// `headers` is one tree prepared from its source (see [`crate::vanilla`]).
    source_tree: bool,
    /// Falco's name of the kernel where it is not `uname -r` (Flatcar's release).
    file_release: Option<&'a str>,
}

/// Builds the kernel module: the kernel's packages unpacked whole (kbuild's tools included),
/// its own compiler (pinned by digest, or the host's with the very same version text), kbuild,
/// validation against the kernel's `Module.symvers`; the `.ko` written into `o.output`. With
/// `verify`, the module is then loaded in its kernel under QEMU and its events decoded.
#[allow(clippy::too_many_arguments)]
fn module(
    o: &Options,
    net: &session::Options,
    session: Option<&Session>,
    tc: &crate::toolchain::Toolchain,
    headers: &[PathBuf],
    driver_source: &std::path::Path,
    rep: &dyn Reporter,
    facts: ModuleFacts,
) -> Result<(BuiltModule, Option<super::verify::OneVerdict>)> {
    let signer = module_signer(o)?;
    let scratch = o.scratch.clone().unwrap_or_else(pipeline::default_scratch);
    let work = tempfile::Builder::new()
        .prefix("probeforge-kmod-")
        .tempdir_in(&scratch)
        .map_err(Error::write(&scratch))?;
    let driver = crate::driver::open(driver_source, work.path())?;
    let module_name = o
        .module_name
        .as_deref()
        .unwrap_or(crate::kmod::kbuild::MODULE_NAME);
    let jobs = o.jobs.unwrap_or_else(super::default_jobs);
    let crate::kmod::package::Built {
        mut module,
        tree,
        symbols_checked,
    } = match (facts.source_tree, headers) {
        (true, [tree]) => {
            let target_id = facts.target_id.unwrap_or("vanilla");
            let kernel_version = facts.kernel_version.ok_or_else(|| {
                Error::Usage(
                    "a kernel tree prepared from its source does not say its version (`#N` of `uname -v`): give --kernel-version".into(),
                )
            })?;
            let mut b = crate::kmod::package::build_in_tree(
                &crate::kmod::package::InTree {
                    tree,
                    driver: &driver,
                    driver_version: facts.driver_version,
                    target_id,
                    kernel_version,
                    module_name,
                    scratch: &scratch,
                    jobs,
                },
                rep,
            )?;
            if let Some(r) = facts.file_release {
                b.module.file_name = crate::kmod::module_file_name(target_id, r, kernel_version);
            }
            b
        }
        _ => {
            let opened;
            let s = match session {
                Some(s) => s,
                None => {
                    opened = Session::open(net)?;
                    &opened
                }
            };
            let compilers = s.compilers();
            crate::kmod::package::build(
                &crate::kmod::package::FromPackages {
                    packages: headers,
                    driver: &driver,
                    driver_version: facts.driver_version,
                    target_id: facts.target_id,
                    kernel_version: facts.kernel_version,
                    module_name,
                    release: facts.kernel_release,
                    arch: o.arch,
                    scratch: &scratch,
                    jobs,
                    compilers: &compilers,
                    target: facts.catalog_target,
                },
                rep,
            )?
        }
    };
    if let Some(c) = &module.symvers_computed {
        rep.note(&format!(
            "kernel {}: CRCs of {} imported symbols computed from {} objects in {:.1} s (the tree has no Module.symvers)",
            tree.release, c.computed, c.objects, c.seconds
        ));
    }
    if let Some(s) = &signer {
        crate::kmod::sign::sign_module(s, &mut module, &tree)?;
    }
    let path = o.output.join(&module.file_name);
    write_new(&path, &module.bytes, o.force)?;
    let mut verdict = None;
    if o.verify {
        let image = image_to_verify(o, session, tree.arch, &tree.release)?;
        let tables_work = work.path().join("tables");
        std::fs::create_dir_all(&tables_work).map_err(Error::write(&tables_work))?;
        let tables = crate::verify::events::module_tables(&driver.dir, tree.arch, tc, &tables_work)
            .map_err(Error::tables)?;
        rep.phase(&tree.release, Phase::Boot);
        let v = super::verify::one(
            &image,
            &module.file_name,
            module.bytes.clone(),
            Some(tables),
        );
        rep.done(&tree.release);
        verdict = Some(v?);
    }
    // Not proven: no provenance statement for it.
    let proven = verdict.as_ref().is_none_or(|v| v.judgement.ok);
    if let (Some(p), true) = (&o.provenance, proven) {
        let v = serde_json::json!({
            "subject": [{"name": module.file_name, "digest": {"sha256": module.sha256}}],
            "builder": {"compiler": module.compiler, "compiler_text": module.compiler_text},
            "kernel": {"release": module.kernel_release, "vermagic": module.vermagic},
            "driver": {"version": module.driver_version, "sha256": driver.sha256},
            "signature": module.signed_by,
        });
        let text = serde_json::to_vec_pretty(&v).expect("JSON values serialize");
        crate::base::write_atomic(p, &text).map_err(Error::write(p))?;
    }
    Ok((
        BuiltModule {
            symbols_checked,
            module,
            path,
        },
        verdict,
    ))
}

/// The module signer of `--sign-key` and `--sign-cert` (both or neither), loaded before any
/// work so a wrong key or a key of another certificate fails at once.
fn module_signer(o: &Options) -> Result<Option<crate::kmod::sign::Signer>> {
    match (&o.module_sign_key, &o.module_sign_cert) {
        (None, None) => Ok(None),
        (Some(k), Some(c)) => Ok(Some(crate::kmod::sign::Signer::from_files(k, c)?)),
        _ => Err(Error::Usage(
            "module signing needs both a key and a certificate (--sign-key and --sign-cert)".into(),
        )),
    }
}

/// The kernel tree of `--kernel-source` and `--kernel-config`, prepared once into the cache.
fn prepared_tree(
    o: &Options,
    source: &std::path::Path,
    config: &std::path::Path,
    release: Option<String>,
    net: &session::Options,
    rep: &dyn Reporter,
) -> Result<crate::vanilla::Prepared> {
    need_files("kernel source", [&source.to_path_buf()])?;
    let config = &config_file(config, net)?;
    need_files("kernel config", [config])?;
    let scratch = o
        .scratch
        .clone()
        .unwrap_or_else(crate::pipeline::default_scratch);
    let cache = net
        .cache_dir
        .clone()
        .unwrap_or_else(crate::http::default_cache_dir);
    let what = release.clone().unwrap_or_else(|| "kernel tree".into());
    rep.phase(&what, Phase::Unpack);
    let prepared = crate::vanilla::prepare(
        &crate::vanilla::Request {
            source: source.to_owned(),
            config: config.to_owned(),
            release,
            arch: o.arch.or_else(Arch::host).unwrap_or(Arch::X86_64),
            jobs: o.jobs.unwrap_or_else(super::default_jobs),
        },
        &cache,
        &scratch,
    );
    rep.done(&what);
    let prepared = prepared.map_err(|e| Error::Vanilla(Box::new(e)))?;
    rep.note(&format!(
        "kernel tree of {} {} ({})",
        prepared.release,
        if prepared.cached {
            "from the cache"
        } else {
            "prepared"
        },
        prepared.tree.display()
    ));
    Ok(prepared)
}

/// The source tarball and `.config` of a kernel built from source: the record's own config
/// (Flatcar's, or a list's `kernelconfigdata`), else `--kernel-config` (vanilla kernels).
fn source_and_config(
    o: &Options,
    k: &crate::repo::KernelRecord,
    files: &[PathBuf],
) -> Result<(PathBuf, PathBuf)> {
    let (source, config) = k.source_files(files);
    let source = source.expect("a kernel built from source has its source package");
    let config = match (&o.kernel_config, config) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) => c,
        (None, None) => {
            return Err(Error::Usage(format!(
                "kernel {} of `{}` is built from its source: give its .config with --kernel-config (a file, a URL's download, or the kernel image package shipping it)",
                k.release, k.target
            )))
        }
    };
    Ok((source, config))
}

/// `--kernel-config` as a file: an http(s) URL is downloaded into the cache first.
fn config_file(config: &std::path::Path, net: &session::Options) -> Result<PathBuf> {
    let text = config.to_string_lossy();
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Ok(config.to_owned());
    }
    let s = Session::open(net)?;
    let (path, digest) = s.client.fetch_unverified(&text).map_err(|e| {
        Error::Usage(format!(
            "--kernel-config `{}`: {e}",
            crate::http::redact(&text)
        ))
    })?;
    tracing::info!(
        "kernel config {} (sha256 {digest})",
        crate::http::redact(&text)
    );
    Ok(path)
}
