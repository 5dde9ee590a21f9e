//! One probe, end to end: stage headers -> kernel -> driver -> configure -> clang|llc ->
//! validate -> write `falco_<target-id>_<release>_<version>.o`.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::base::{sha256, write_atomic};
use crate::compile::{self, ConfigureResult, Timing};
use crate::driver::{self, encode_semver};
use crate::extract::{self, Selection};
use crate::flags::{self, FlagSet};
use crate::kernel::{self, Arch, KernelTree};
use crate::patch::Catalog;
use crate::toolchain::Toolchain;
use crate::validate::{self, Expect, Report};

/// Which driver a build makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// The legacy eBPF probe (`falco_*.o`): clang and llc.
    #[default]
    Ebpf,
    /// The kernel module (`falco_*.ko`): kbuild with the kernel's own gcc.
    Kmod,
}

impl Driver {
    /// Falco's file name of this driver for a kernel.
    pub fn file_name(self, target_id: &str, release: &str, kernel_version: &str) -> String {
        let ext = match self {
            Driver::Ebpf => "o",
            Driver::Kmod => "ko",
        };
        format!("falco_{target_id}_{release}_{kernel_version}.{ext}")
    }
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

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Driver::Ebpf => "ebpf",
            Driver::Kmod => "kmod",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Extract(#[from] extract::Error),
    #[error(transparent)]
    Kernel(#[from] kernel::Error),
    #[error(transparent)]
    Driver(#[from] driver::Error),
    #[error(transparent)]
    Compile(#[from] compile::Error),
    #[error("kernel `{release}`: the built probe is invalid")]
    Invalid {
        release: String,
        #[source]
        source: Box<validate::Invalid>,
    },
    #[error("kernel `{release}` is {found}, but {wanted} was asked for")]
    ArchMismatch {
        release: String,
        found: Arch,
        wanted: Arch,
    },
    #[error("kernel `{release}`: cannot tell the target id from the headers: pass --target-id (e.g. debian, ubuntu-generic, amazonlinux2)")]
    NeedTargetId { release: String },
    #[error("kernel `{release}`: {what}")]
    Unsupported { release: String, what: String },
    #[error("cannot write `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Request {
    pub headers: Vec<PathBuf>,
    pub kernel_release: Option<String>,
    pub driver_source: PathBuf,
    pub driver_version: Option<String>,
    pub target_id: Option<String>,
    pub kernel_version: Option<String>,
    pub arch: Option<Arch>,
    pub out_dir: PathBuf,
    /// Where temporary trees go (default `$TMPDIR`).
    pub scratch: Option<PathBuf>,
    /// The driver source's digest when already known (batches compute it once).
    pub driver_digest: Option<String>,
    /// The digests of `headers`, in the same order, where already known (from the signed
    /// listing, checked when they were fetched): those are not hashed again. Empty: none known.
    pub header_digests: Vec<Option<String>>,
    /// The kernel release in Falco's file name when it is not `uname -r`'s (Flatcar names its
    /// kernels by the Flatcar release); `None`: the loaders' rule ([`crate::loader::file_release`]).
    pub file_release: Option<String>,
}

/// Facts about the kernel a probe was built for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelFacts {
    pub release: String,
    pub kernel_version: String,
    pub uname_v: Option<String>,
    pub arch: Arch,
    pub target_id: String,
}

/// What a build produced and how.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Output {
    pub path: PathBuf,
    pub file_name: String,
    pub sha256: String,
    pub size: u64,
    pub kernel: KernelFacts,
    pub driver_version: String,
    pub driver_layout: driver::Layout,
    pub driver_source_sha256: String,
    /// Header inputs: (file name, sha256).
    pub inputs: Vec<(String, String)>,
    pub patches: Vec<String>,
    pub configure: Vec<ConfigureResult>,
    pub toolchain: String,
    /// sha256 of the clang argument list, with machine-specific paths mapped.
    pub flags_sha256: String,
    pub clang_args: Vec<String>,
    pub timing: Timings,
    pub report: Report,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timings {
    pub unpack_s: f64,
    pub configure: Timing,
    pub probe: Timing,
}

/// Where temporary trees go by default: `$TMPDIR` when set; else `/dev/shm` when it is a
/// memory file system with room (unpacked trees are written and deleted by the thousand, and
/// on a disk that costs more than the compile); else the system temp directory.
pub fn default_scratch() -> PathBuf {
    if let Some(t) = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()) {
        return PathBuf::from(t);
    }
    let shm = Path::new("/dev/shm");
    if let Ok(c) = std::ffi::CString::new("/dev/shm") {
        // SAFETY: statvfs writes only into the struct we pass.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
            let free = st.f_bavail as u64 * st.f_frsize as u64;
            let writable = unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
            if free >= 2 << 30 && writable {
                return shm.to_owned();
            }
        }
    }
    std::env::temp_dir()
}

/// Falco's target id for a kernel, where the headers tell.
pub fn default_target_id(k: &KernelTree) -> Option<String> {
    let os = k.os_release.as_ref()?;
    Some(match (os.id.as_str(), os.version_id.as_deref()) {
        ("debian", _) => "debian".into(),
        ("ubuntu", _) => format!("ubuntu-{}", k.release.rsplit('-').next()?),
        ("amzn", Some("2")) => "amazonlinux2".into(),
        ("amzn", Some("2022")) => "amazonlinux2022".into(),
        ("amzn", Some("2023")) => "amazonlinux2023".into(),
        // Falco's loader: every other Amazon Linux (1, 2018.03) is `amazonlinux`.
        ("amzn", _) => "amazonlinux".into(),
        // os-release IDs Falco's loader uses verbatim (no distro of its own for them).
        (id @ ("photon" | "alinux" | "opensuse-tumbleweed" | "opensuse-leap" | "sles"), _) => {
            id.into()
        }
        ("fedora", _) => "fedora".into(),
        ("rhel", _) => "centos".into(),
        _ => return None,
    })
}

/// Falco's probe file name.
pub fn probe_file_name(target_id: &str, release: &str, kernel_version: &str) -> String {
    Driver::Ebpf.file_name(target_id, release, kernel_version)
}

/// Builds one probe and writes it to `req.out_dir` (only once it validated).
pub fn build(req: &Request, tc: &Toolchain, patches: &Catalog) -> Result<Output, Error> {
    let (out, bytes) = build_probe(req, tc, patches)?;
    write_atomic(&out.path, &bytes).map_err(io(&out.path))?;
    Ok(out)
}

/// Builds and validates one probe; returns it in memory (its `path` is where it would go).
pub fn build_probe(
    req: &Request,
    tc: &Toolchain,
    patches: &Catalog,
) -> Result<(Output, Vec<u8>), Error> {
    prepare(req, tc, patches)?.compile(tc)
}

/// A kernel's build, staged up to the compile: headers unpacked, driver staged (and patched),
/// configure tests run, the exact clang and llc command lines known. Its [`Prepared::cache_key`]
/// is made of what the compiler will see, so a compile cache keyed by it cannot serve a probe
/// built with other flags, another driver tree or other headers.
pub struct Prepared {
    // Dropped in this order: the unpacked headers, then the build directory holding them.
    _staged: extract::Staged,
    tmp: tempfile::TempDir,
    k: KernelTree,
    drv: driver::PreparedDriver,
    args: Vec<std::ffi::OsString>,
    configure: Vec<ConfigureResult>,
    cfg_time: Timing,
    unpack_s: f64,
    inputs: Vec<(String, String)>,
    driver_source_sha256: String,
    driver_tree_sha256: String,
    target_id: String,
    kernel_version: String,
    file_release: Option<String>,
    out_dir: PathBuf,
    /// The clang command line, machine-specific paths mapped to what they stand for.
    pub clang_args: Vec<String>,
    /// The llc command line, the output named `probe.o`.
    pub llc_args: Vec<String>,
}

/// Stages a build up to the compile (see [`Prepared`]).
pub fn prepare(req: &Request, tc: &Toolchain, patches: &Catalog) -> Result<Prepared, Error> {
    let mut b = tempfile::Builder::new();
    b.prefix("probeforge-build-");
    // A single build writes only under `$TMPDIR` (or --scratch) and its output directory, as
    // sandboxes require; batches choose a faster default themselves.
    let scratch_dir = req.scratch.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = b.tempdir_in(&scratch_dir).map_err(io(&scratch_dir))?;
    let started = std::time::Instant::now();
    // Input order must not matter: packages unpack (and are recorded) sorted by file name.
    // Input order never changes the bytes: headers sorted, each with its known digest.
    let mut known: Vec<(PathBuf, Option<String>)> = req
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.clone(), req.header_digests.get(i).cloned().flatten()))
        .collect();
    known.sort_by(|(a, _), (b, _)| a.file_name().cmp(&b.file_name()).then_with(|| a.cmp(b)));
    let headers: Vec<PathBuf> = known.iter().map(|(h, _)| h.clone()).collect();
    let staged = extract::Staged::new(&headers, Selection::ProbeBuild, Some(tmp.path()))?;
    let unpack_s = started.elapsed().as_secs_f64();
    let k = KernelTree::find(staged.root(), req.kernel_release.as_deref())?;
    if let Some(want) = req.arch {
        if want != k.arch {
            return Err(Error::ArchMismatch {
                release: k.release.clone(),
                found: k.arch,
                wanted: want,
            });
        }
    }
    let ebpf = k.driver_support().into_iter().find(|d| d.driver == "ebpf");
    if let Some(d) = ebpf.filter(|d| !d.supported) {
        return Err(Error::Unsupported {
            release: k.release.clone(),
            what: format!(
                "the legacy eBPF probe cannot run here: {}",
                d.reasons.join("; ")
            ),
        });
    }
    let target_id = req
        .target_id
        .clone()
        .or_else(|| default_target_id(&k))
        .ok_or_else(|| Error::NeedTargetId {
            release: k.release.clone(),
        })?;
    let kernel_version = req
        .kernel_version
        .clone()
        .or_else(|| k.kernel_version.clone())
        .unwrap_or_else(|| "1".to_owned());

    let mut source = driver::open(&req.driver_source, tmp.path())?;
    if let (Some(d), None) = (&req.driver_digest, &source.sha256) {
        // An unpacked tree of a known archive is still that archive.
        source.identify(d);
    }
    // Known when the batch hashed it, or when `open` unpacked an archive (it hashed it then).
    let driver_source_sha256 = match (&req.driver_digest, &source.sha256) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => {
            crate::base::digest_input(&req.driver_source).map_err(io(&req.driver_source))?
        }
    };
    let inputs = known
        .iter()
        .map(|(h, digest)| {
            let name = h
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match digest {
                Some(d) => Ok((name, d.clone())),
                None => crate::base::digest_input(h)
                    .map(|d| (name, d))
                    .map_err(io(h)),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let work = tmp.path().join("driver");
    let drv = source.prepare(&work, req.driver_version.as_deref(), k.version, patches)?;
    // The staged tree as the compiler reads it: driver_config.h, patches applied.
    let driver_tree_sha256 = crate::base::digest_input(&drv.tree).map_err(io(&drv.tree))?;

    let mut fl = FlagSet::new(&k, &tc.resource_include, Arch::host());
    fl.prefix_maps
        .push((drv.tree.clone(), drv.mapped_tree.clone()));
    // A relocated (pinned) toolchain's own headers appear under their installed paths.
    if let Some(r) = &tc.root {
        fl.prefix_maps.push((r.clone(), String::new()));
    }
    fl.cos_73 = flags::needs_cos_73(
        &fs::read_to_string(k.srctree.join("include/linux/sched.h")).unwrap_or_default(),
    );
    let (configure, cfg_time) = compile::configure(
        tc,
        &fl,
        &k.objtree,
        &drv.bpf_dir,
        &drv.configure_modules,
        tmp.path(),
        &k.release,
    )?;
    fl.has = configure
        .iter()
        .filter(|c| c.passed && c.module != "0__SANITY")
        .map(|c| c.module.clone())
        .collect();
    let args = fl.clang_args(&drv.bpf_dir.join("probe.c"), true);
    // The recorded flags say where things were, relative to what they stand for.
    let root = k.root.display().to_string();
    let drv_tree = drv.tree.display().to_string();
    let tc_root = tc.root.as_ref().map(|r| r.display().to_string());
    let clang_args: Vec<String> = tc
        .clang_prefix_args
        .iter()
        .map(|a| a.into())
        .chain(args.iter().cloned())
        .map(|a| {
            let a = a
                .to_string_lossy()
                .replace(&drv_tree, &drv.mapped_tree)
                .replace(&root, "");
            match &tc_root {
                Some(r) => a.replace(r.as_str(), ""),
                None => a,
            }
        })
        .collect();
    let llc_args = FlagSet::llc_args(Path::new("probe.o"))
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Ok(Prepared {
        _staged: staged,
        tmp,
        k,
        drv,
        args,
        configure,
        cfg_time,
        unpack_s,
        inputs,
        driver_source_sha256,
        driver_tree_sha256,
        target_id,
        kernel_version,
        file_release: req.file_release.clone(),
        out_dir: req.out_dir.clone(),
        clang_args,
        llc_args,
    })
}

/// The compile-cache key of a probe: the exact clang and llc command lines, the staged driver
/// tree, the header packages (by digest, in any order) and the toolchain's identity.
pub fn cache_key(
    clang_args: &[String],
    llc_args: &[String],
    driver_tree_sha256: &str,
    header_sha256s: &[&str],
    toolchain: &str,
) -> String {
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field("probeforge compile cache v2");
    field("clang");
    clang_args.iter().for_each(|a| field(a));
    field("llc");
    llc_args.iter().for_each(|a| field(a));
    field(driver_tree_sha256);
    let mut d = header_sha256s.to_vec();
    d.sort();
    d.iter().for_each(|x| field(x));
    field(toolchain);
    hex::encode(h.finalize())
}

impl Prepared {
    pub fn release(&self) -> &str {
        &self.k.release
    }
    /// Header inputs: (file name, sha256).
    pub fn inputs(&self) -> &[(String, String)] {
        &self.inputs
    }
    /// See [`cache_key`].
    pub fn cache_key(&self, tc: &Toolchain) -> String {
        let headers: Vec<&str> = self.inputs.iter().map(|(_, d)| d.as_str()).collect();
        cache_key(
            &self.clang_args,
            &self.llc_args,
            &self.driver_tree_sha256,
            &headers,
            &tc.identity(),
        )
    }
    /// What a build of these inputs records, for bytes compiled now or taken from a cache.
    pub fn output(&self, tc: &Toolchain, bytes: &[u8], probe: Timing) -> Output {
        let release = self.file_release.clone().unwrap_or_else(|| {
            crate::loader::file_release(&self.target_id, &self.k.release, self.k.uname_v.as_deref())
        });
        let file_name = probe_file_name(&self.target_id, &release, &self.kernel_version);
        Output {
            path: self.out_dir.join(&file_name),
            file_name,
            sha256: sha256(bytes),
            size: bytes.len() as u64,
            kernel: KernelFacts {
                release: self.k.release.clone(),
                kernel_version: self.kernel_version.clone(),
                uname_v: self.k.uname_v.clone(),
                arch: self.k.arch,
                target_id: self.target_id.clone(),
            },
            driver_version: self.drv.version.clone(),
            driver_layout: self.drv.layout,
            driver_source_sha256: self.driver_source_sha256.clone(),
            inputs: self.inputs.clone(),
            patches: self.drv.patches.clone(),
            configure: self.configure.clone(),
            toolchain: tc.identity(),
            flags_sha256: sha256(self.clang_args.join("\0").as_bytes()),
            clang_args: self.clang_args.clone(),
            timing: Timings {
                unpack_s: self.unpack_s,
                configure: self.cfg_time,
                probe,
            },
            report: self.check(bytes),
        }
    }
    /// The probe's checks against this kernel and driver.
    pub fn check(&self, bytes: &[u8]) -> Report {
        validate::validate(
            bytes,
            &Expect {
                kernel_release: Some(self.k.release.clone()),
                driver_version: Some(self.drv.version.clone()),
                api_version: Some(encode_semver(self.drv.api_version)),
                schema_version: Some(encode_semver(self.drv.schema_version)),
                arch: Some(self.k.arch),
            },
        )
    }
    /// Runs clang | llc and validates the probe.
    pub fn compile(self, tc: &Toolchain) -> Result<(Output, Vec<u8>), Error> {
        let obj = self.tmp.path().join("probe.o");
        let probe_time =
            compile::clang_llc(tc, &self.args, &self.k.objtree, &obj, &self.k.release)?;
        let bytes = fs::read(&obj).map_err(io(&obj))?;
        let out = self.output(tc, &bytes, probe_time);
        if !out.report.ok() {
            return Err(Error::Invalid {
                release: self.k.release.clone(),
                source: Box::new(validate::Invalid(out.report)),
            });
        }
        Ok((out, bytes))
    }
}

/// A provenance statement (in-toto Statement v1 layout) for a build: what went in (by
/// digest), with what, and what came out. Contains no paths or times of this machine, so the
/// same build anywhere states the same; `built_at` only when `SOURCE_DATE_EPOCH` is set.
pub fn provenance(out: &Output, tc: &Toolchain) -> serde_json::Value {
    let mut materials: Vec<serde_json::Value> = out
        .inputs
        .iter()
        .map(|(n, d)| serde_json::json!({"name": n, "digest": {"sha256": d}}))
        .collect();
    materials.push(serde_json::json!({"name": "driver-source", "digest": {"sha256": out.driver_source_sha256}}));
    let mut predicate = serde_json::json!({
        "builder": concat!("probeforge ", env!("CARGO_PKG_VERSION")),
        "materials": materials,
        "kernel": out.kernel,
        "driver_version": out.driver_version,
        "driver_layout": out.driver_layout,
        "patches": out.patches,
        "configure": out.configure.iter().map(|c| serde_json::json!({"module": c.module, "passed": c.passed})).collect::<Vec<_>>(),
        "toolchain": {"clang": tc.clang_version, "llc": tc.llc_version, "pinned": tc.pinned},
        "clang_args": out.clang_args,
        "flags_sha256": out.flags_sha256,
    });
    if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
        predicate["built_at"] = serde_json::Value::String(crate::base::timestamp());
    }
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": out.file_name, "digest": {"sha256": out.sha256}}],
        "predicateType": "https://github.com/falcosecurity/probeforge/provenance/v1",
        "predicate": predicate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Falco's loader's target ids, from what the trees of each distribution say.
    #[test]
    fn target_ids_of_rpm_distros_from_the_tree() {
        let tree = |release: &str, id: &str, version_id: Option<&str>| KernelTree {
            root: PathBuf::new(),
            objtree: PathBuf::new(),
            srctree: PathBuf::new(),
            release: release.into(),
            uname_v: None,
            kernel_version: None,
            arch: Arch::X86_64,
            big_endian: false,
            version: kernel::parse_version(release),
            os_release: Some(kernel::OsRelease {
                id: id.into(),
                version_id: version_id.map(str::to_owned),
            }),
            compiler: None,
            module_abi: Default::default(),
            config: Default::default(),
        };
        for (release, id, version_id, want) in [
            ("4.19.283-3.ph3", "photon", Some("3.0"), "photon"),
            ("5.10.84-10.4.al8.x86_64", "alinux", Some("3"), "alinux"),
            ("4.14.26-46.32.amzn1.x86_64", "amzn", None, "amazonlinux"),
            (
                "5.15.25-14.106.amzn2022.x86_64",
                "amzn",
                Some("2022"),
                "amazonlinux2022",
            ),
            (
                "5.10.210-201.852.amzn2.x86_64",
                "amzn",
                Some("2"),
                "amazonlinux2",
            ),
            (
                "6.8.1-1-default",
                "opensuse-tumbleweed",
                None,
                "opensuse-tumbleweed",
            ),
            (
                "6.4.0-lp155.2.1-default",
                "opensuse-leap",
                None,
                "opensuse-leap",
            ),
        ] {
            let k = tree(release, id, version_id);
            assert_eq!(default_target_id(&k).as_deref(), Some(want), "{release}");
        }
    }

    /// Every part of what the compiler sees changes the compile-cache key; the order of the
    /// header packages does not.
    #[test]
    fn cache_key_covers_flags_driver_tree_headers_and_toolchain() {
        let clang: Vec<String> = ["-O2", "-g", "-DHAS_RSS_STAT_ARRAY", "-c", "probe.c"]
            .map(String::from)
            .to_vec();
        let llc: Vec<String> = ["-march=bpf", "-filetype=obj", "-o", "probe.o"]
            .map(String::from)
            .to_vec();
        let base = cache_key(&clang, &llc, "tree", &["h1", "h2"], "clang 14 / llc 14");
        assert_eq!(
            base,
            cache_key(&clang, &llc, "tree", &["h2", "h1"], "clang 14 / llc 14")
        );
        let mut one_flag = clang.clone();
        one_flag[2] = "-DHAS_KERNFS_NODE_PARENT".into();
        let mut dropped = clang.clone();
        dropped.remove(2);
        let mut joined = clang.clone();
        joined[0] = "-O2 -g".into();
        joined.remove(1);
        let mut llc2 = llc.clone();
        llc2[0] = "-march=bpfel".into();
        let others = [
            cache_key(&one_flag, &llc, "tree", &["h1", "h2"], "clang 14 / llc 14"),
            cache_key(&dropped, &llc, "tree", &["h1", "h2"], "clang 14 / llc 14"),
            cache_key(&joined, &llc, "tree", &["h1", "h2"], "clang 14 / llc 14"),
            cache_key(&clang, &llc2, "tree", &["h1", "h2"], "clang 14 / llc 14"),
            cache_key(
                &clang,
                &llc,
                "patched tree",
                &["h1", "h2"],
                "clang 14 / llc 14",
            ),
            cache_key(&clang, &llc, "tree", &["h1", "h3"], "clang 14 / llc 14"),
            cache_key(&clang, &llc, "tree", &["h1", "h2"], "clang 16 / llc 16"),
        ];
        for (i, k) in others.iter().enumerate() {
            assert_ne!(*k, base, "variant {i} hit the cache");
        }
    }
}
