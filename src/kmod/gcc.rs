//! The kernel's own compiler: which one the headers name, and where to get exactly that one.
//!
//! A module must be compiled by the compiler that built its kernel (kbuild warns, then builds
//! anyway; probeforge refuses). The headers name it in `CONFIG_CC_VERSION_TEXT`. It comes from a
//! pinned manifest in `toolchain/gcc-*.json` (the distro's own packages, by digest, unpacked
//! without root into the cache and run through their own dynamic loader), or from the host when
//! the host's `gcc-N --version` says exactly the same text. Nothing else is ever used.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Error;
use crate::kernel::{Arch, KernelTree};

/// The compiler a kernel was built with, as its headers say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KernelCompiler {
    /// `CONFIG_CC_VERSION_TEXT`: the first line of `$(CC) --version` when the kernel was built,
    /// e.g. `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0`.
    pub text: String,
    /// `CONFIG_GCC_VERSION` (e.g. 120200); 0 for a kernel built by clang.
    pub gcc_version: u32,
}

impl KernelCompiler {
    /// Reads the compiler from a kernel's configuration (`.config`, else `autoconf.h`).
    pub fn of(tree: &KernelTree) -> Result<KernelCompiler, Error> {
        let text = tree
            .config
            .get("CC_VERSION_TEXT")
            .map(|t| t.trim_matches('"').to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::NoCompilerText {
                release: tree.release.clone(),
            })?;
        let gcc_version = tree
            .config
            .get("GCC_VERSION")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(KernelCompiler { text, gcc_version })
    }

    /// The program name the text starts with (`gcc-12`, `gcc`, `clang`).
    pub fn program(&self) -> &str {
        self.text.split_whitespace().next().unwrap_or("")
    }
}

/// One package of a pinned compiler.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct GccPackage {
    pub name: String,
    pub version: String,
    /// Catalog mirror the file is below (`debian`, `debian-security`).
    pub mirror: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// Set where the database listing the package is unsigned (Arch signs packages, not
    /// databases): the package's own detached signature, checked by the target's keys when
    /// it is fetched, before it is unpacked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_signature: Option<OwnSignature>,
}

/// Where a package's own detached signature is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnSignature {
    /// In the database's entry (`%PGPSIG%`, base64).
    Pgpsig(String),
    /// In `<file>.sig` beside the package.
    Beside,
}

/// A pinned kernel compiler: the distro's gcc and binutils, with every library they load.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct GccManifest {
    pub name: String,
    /// Exactly what `gcc --version` prints first: what `CONFIG_CC_VERSION_TEXT` must say.
    pub version_text: String,
    /// The machine the compiler runs on.
    pub host_arch: Arch,
    /// The machine it compiles for (a cross compiler's differs from `host_arch`).
    pub target_arch: Arch,
    /// The catalog target whose index the packages were pinned from.
    pub pinned_from: String,
    pub note: String,
    /// The driver, named so its `--version` prints the kernel's text (`usr/bin/gcc-12`).
    pub gcc: String,
    /// binutils' programs are this followed by `as`, `ld`, `nm`, ...
    pub binutils_prefix: String,
    pub loader: String,
    pub library_path: Vec<String>,
    pub packages: Vec<GccPackage>,
    /// Not the kernel's exact build but the nearest of the same major version its
    /// distribution still carries ([`super::resolve`]): said, recorded, and accepted only as
    /// that.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nearest: bool,
    /// Another distribution's build of the kernel's gcc major version (Debian's), because the
    /// kernel's own distribution does not carry its compiler where probeforge can read it:
    /// said, recorded, and accepted only as that (implies [`Self::nearest`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub major_only: bool,
}

const EMBEDDED: &[&str] = &[
    include_str!("../../toolchain/gcc-10-debian11.json"),
    include_str!("../../toolchain/gcc-12-debian12.json"),
    include_str!("../../toolchain/gcc-14-debian13.json"),
    include_str!("../../toolchain/gcc-12-debian12-arm64-cross.json"),
    include_str!("../../toolchain/gcc-14-debian13-arm64-cross.json"),
];

impl GccManifest {
    /// The manifests shipped in `toolchain/`.
    pub fn embedded() -> Vec<GccManifest> {
        EMBEDDED
            .iter()
            .map(|t| serde_json::from_str(t).expect("embedded compiler manifest is valid"))
            .collect()
    }

    /// The driver's file name (`gcc-12`).
    pub fn gcc_program(&self) -> &str {
        self.gcc.rsplit('/').next().unwrap_or(&self.gcc)
    }

    /// Made at run time from a distribution's indexes ([`super::resolve`]), not shipped in
    /// `toolchain/`: such names say where from (`gcc-13-x86-64-linux-gnu_<version>@<target>`).
    pub fn is_resolved(&self) -> bool {
        self.name.contains('@')
    }

    /// The cache directory's identity: the digests of its packages.
    pub fn digest(&self) -> String {
        let all: String = self.packages.iter().map(|p| p.sha256.as_str()).collect();
        crate::base::sha256(all.as_bytes())[..16].to_owned()
    }
}

/// Where a compiler comes from.
#[derive(Debug, Clone)]
pub enum CompilerSource {
    /// A pinned manifest (to be fetched into the cache).
    Pinned(Box<GccManifest>),
    /// A program on this host whose `--version` says exactly the kernel's text.
    Host(PathBuf),
    /// The toolchain the kernel's own kit ships beside its tree ([`kit_toolchain`]), as a
    /// manifest of no packages rooted there, whose driver says exactly the kernel's text.
    Kit(Box<GccManifest>, PathBuf),
}

/// Where a kernel's module compiler comes from, as `inspect --compiler` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    /// `pinned` (a manifest of `toolchain/`), `index` (resolved from the kernel's own
    /// distribution's signed indexes), `host` or `none`.
    pub source: &'static str,
    /// The manifest's name (`gcc-12_12.2.0-14+deb12u1@debian-bookworm`) or the host program.
    pub name: String,
    /// What the compiler will say (`gcc --version`'s first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_text: Option<String>,
    /// Not the kernel's exact build: the nearest of the same major version.
    pub nearest: bool,
    /// Packages fetched to run it (0 for the host's).
    pub packages: usize,
    /// The manifest's note, or why there is no compiler.
    pub note: String,
}

impl CompilerSource {
    /// Where this compiler comes from, in words a report can carry.
    pub fn origin(&self) -> Origin {
        match self {
            CompilerSource::Pinned(m) => Origin {
                // A manifest resolved from an index is named `<package>_<version>@<target>`;
                // the embedded ones by their file.
                source: match (m.major_only, m.name.contains('@')) {
                    (true, _) => "same-major",
                    (false, true) => "index",
                    (false, false) => "pinned",
                },
                name: m.name.clone(),
                version_text: Some(m.version_text.clone()),
                nearest: m.nearest,
                packages: m.packages.len(),
                note: m.note.clone(),
            },
            CompilerSource::Kit(m, root) => Origin {
                source: "kit",
                name: root.display().to_string(),
                version_text: Some(m.version_text.clone()),
                nearest: false,
                packages: 0,
                note: m.note.clone(),
            },
            CompilerSource::Host(p) => Origin {
                source: "host",
                name: p.display().to_string(),
                version_text: None,
                nearest: false,
                packages: 0,
                note: "this host's program of the kernel's compiler's name says exactly its text"
                    .into(),
            },
        }
    }

    /// The origin of a search's outcome: `none` with the reason when there is no compiler.
    pub fn origin_of(found: &Result<CompilerSource, Error>) -> Origin {
        match found {
            Ok(c) => c.origin(),
            Err(e) => Origin {
                source: "none",
                name: String::new(),
                version_text: None,
                nearest: false,
                packages: 0,
                note: {
                    let mut words = e.to_string();
                    let mut at: Option<&dyn std::error::Error> = std::error::Error::source(e);
                    while let Some(c) = at {
                        words = format!("{words}: {c}");
                        at = c.source();
                    }
                    words
                },
            },
        }
    }
}

/// The toolchain a kernel's kit ships beside its tree: Bottlerocket's kmod kit is
/// `<kit>/kernel-devel` and `<kit>/toolchain/usr/bin/<triplet>-gcc`, the SDK's compiler that
/// built the kernel.
pub fn kit_toolchain(tree: &KernelTree) -> Option<PathBuf> {
    let dir = tree.objtree.parent()?.join("toolchain");
    dir.join("usr/bin").is_dir().then_some(dir)
}

/// A kit's toolchain at `root` for a kernel built by `want`: its program of the kernel's
/// compiler's name (`usr/bin/x86_64-bottlerocket-linux-gnu-gcc`), binutils under the same
/// prefix, started through the kit's own loader when it ships one, else this host's, with the
/// kit's libraries first. `None` when the kit has no program of that name. Whether it says the
/// kernel's text is checked when it is made ready ([`Compiler::pinned`]).
pub fn kit_manifest(want: &KernelCompiler, kernel: Arch, root: &Path) -> Option<GccManifest> {
    let program = want.program();
    if program.is_empty() || program.contains('/') {
        return None;
    }
    let gcc = format!("usr/bin/{program}");
    if !root.join(&gcc).is_file() {
        return None;
    }
    let host = Arch::host()?;
    // binutils under the compiler's own prefix (`x86_64-bottlerocket-linux-gnu-ld`), else
    // the kernel's triplet's, else plain.
    let prefix = [
        program.strip_suffix("gcc").unwrap_or("").to_owned(),
        format!("{}-", kernel.triple()),
        String::new(),
    ]
    .into_iter()
    .find(|p| root.join(format!("usr/bin/{p}ld")).exists())
    .unwrap_or_default();
    let own = [host.loader().to_owned(), format!("usr/{}", host.loader())]
        .into_iter()
        .find(|l| root.join(l).exists());
    let triplet = host.triple();
    Some(GccManifest {
        name: format!(
            "kit toolchain {}",
            root.parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        version_text: want.text.clone(),
        host_arch: host,
        target_arch: kernel,
        pinned_from: String::new(),
        note: format!(
            "the kernel's kit ships its compiler: `{gcc}` of its toolchain, {}",
            match &own {
                Some(l) => format!("started through the kit's own loader `{l}`"),
                None => "started through this host's loader with the kit's libraries first".into(),
            }
        ),
        gcc,
        binutils_prefix: format!("usr/bin/{prefix}"),
        // Absolute when the kit has none: `root.join` keeps an absolute path as it is.
        loader: own.unwrap_or_else(|| format!("/{}", host.loader())),
        library_path: [
            "lib64".to_owned(),
            "usr/lib64".to_owned(),
            "lib".to_owned(),
            "usr/lib".to_owned(),
            format!("lib/{triplet}"),
            format!("usr/lib/{triplet}"),
        ]
        .into_iter()
        .filter(|d| root.join(d).is_dir())
        .collect(),
        packages: Vec::new(),
        nearest: false,
        major_only: false,
    })
}

/// binutils programs kbuild calls (make variable, program suffix).
const BINUTILS: &[(&str, &str)] = &[
    ("LD", "ld"),
    ("AR", "ar"),
    ("NM", "nm"),
    ("OBJCOPY", "objcopy"),
    ("OBJDUMP", "objdump"),
    ("READELF", "readelf"),
    ("STRIP", "strip"),
];

/// Chooses the kernel's compiler: a pinned manifest for this host that compiles for the
/// kernel's architecture and says exactly its text, else the host's program of that name if
/// it says exactly the same. Anything else is [`Error::NoCompiler`], naming both sides.
pub fn choose(
    want: &KernelCompiler,
    kernel_arch: Arch,
    manifests: &[GccManifest],
) -> Result<CompilerSource, Error> {
    let host = Arch::host();
    let usable = |m: &&GccManifest| Some(m.host_arch) == host && m.target_arch == kernel_arch;
    // The very text first; else the same release under a triplet-prefixed name.
    if let Some(m) = manifests
        .iter()
        .filter(usable)
        .find(|m| m.version_text == want.text)
        .or_else(|| {
            manifests
                .iter()
                .filter(usable)
                .find(|m| same_release(&want.text, &m.version_text, kernel_arch))
        })
    {
        return Ok(CompilerSource::Pinned(Box::new(m.clone())));
    }
    let mut available: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "pinned `{}` ({} for {:?} on {:?})",
                m.name, m.version_text, m.target_arch, m.host_arch
            )
        })
        .collect();
    // A clang-built kernel: this host's clang of exactly its text, with LLVM's binutils.
    if clang_version(&want.text).is_some() {
        if host == Some(kernel_arch) {
            match host_clang(want) {
                Ok(path) => return Ok(CompilerSource::Host(path)),
                Err(mut others) => available.append(&mut others),
            }
        }
        return Err(Error::NoCompiler {
            kernel: want.text.clone(),
            arch: kernel_arch,
            available,
        });
    }
    let prog = want.program();
    // `gcc-12`, or a triplet-prefixed `x86_64-linux-gnu-gcc-14`: only ever the same name.
    if host == Some(kernel_arch) && prog.contains("gcc") && !prog.contains('/') {
        if let Some(path) = which(prog) {
            match version_line(&mut Command::new(&path)) {
                Ok(line) if line == want.text => return Ok(CompilerSource::Host(path)),
                Ok(line) => available.push(format!("host `{}` ({line})", path.display())),
                Err(_) => available.push(format!("host `{}` (does not run)", path.display())),
            }
        }
    }
    Err(Error::NoCompiler {
        kernel: want.text.clone(),
        arch: kernel_arch,
        available,
    })
}

/// Whether a compiler whose `--version` says `found` is the compiler that built a kernel of
/// `arch` whose headers say `kernel`: the same text, or the same but for the program name
/// carrying the target's triplet prefix on one side. Debian's `gcc-12` is a link to
/// `x86_64-linux-gnu-gcc-12`, and its cross compiler for arm64 is `aarch64-linux-gnu-gcc-12`:
/// one compiler release under several names. The release in the parentheses (Debian's package
/// version) and the upstream version after it must be equal: `12.2.0-14` is not
/// `12.2.0-14+deb12u1` (that update changes AArch64 code generation).
pub fn same_release(kernel: &str, found: &str, arch: Arch) -> bool {
    if kernel == found {
        return true;
    }
    let prefix = format!("{}-", arch.triple());
    match (unprefixed(kernel, &prefix), unprefixed(found, &prefix)) {
        (Some(a), Some(b)) => a == b && !a.0.is_empty(),
        _ => false,
    }
}

/// Whether two `--version` lines name one program of one gcc major version (the nearest
/// build of a compiler the archive no longer carries).
pub fn same_major(kernel: &str, found: &str) -> bool {
    use super::resolve::VersionText;
    use super::resolve_pacman::GccText;
    // Arch's `gcc (GCC) 14.1.1 ...` and its `gcc-14 (GCC) 14.2.1 ...`: one major version.
    if let (Some(a), Some(b)) = (GccText::parse(kernel), GccText::parse(found)) {
        return a.major == b.major;
    }
    match (VersionText::parse(kernel), VersionText::parse(found)) {
        (Some(a), Some(b)) => {
            // `gcc-12` and `aarch64-linux-gnu-gcc-12`: one program under its triplet name.
            let bare = |p: &str| p.rsplit("-linux-gnu-").next().unwrap_or(p).to_owned();
            bare(&a.program) == bare(&b.program) && a.vendor == b.vendor && a.major == b.major
        }
        // RPM distributions' shapes: `gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)`.
        _ => {
            use super::resolve_rpm::RpmText;
            match (RpmText::parse(kernel), RpmText::parse(found)) {
                (Some(a), Some(b)) => {
                    a.program == b.program && a.vendor == b.vendor && a.major == b.major
                }
                _ => false,
            }
        }
    }
}

/// The gcc major version a `--version` line names, whatever the vendor's shape: `gcc (GCC)
/// 11.4.1 20231218 (Red Hat 11.4.1-3)`, `gcc (SUSE Linux) 7.5.0`, `x86_64-bottlerocket-linux-
/// gnu-gcc (Buildroot 2022.11.1) 11.3.0`, `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0`: the
/// program is a gcc, and gcc's own version is the first word after the vendor's parentheses.
/// `None` for clang or any other shape.
pub fn gcc_major(text: &str) -> Option<u32> {
    gcc_version(text).map(|v| v[0])
}

/// gcc's own version in a `--version` line of any vendor's shape ([`gcc_major`]): `[11, 4, 1]`.
pub fn gcc_version(text: &str) -> Option<Vec<u32>> {
    let (program, rest) = text.trim().split_once(' ')?;
    if !program.ends_with("gcc") && !program.contains("gcc-") {
        return None;
    }
    let (_, after) = rest.strip_prefix('(')?.split_once(") ")?;
    let version = after.split_whitespace().next()?;
    let v: Vec<u32> = version
        .split('.')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    (v.len() >= 2).then_some(v)
}

/// Whether a compiler saying `found` is accepted for a kernel built by `kernel`, given what
/// the compiler was chosen as: the same release, else (nearest) the same program and vendor
/// of one major version, else (another distribution's build) one gcc major version.
pub fn accepts(kernel: &str, found: &str, arch: Arch, nearest: bool, major_only: bool) -> bool {
    if same_release(kernel, found, arch) {
        return true;
    }
    match (major_only, nearest) {
        (true, _) => gcc_major(kernel).is_some() && gcc_major(kernel) == gcc_major(found),
        (false, true) => same_major(kernel, found),
        (false, false) => false,
    }
}

/// clang's own version in a `--version` line of any vendor's shape: `Debian clang version
/// 14.0.6`, `Ubuntu clang version 18.1.3 (1ubuntu1)`, COS's `Chromium OS 17.0_pre498229-r33
/// clang version 17.0.0 (...)`: `[14, 0, 6]`. `None` for gcc or any other shape.
pub fn clang_version(text: &str) -> Option<Vec<u32>> {
    let (_, after) = text.split_once("clang version ")?;
    let version = after.split_whitespace().next()?;
    let v: Vec<u32> = version
        .split('.')
        .map(|n| {
            let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect::<Option<_>>()?;
    (v.len() >= 2).then_some(v)
}

/// This host's clang whose `--version` says exactly the kernel's text: `clang-<major>`, then
/// `clang`, on `PATH`. Else every clang the host has, with what it says.
pub fn host_clang(want: &KernelCompiler) -> Result<PathBuf, Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    if let Some(v) = clang_version(&want.text) {
        names.push(format!("clang-{}", v[0]));
    }
    names.push("clang".into());
    // Every other `clang-N` on PATH, to name what there is.
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let numbered = n
                    .strip_prefix("clang-")
                    .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
                if numbered && !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }
    let mut seen = Vec::new();
    for name in names {
        let Some(path) = which(&name) else { continue };
        match version_line(&mut Command::new(&path)) {
            Ok(line) if line == want.text => return Ok(path),
            Ok(line) => seen.push(format!("host `{}` ({line})", path.display())),
            Err(_) => seen.push(format!("host `{}` (does not run)", path.display())),
        }
    }
    Err(seen)
}

/// The LLVM programs `LLVM=1` makes kbuild call by name besides `clang`.
const LLVM_TOOLS: &[&str] = &[
    "ld.lld",
    "llvm-ar",
    "llvm-nm",
    "llvm-objcopy",
    "llvm-objdump",
    "llvm-readelf",
    "llvm-strip",
];

/// The programs of `clang`'s own LLVM installation under the names `LLVM=1` calls (`clang`,
/// `ld.lld`, `llvm-ar`, ...): beside the real program (Debian's `/usr/lib/llvm-14/bin`),
/// else on `PATH` with its major version's suffix (`ld.lld-14`). Any missing is an error
/// naming them: never another LLVM's.
pub fn llvm_tools(clang: &Path, text: &str) -> Result<Vec<(String, PathBuf)>, Error> {
    let real = fs::canonicalize(clang).map_err(|e| super::io_err(clang, e))?;
    let dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
    let major = clang_version(text).map(|v| v[0]);
    let mut found = vec![("clang".to_owned(), real.clone())];
    let mut missing = Vec::new();
    for tool in LLVM_TOOLS {
        let beside = dir.join(tool);
        let suffixed = major.and_then(|m| which(&format!("{tool}-{m}")));
        match (beside.is_file(), suffixed) {
            (true, _) => found.push((tool.to_string(), beside)),
            (false, Some(p)) => found.push((tool.to_string(), p)),
            (false, None) => missing.push(match major {
                Some(m) => format!("{tool}-{m}"),
                None => tool.to_string(),
            }),
        }
    }
    if !missing.is_empty() {
        return Err(Error::NoLlvmTools {
            clang: clang.to_owned(),
            text: text.to_owned(),
            missing,
        });
    }
    Ok(found)
}

/// A `--version` line as (program name without `prefix`, the rest).
fn unprefixed<'t>(text: &'t str, prefix: &str) -> Option<(&'t str, &'t str)> {
    let (prog, rest) = text.split_once(' ')?;
    Some((prog.strip_prefix(prefix).unwrap_or(prog), rest))
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn version_line(c: &mut Command) -> Result<String, std::io::Error> {
    let out = c.arg("--version").env("LC_ALL", "C").output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned())
}

/// A compiler ready to hand to kbuild.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Compiler {
    /// The first line of its `--version`, checked equal to the kernel's text.
    pub version_text: String,
    /// `pinned <name>` or `host <path>`.
    pub origin: String,
    /// The machine it compiles for: a cross compiler's differs from this host's.
    pub target_arch: Arch,
    /// Not the kernel's exact build: the nearest of its major version (see
    /// [`GccManifest::nearest`]).
    pub nearest: bool,
    /// Another distribution's build of the kernel's gcc major ([`GccManifest::major_only`]).
    pub major_only: bool,
    /// The arguments that start the driver (`CC`), through the pinned loader when pinned.
    cc: Vec<String>,
    /// Pinned only: make variable -> command, and the programs `gcc -B` must find (`as`).
    binutils: BTreeMap<String, Vec<String>>,
    as_path: Option<PathBuf>,
    /// Pinned only: other programs of the root kbuild calls by name (`pahole`).
    extra: Vec<(String, Vec<String>)>,
    /// Pinned only: the loader and library path its programs start with.
    launcher: Option<(PathBuf, String)>,
    /// clang only: its LLVM's programs by the names `LLVM=1` calls, linked into a directory
    /// first on `PATH` ([`llvm_tools`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    llvm: Vec<(String, PathBuf)>,
}

impl Compiler {
    /// The pinned compiler unpacked at `root`, for a kernel built by `kernel`: started by the
    /// name the kernel's text gives when the root has that program (`x86_64-linux-gnu-gcc-12`
    /// beside `gcc-12`), else by the manifest's, and checked to say the same release as the
    /// kernel ([`same_release`]).
    pub fn pinned(
        m: &GccManifest,
        root: &Path,
        kernel: &KernelCompiler,
    ) -> Result<Compiler, Error> {
        // kbuild runs it from other directories.
        let root = &fs::canonicalize(root).map_err(|e| super::io_err(root, e))?;
        // A usr-merged release ships its loader below `usr/` only.
        let loader = [root.join(&m.loader), root.join("usr").join(&m.loader)]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| root.join(&m.loader))
            .display()
            .to_string();
        let lp: Vec<String> = m
            .library_path
            .iter()
            .map(|p| root.join(p).display().to_string())
            .collect();
        let lp = lp.join(":");
        let launch = |prog: &Path| -> Vec<String> {
            vec![
                loader.clone(),
                "--library-path".into(),
                lp.clone(),
                prog.display().to_string(),
            ]
        };
        let gcc = root.join(&m.gcc);
        let named = gcc.with_file_name(kernel.program());
        let gcc = match m.host_arch == m.target_arch
            && kernel.program() != m.gcc_program()
            && (m.nearest || same_release(&kernel.text, &m.version_text, m.target_arch))
            && named.is_file()
        {
            true => named,
            false => gcc,
        };
        // gcc's own subprograms (cc1, as) start through the same loader: `-wrapper`.
        let mut cc = launch(&gcc);
        cc.push("-wrapper".into());
        cc.push(format!("{loader},--library-path,{lp}"));
        let binutils: BTreeMap<String, Vec<String>> = BINUTILS
            .iter()
            .map(|(var, prog)| {
                let p = root.join(format!("{}{prog}", m.binutils_prefix));
                (var.to_string(), launch(&p))
            })
            .collect();
        let as_path = root.join(format!("{}as", m.binutils_prefix));
        let c = Compiler {
            version_text: m.version_text.clone(),
            origin: match (m.is_resolved(), m.packages.is_empty()) {
                (true, _) => format!("resolved {}", m.name),
                // A kit's own toolchain: no packages, named by its kit.
                (false, true) => m.name.clone(),
                (false, false) => format!("pinned {}", m.name),
            },
            target_arch: m.target_arch,
            nearest: m.nearest,
            major_only: m.major_only,
            cc,
            binutils,
            as_path: Some(as_path),
            launcher: Some((PathBuf::from(&loader), lp.clone())),
            extra: ["pahole"]
                .iter()
                .map(|p| (p.to_string(), root.join("usr/bin").join(p)))
                .filter(|(_, p)| p.is_file())
                .map(|(n, p)| (n, launch(&p)))
                .collect(),
            llvm: Vec::new(),
        };
        let found = version_line(&mut c.command()).map_err(|source| Error::RunCompiler {
            compiler: c.origin.clone(),
            source,
        })?;
        let same = match m.nearest || m.major_only {
            true => accepts(&kernel.text, &found, m.target_arch, m.nearest, m.major_only),
            false => {
                same_release(&m.version_text, &found, m.target_arch)
                    && same_release(&kernel.text, &found, m.target_arch)
            }
        };
        if !same {
            return Err(Error::CompilerMismatch {
                kernel: kernel.text.clone(),
                found,
                compiler: c.origin,
            });
        }
        Ok(Compiler {
            version_text: found,
            ..c
        })
    }

    /// The host's program, checked to say exactly `want`.
    pub fn host(path: &Path, want: &KernelCompiler) -> Result<Compiler, Error> {
        let origin = format!("host {}", path.display());
        let found = version_line(&mut Command::new(path)).map_err(|source| Error::RunCompiler {
            compiler: origin.clone(),
            source,
        })?;
        if found != want.text {
            return Err(Error::CompilerMismatch {
                kernel: want.text.clone(),
                found,
                compiler: origin,
            });
        }
        let target_arch = Arch::host().ok_or_else(|| Error::RunCompiler {
            compiler: origin.clone(),
            source: std::io::Error::other("this host's architecture is not one probeforge knows"),
        })?;
        // A clang: kbuild with `LLVM=1` and the binutils of the very same LLVM.
        let llvm = match clang_version(&found) {
            Some(_) => llvm_tools(path, &found)?,
            None => Vec::new(),
        };
        let origin = match llvm.iter().find(|(n, _)| n == "ld.lld") {
            Some((_, ld)) => format!(
                "{origin} with LLVM=1 ({})",
                ld.parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
            None => origin,
        };
        Ok(Compiler {
            version_text: found,
            origin,
            target_arch,
            nearest: false,
            major_only: false,
            cc: vec![path.display().to_string()],
            binutils: BTreeMap::new(),
            as_path: None,
            extra: Vec::new(),
            launcher: None,
            llvm,
        })
    }

    /// For a pinned compiler: its loader and library path, which also start the kernel's own
    /// kbuild tools (built on the same distro release, they may need a newer C library than
    /// the host's).
    pub fn launcher(&self) -> Option<(&Path, &str)> {
        self.launcher
            .as_ref()
            .map(|(l, p)| (l.as_path(), p.as_str()))
    }

    /// Whether it compiles for another machine than this one.
    pub fn is_cross(&self) -> bool {
        Some(self.target_arch) != Arch::host()
    }

    /// A command running the compiler driver.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.cc[0]);
        c.args(&self.cc[1..]);
        c
    }

    /// The make variables that make kbuild use this compiler (`CC=`, and for a pinned one its
    /// binutils; for a cross compiler `ARCH=` and `CROSS_COMPILE=`), and a directory to put
    /// first on `PATH`, both written into `dir`. The driver's configure tests run kbuild again
    /// with only `CC` and `PATH` (`env -i`): for a pinned compiler `PATH` gives them its
    /// binutils too (also by their triplet names, for a cross compiler), never the host's.
    pub fn make_vars(&self, dir: &Path) -> Result<(Vec<String>, Option<PathBuf>), Error> {
        let mut cc = self.cc.clone();
        let mut path_dir = None;
        if let Some(as_path) = &self.as_path {
            // gcc looks for `as` in `-B` directories before PATH, and starts it through
            // `-wrapper` (the loader): a link to the ELF program itself.
            let b = dir.join("gcc-bin");
            fs::create_dir_all(&b).map_err(|e| super::io_err(&b, e))?;
            let link = b.join("as");
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(as_path, &link).map_err(|e| super::io_err(&link, e))?;
            cc.push(format!("-B{}/", b.display()));
            let bin = dir.join("bin");
            fs::create_dir_all(&bin).map_err(|e| super::io_err(&bin, e))?;
            let named = self.binutils.iter().map(|(var, cmd)| {
                let prog = BINUTILS
                    .iter()
                    .find(|(v, _)| v == var)
                    .map(|(_, p)| *p)
                    .expect("a known variable");
                (prog.to_owned(), cmd)
            });
            let extra = self.extra.iter().map(|(n, c)| (n.clone(), c));
            let mut all: Vec<(String, &Vec<String>)> = named.chain(extra).collect();
            if self.is_cross() {
                let prefixed: Vec<_> = all
                    .iter()
                    .filter(|(p, _)| p != "pahole")
                    .map(|(p, c)| (format!("{}-{p}", self.target_arch.triple()), *c))
                    .collect();
                all.extend(prefixed);
            }
            for (prog, cmd) in all {
                let script = format!(
                    "#!/bin/sh\nexec {} \"$@\"\n",
                    cmd.iter()
                        .map(|a| format!("'{a}'"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                let p = bin.join(&prog);
                fs::write(&p, script).map_err(|e| super::io_err(&p, e))?;
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                    .map_err(|e| super::io_err(&p, e))?;
            }
            path_dir = Some(bin);
        }
        if !self.llvm.is_empty() {
            // `LLVM=1` calls `clang`, `ld.lld`, `llvm-ar`... by name (kernels before 5.18 know
            // no suffix or prefix form): this LLVM's, first on PATH.
            let bin = dir.join("llvm-bin");
            fs::create_dir_all(&bin).map_err(|e| super::io_err(&bin, e))?;
            for (name, target) in &self.llvm {
                let link = bin.join(name);
                let _ = fs::remove_file(&link);
                std::os::unix::fs::symlink(target, &link).map_err(|e| super::io_err(&link, e))?;
            }
            path_dir = Some(bin);
        }
        let mut vars = vec![format!("CC={}", cc.join(" "))];
        if !self.llvm.is_empty() {
            vars.push("LLVM=1".into());
        }
        if self.is_cross() {
            vars.push(format!("ARCH={}", self.target_arch.kernel_dir()));
            vars.push(format!("CROSS_COMPILE={}-", self.target_arch.triple()));
        }
        for (var, cmd) in &self.binutils {
            vars.push(format!("{var}={}", cmd.join(" ")));
        }
        Ok((vars, path_dir))
    }
}

/// Where a manifest's compiler is unpacked in the cache.
pub fn root_in_cache(m: &GccManifest, cache_dir: &Path) -> PathBuf {
    cache_dir
        .join("toolchains")
        .join(format!("{}-{}", m.name, m.digest()))
}

/// What [`fetch`] asks of each package downloaded (its URL and file) before unpacking.
pub type PackageCheck<'a> =
    dyn Fn(&GccPackage, &str, &Path) -> Result<(), Box<crate::repo::Error>> + 'a;

/// Downloads (verified by digest, through the package cache) and unpacks a pinned compiler
/// without root; a no-op when it is there. The root appears whole or not at all. `check`
/// sees each package downloaded (its URL and file) before anything is unpacked: its error
/// (a package's own signature refused) stops the fetch.
pub fn fetch(
    m: &GccManifest,
    client: &crate::http::Client,
    catalog: &crate::repo::Catalog,
    mirrors: &crate::repo::Mirrors,
    check: &PackageCheck<'_>,
) -> Result<PathBuf, Error> {
    let root = root_in_cache(m, &client.config().cache_dir);
    if root.join(".complete").is_file() {
        return Ok(root);
    }
    let mut files = Vec::new();
    for p in &m.packages {
        let base = mirrors
            .resolve(catalog, &p.mirror)
            .map_err(|source| Error::Mirror {
                compiler: m.name.clone(),
                source: Box::new(source),
            })?;
        // A yum repository a `mirror.list` points to elsewhere is recorded by its whole URL.
        let url = match p.filename.contains("://") {
            true => p.filename.clone(),
            false => format!("{base}/{}", p.filename),
        };
        let (f, _) = client
            .fetch_verified(&url, &p.sha256, Some(p.size))
            .map_err(|source| Error::Download {
                compiler: m.name.clone(),
                package: p.name.clone(),
                source: Box::new(source),
            })?;
        check(p, &url, &f).map_err(|source| Error::PackageSignature {
            compiler: m.name.clone(),
            package: p.name.clone(),
            source,
        })?;
        files.push(f);
    }
    crate::extract::unpack_into_place(&files, &root, &m.digest()).map_err(|e| match e {
        crate::extract::PlaceError::Io { path, source } => super::io_err(&path, source),
        crate::extract::PlaceError::Unpack(source) => Error::Unpack {
            what: m.name.clone(),
            source: Box::new(source),
        },
    })?;
    Ok(root)
}

/// What a manifest is to hold, before its packages are looked up.
#[derive(Debug, Clone)]
pub struct PinSpec {
    pub name: String,
    pub version_text: String,
    pub host_arch: Arch,
    pub target_arch: Arch,
    /// A catalog target (`debian-bookworm`): its suites' indexes give names, files, digests.
    pub target: String,
    pub note: String,
    pub gcc: String,
    pub binutils_prefix: String,
    pub loader: String,
    pub library_path: Vec<String>,
    pub packages: Vec<String>,
}

/// Pins a compiler: each package of `spec` resolved to its file and sha256 in the target's
/// signed indexes (the newest version its suites offer), with the mirror it is under.
pub fn pin(lister: &crate::repo::Lister, spec: &PinSpec) -> Result<GccManifest, Error> {
    let mut mirror_bases: Vec<(String, String)> = lister
        .catalog
        .mirrors
        .keys()
        .filter_map(|name| {
            let base = lister.mirrors.resolve(lister.catalog, name).ok()?;
            Some((name.clone(), base))
        })
        .collect();
    // The longest base first: `.../debian-security` before `.../debian`.
    mirror_bases.sort_by_key(|(_, b)| std::cmp::Reverse(b.len()));
    let mut packages = Vec::new();
    for name in &spec.packages {
        let p = lister
            .find_package(&spec.target, spec.host_arch, name)
            .map_err(|source| Error::Pin {
                package: name.clone(),
                source: Box::new(source),
            })?;
        let (mirror, filename) = mirror_bases
            .iter()
            .find_map(|(m, base)| {
                let rest = p.url.strip_prefix(base.as_str())?.strip_prefix('/')?;
                Some((m.clone(), rest.to_owned()))
            })
            .ok_or_else(|| Error::PinMirror {
                package: name.clone(),
                url: p.url.clone(),
            })?;
        packages.push(GccPackage {
            name: p.name,
            version: p.version,
            mirror,
            filename,
            size: p.size,
            sha256: p.sha256,
            own_signature: None,
        });
    }
    Ok(GccManifest {
        name: spec.name.clone(),
        version_text: spec.version_text.clone(),
        host_arch: spec.host_arch,
        target_arch: spec.target_arch,
        pinned_from: spec.target.clone(),
        note: spec.note.clone(),
        gcc: spec.gcc.clone(),
        binutils_prefix: spec.binutils_prefix.clone(),
        loader: spec.loader.clone(),
        library_path: spec.library_path.clone(),
        packages,
        nearest: false,
        major_only: false,
    })
}

fn packages(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Debian 12's gcc-12 for x86_64, which builds bookworm's 6.1 kernels: what
/// `toolchain/gcc-12-debian12.json` pins.
pub fn debian12_gcc12_spec() -> PinSpec {
    PinSpec {
        name: "gcc-12-debian12".into(),
        version_text: "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0".into(),
        host_arch: Arch::X86_64,
        target_arch: Arch::X86_64,
        target: "debian-bookworm".into(),
        note: "Debian 12's gcc-12 and binutils 2.40 with every shared library they load (and \
               libelf, for the kernel's kbuild tools), run with the packaged loader: the \
               compiler of bookworm's 6.1 kernels and (as x86_64-linux-gnu-gcc-12) of its \
               6.12 backports, with bookworm's pahole 1.24 for their modules' BTF."
            .into(),
        gcc: "usr/bin/gcc-12".into(),
        binutils_prefix: "usr/bin/x86_64-linux-gnu-".into(),
        loader: "lib64/ld-linux-x86-64.so.2".into(),
        library_path: vec![
            "lib/x86_64-linux-gnu".into(),
            "usr/lib/x86_64-linux-gnu".into(),
        ],
        packages: packages(&[
            "gcc-12",
            "cpp-12",
            "libgcc-12-dev",
            "binutils-x86-64-linux-gnu",
            "libbinutils",
            "libctf0",
            "libjansson4",
            "libisl23",
            "libmpc3",
            "libmpfr6",
            "libgmp10",
            "zlib1g",
            "libzstd1",
            "libelf1",
            // The 6.12 backports' kbuild (it depends on pahole) adds BTF to modules against
            // the `vmlinux` their headers ship, with the pahole they were configured with
            // (CONFIG_PAHOLE_VERSION=124: bookworm's 1.24) and kbuild's `resolve_btfids`.
            "pahole",
            "libdw1",
            "libbpf1",
            "liblzma5",
            "libbz2-1.0",
            "libc6",
        ]),
    }
}

/// Debian 13's gcc-14 for x86_64, which builds trixie's 6.12 kernels (their text names the
/// triplet-prefixed driver): what `toolchain/gcc-14-debian13.json` pins.
pub fn debian13_gcc14_spec() -> PinSpec {
    PinSpec {
        name: "gcc-14-debian13".into(),
        version_text: "x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0".into(),
        host_arch: Arch::X86_64,
        target_arch: Arch::X86_64,
        target: "debian-trixie".into(),
        note: "Debian 13's gcc-14 and binutils 2.44 with every shared library they load (and \
               libelf, for the kernel's kbuild tools), run with the packaged loader: the \
               compiler of trixie's 6.12 kernels."
            .into(),
        gcc: "usr/bin/x86_64-linux-gnu-gcc-14".into(),
        binutils_prefix: "usr/bin/x86_64-linux-gnu-".into(),
        loader: "usr/lib64/ld-linux-x86-64.so.2".into(),
        library_path: vec!["usr/lib/x86_64-linux-gnu".into()],
        packages: packages(&[
            "gcc-14-x86-64-linux-gnu",
            "cpp-14-x86-64-linux-gnu",
            "libgcc-14-dev",
            "binutils-x86-64-linux-gnu",
            "libbinutils",
            "libctf0",
            "libsframe1",
            "libjansson4",
            "libisl23",
            "libmpc3",
            "libmpfr6",
            "libgmp10",
            "zlib1g",
            "libzstd1",
            "libelf1t64",
            // kbuild's BTF step for modules (trixie's linux-kbuild depends on pahole).
            "pahole",
            "libdw1t64",
            "libbpf1",
            "liblzma5",
            "libbz2-1.0",
            "libc6",
        ]),
    }
}

/// Debian 11's gcc-10 for x86_64, which builds bullseye's 5.10 kernels: what
/// `toolchain/gcc-10-debian11.json` pins.
pub fn debian11_gcc10_spec() -> PinSpec {
    PinSpec {
        name: "gcc-10-debian11".into(),
        version_text: "gcc-10 (Debian 10.2.1-6) 10.2.1 20210110".into(),
        host_arch: Arch::X86_64,
        target_arch: Arch::X86_64,
        target: "debian-bullseye".into(),
        note: "Debian 11's gcc-10 and binutils 2.35.2 with every shared library they load (and \
               libelf and libssl1.1, for the kernel's kbuild tools), run with the packaged \
               loader: the compiler of bullseye's 5.10 kernels."
            .into(),
        gcc: "usr/bin/gcc-10".into(),
        binutils_prefix: "usr/bin/x86_64-linux-gnu-".into(),
        loader: "lib64/ld-linux-x86-64.so.2".into(),
        library_path: vec![
            "lib/x86_64-linux-gnu".into(),
            "usr/lib/x86_64-linux-gnu".into(),
        ],
        packages: packages(&[
            "gcc-10",
            "cpp-10",
            "libgcc-10-dev",
            "binutils-x86-64-linux-gnu",
            "libbinutils",
            "libctf0",
            "libctf-nobfd0",
            "libisl23",
            "libmpc3",
            "libmpfr6",
            "libgmp10",
            "zlib1g",
            "libzstd1",
            "libstdc++6",
            "libgcc-s1",
            "libelf1",
            // bullseye's kbuild tools (`sign-file`, `extract-cert`) link OpenSSL 1.1, which a
            // newer host does not have.
            "libssl1.1",
            "libc6",
        ]),
    }
}

/// Debian 12's cross gcc-12 for arm64 on x86_64 (`gcc-12-cross`): what
/// `toolchain/gcc-12-debian12-arm64-cross.json` pins. Built from gcc-12 12.2.0-14, it is not
/// the compiler of bookworm's arm64 kernels (12.2.0-14+deb12u1, whose one change is AArch64's
/// stack protector, CVE-2023-4039), and is refused for them ([`same_release`]).
pub fn debian12_gcc12_arm64_cross_spec() -> PinSpec {
    PinSpec {
        name: "gcc-12-debian12-arm64-cross".into(),
        version_text: "aarch64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0".into(),
        host_arch: Arch::X86_64,
        target_arch: Arch::Aarch64,
        target: "debian-bookworm".into(),
        note: "Debian 12's cross gcc-12 for arm64 and binutils 2.40 on x86_64 with every shared \
               library they load, run with the packaged loader. gcc-12-cross 12.2.0-14cross1 \
               says (Debian 12.2.0-14): bookworm's arm64 kernels say 12.2.0-14+deb12u1."
            .into(),
        gcc: "usr/bin/aarch64-linux-gnu-gcc-12".into(),
        binutils_prefix: "usr/bin/aarch64-linux-gnu-".into(),
        loader: "lib64/ld-linux-x86-64.so.2".into(),
        library_path: vec![
            "lib/x86_64-linux-gnu".into(),
            "usr/lib/x86_64-linux-gnu".into(),
        ],
        packages: packages(&[
            "gcc-12-aarch64-linux-gnu",
            "cpp-12-aarch64-linux-gnu",
            "libgcc-12-dev-arm64-cross",
            "binutils-aarch64-linux-gnu",
            "libbinutils",
            "libctf0",
            "libjansson4",
            "libisl23",
            "libmpc3",
            "libmpfr6",
            "libgmp10",
            "zlib1g",
            "libzstd1",
            "libelf1",
            "libc6",
        ]),
    }
}

/// Debian 13's cross gcc-14 for arm64 on x86_64 (`gcc-14-cross` 14.2.0-19cross1, from gcc-14
/// 14.2.0-19, the compiler of trixie's arm64 6.12 kernels): what
/// `toolchain/gcc-14-debian13-arm64-cross.json` pins.
pub fn debian13_gcc14_arm64_cross_spec() -> PinSpec {
    PinSpec {
        name: "gcc-14-debian13-arm64-cross".into(),
        version_text: "aarch64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0".into(),
        host_arch: Arch::X86_64,
        target_arch: Arch::Aarch64,
        target: "debian-trixie".into(),
        note: "Debian 13's cross gcc-14 for arm64 and binutils 2.44 on x86_64 with every shared \
               library they load (and libelf and pahole, for the kernel's kbuild), run with \
               the packaged loader: the compiler of trixie's arm64 6.12 kernels."
            .into(),
        gcc: "usr/bin/aarch64-linux-gnu-gcc-14".into(),
        binutils_prefix: "usr/bin/aarch64-linux-gnu-".into(),
        loader: "usr/lib64/ld-linux-x86-64.so.2".into(),
        library_path: vec!["usr/lib/x86_64-linux-gnu".into()],
        packages: packages(&[
            "gcc-14-aarch64-linux-gnu",
            "cpp-14-aarch64-linux-gnu",
            "libgcc-14-dev-arm64-cross",
            "binutils-aarch64-linux-gnu",
            "libbinutils",
            "libctf0",
            "libsframe1",
            "libjansson4",
            "libisl23",
            "libmpc3",
            "libmpfr6",
            "libgmp10",
            "zlib1g",
            "libzstd1",
            "libelf1t64",
            "pahole",
            "libdw1t64",
            "libbpf1",
            "liblzma5",
            "libbz2-1.0",
            "libc6",
        ]),
    }
}

/// Every compiler `toolchain/` pins, as specified (for re-pinning and checking).
pub fn specs() -> Vec<PinSpec> {
    vec![
        debian11_gcc10_spec(),
        debian12_gcc12_spec(),
        debian13_gcc14_spec(),
        debian12_gcc12_arm64_cross_spec(),
        debian13_gcc14_arm64_cross_spec(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifests_parse_and_name_their_text() {
        let all = GccManifest::embedded();
        assert!(!all.is_empty());
        for m in all {
            assert!(m.version_text.contains("gcc-"), "{}", m.name);
            assert!(m.packages.iter().all(|p| p.sha256.len() == 64));
        }
    }

    #[test]
    fn one_release_under_its_triplet_names_and_nothing_else() {
        let native = "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0";
        let x86 = "x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0";
        let cross = "aarch64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0";
        assert!(same_release(native, native, Arch::X86_64));
        assert!(same_release(x86, native, Arch::X86_64));
        assert!(same_release(native, x86, Arch::X86_64));
        assert!(same_release(native, cross, Arch::Aarch64));
        // Another target's triplet, another program, another Debian build: refused.
        assert!(!same_release(native, cross, Arch::X86_64));
        assert!(!same_release(x86, cross, Arch::Aarch64));
        assert!(!same_release(
            native,
            "x86_64-linux-gnu-gcc-14 (Debian 12.2.0-14+deb12u1) 12.2.0",
            Arch::X86_64
        ));
        assert!(!same_release(
            native,
            "aarch64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0",
            Arch::Aarch64
        ));
        assert!(!same_release(native, "", Arch::X86_64));
    }

    #[test]
    fn clang_versions_in_every_vendors_shape() {
        for (text, v) in [
            ("Debian clang version 14.0.6", Some(vec![14, 0, 6])),
            ("Ubuntu clang version 18.1.3 (1ubuntu1)", Some(vec![18, 1, 3])),
            (
                "Chromium OS 17.0_pre498229-r33 clang version 17.0.0 (/var/cache/chromeos-cache/distfiles/egit-src/external/github.com/llvm/llvm-project 14f0776550b5a49e1c42f49a00213f7f3fa047bf)",
                Some(vec![17, 0, 0]),
            ),
            ("clang version 19.1.7", Some(vec![19, 1, 7])),
            ("gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0", None),
            ("clang version x", None),
        ] {
            assert_eq!(clang_version(text), v, "{text}");
        }
    }

    #[test]
    fn a_clang_nobody_has_is_refused_naming_what_there_is() {
        let want = KernelCompiler {
            text: "Chromium OS 17.0_pre498229-r33 clang version 17.0.0".into(),
            gcc_version: 0,
        };
        let msg = choose(&want, Arch::X86_64, &GccManifest::embedded())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("Chromium OS 17.0_pre498229-r33"), "{msg}");
        // This host's clang is named with what it says.
        if let Some(p) = which("clang") {
            let line = version_line(&mut Command::new(&p)).unwrap();
            assert!(msg.contains(&line), "{msg}");
        }
    }

    #[test]
    fn a_compiler_nobody_has_is_refused_naming_both() {
        let want = KernelCompiler {
            text: "gcc-99 (Debian 99.1.0-1) 99.1.0".into(),
            gcc_version: 990100,
        };
        let err = choose(&want, Arch::X86_64, &GccManifest::embedded()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("gcc-99 (Debian 99.1.0-1) 99.1.0"), "{msg}");
        assert!(msg.contains("gcc-12-debian12"), "{msg}");
    }
}

#[cfg(test)]
mod vendor_tests {
    use super::*;

    #[test]
    fn gcc_versions_in_every_vendors_shape() {
        for (text, v) in [
            (
                "gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)",
                Some(vec![11, 4, 1]),
            ),
            (
                "gcc10-gcc (GCC) 10.5.0 20230707 (Red Hat 10.5.0-1)",
                Some(vec![10, 5, 0]),
            ),
            ("gcc (SUSE Linux) 7.5.0", Some(vec![7, 5, 0])),
            ("gcc (GCC) 15.1.1 20250425", Some(vec![15, 1, 1])),
            (
                "x86_64-bottlerocket-linux-gnu-gcc (Buildroot 2022.11.1) 11.3.0",
                Some(vec![11, 3, 0]),
            ),
            (
                "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0",
                Some(vec![12, 2, 0]),
            ),
            ("Debian clang version 14.0.6", None),
            ("gcc", None),
            ("gcc (GCC) x.y", None),
        ] {
            assert_eq!(gcc_version(text), v, "{text}");
        }
        assert_eq!(
            gcc_major("gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)"),
            Some(11)
        );
    }

    #[test]
    fn another_vendors_build_is_accepted_only_when_chosen_as_one_and_of_the_same_major() {
        let rhel = "gcc (GCC) 12.2.1 20221121 (Red Hat 12.2.1-7)";
        let debian = "gcc-12 (Debian 12.4.0-5) 12.4.0";
        let other_major = "gcc-13 (Debian 13.3.0-5) 13.3.0";
        assert!(!accepts(rhel, debian, Arch::X86_64, false, false));
        // Nearest is the same vendor's program only.
        assert!(!accepts(rhel, debian, Arch::X86_64, true, false));
        assert!(accepts(rhel, debian, Arch::X86_64, true, true));
        assert!(!accepts(rhel, other_major, Arch::X86_64, true, true));
        assert!(accepts(debian, debian, Arch::X86_64, false, false));
    }
}
