//! Falco's kernel module (`.ko`), built without Docker or root, and checked against its kernel.
//!
//! From Falco 0.44 the kernel module is the one driver still built per kernel, and the only one
//! for kernels older than 5.8. Unlike the probe, a module is kbuild's own product: it is built by
//! kbuild (`make -C <objtree> M=<driver> modules`), with the kernel's host tools (Debian's
//! `linux-kbuild-*`), and by the very compiler that built the kernel (`gcc`: which one the
//! headers name; a different one is refused, never substituted). The same inputs give the same
//! bytes in any directory at any time.
//!
//! - [`gcc`]: the kernel's compiler: read from the headers, pinned by digest in
//!   `toolchain/gcc-*.json` or found on the host with exactly the same `--version` text.
//! - [`kbuild`]: the driver staged as its CMake install lays it out (`driver_config.h`,
//!   `Makefile`, configure modules; the module and its devices named `falco`), and kbuild run
//!   in a private scratch directory. With a pinned compiler, its binutils come first on `PATH`
//!   and the kernel's kbuild tools (`fixdep`, `modpost`, `objtool`, of the kernel's own distro
//!   release) start through the compiler's packaged loader, so a newer release's kernel builds
//!   on an older host.
//! - [`validate`]: a module's ELF machine, `.modinfo`, undefined symbols and `__versions` CRCs
//!   against the kernel's `Module.symvers` (pure over bytes).
//!
//! - [`resolve`]: a compiler no manifest pins, found in the kernel's own distribution's signed
//!   indexes (the exact build its headers name, with its dependency closure) and made a
//!   manifest like the pinned ones.
//! - [`crcs`]: the `Module.symvers` lines a tree prepared from its source lacks, for exactly
//!   the symbols a module imports: their exporting objects compiled alone, genksyms' CRCs read.
//! - [`package`]: from a kernel's packages to a validated module (unpack, compiler, kbuild).
//! - [`sign`]: a module signed with the user's key and certificate exactly as the kernel's
//!   `scripts/sign-file` signs it (Secure Boot), and its signature read and verified.
//!
//! The entry points: [`package::build`], [`build`] and [`validate::validate`]. This module never prints, never
//! publishes and never decides which kernel or driver is meant.

pub mod crcs;
pub mod gcc;
pub mod kbuild;
pub mod package;
pub mod resolve;
pub mod resolve_pacman;
pub mod resolve_rpm;
pub mod sign;
pub mod validate;

use std::path::{Path, PathBuf};

pub use gcc::{Compiler, CompilerSource, GccManifest, KernelCompiler};
pub use validate::{validate, Report, Symvers, ValidateError};

use crate::driver::DriverSource;
use crate::kernel::{Arch, KernelTree};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kernel `{release}`: its headers do not name the compiler that built it (no CONFIG_CC_VERSION_TEXT)")]
    NoCompilerText { release: String },
    #[error("no compiler `{kernel}` for {arch:?} kernels: available are {}", if .available.is_empty() { "none".to_owned() } else { .available.join(", ") })]
    NoCompiler {
        kernel: String,
        arch: Arch,
        available: Vec<String>,
    },
    #[error("clang `{}` ({text}) has no LLVM binutils beside it (LLVM=1 needs {}): on Debian `apt-get install lld-N llvm-N` of its major version", .clang.display(), .missing.join(", "))]
    NoLlvmTools {
        clang: PathBuf,
        text: String,
        missing: Vec<String>,
    },
    #[error("the kernel was built by `{kernel}` but {compiler} says `{found}`")]
    CompilerMismatch {
        kernel: String,
        found: String,
        compiler: String,
    },
    #[error("kernel `{release}` is {kernel:?}, but {compiler} compiles for {compiles_for:?}")]
    CompilerArch {
        release: String,
        kernel: Arch,
        compiler: String,
        compiles_for: Arch,
    },
    #[error("cannot run the compiler ({compiler})")]
    RunCompiler {
        compiler: String,
        #[source]
        source: std::io::Error,
    },
    #[error("compiler `{compiler}`: no mirror")]
    Mirror {
        compiler: String,
        #[source]
        source: Box<crate::repo::Error>,
    },
    #[error("compiler `{compiler}`: package `{package}`")]
    Download {
        compiler: String,
        package: String,
        #[source]
        source: Box<crate::http::Error>,
    },
    #[error("compiler `{compiler}`: package `{package}` is refused")]
    PackageSignature {
        compiler: String,
        package: String,
        #[source]
        source: Box<crate::repo::Error>,
    },
    #[error("cannot unpack `{what}`")]
    Unpack {
        what: String,
        #[source]
        source: Box<crate::extract::Error>,
    },
    #[error("`{kernel}` is not in {target}'s indexes: {why}")]
    NotInIndex {
        kernel: String,
        target: String,
        why: String,
    },
    #[error("reading {target}'s indexes for the kernel's compiler")]
    Index {
        target: String,
        #[source]
        source: Box<crate::repo::Error>,
    },
    #[error("pinning `{package}`")]
    Pin {
        package: String,
        #[source]
        source: Box<crate::repo::Error>,
    },
    #[error("pinning `{package}`: `{url}` is below no catalog mirror")]
    PinMirror { package: String, url: String },
    #[error("`{}`: no kernel module in this driver (no main.c): {why}", .path.display())]
    NoModule { path: PathBuf, why: String },
    #[error("driver source")]
    Driver(#[source] Box<crate::driver::Error>),
    #[error("kernel `{release}`: kbuild's own tools are missing (`{}`): add the kernel's kbuild package (Debian: linux-kbuild-*) to the headers", .missing.display())]
    NoKbuild { release: String, missing: PathBuf },
    #[error("kernel `{release}`: its headers do not say its version (`#N` of `uname -v`), which Falco's file name needs")]
    NoKernelVersion { release: String },
    #[error("driver {driver} for kernel `{release}`: kbuild failed ({status}); last lines of `{}`:\n{tail}", .log.display())]
    Compile {
        driver: String,
        release: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("driver {driver} for kernel `{release}`: kbuild succeeded but wrote no `{}`", .path.display())]
    NoOutput {
        driver: String,
        release: String,
        path: PathBuf,
    },
    #[error("driver {driver} for kernel `{release}`: the module does not validate")]
    Invalid {
        driver: String,
        release: String,
        #[source]
        source: ValidateError,
    },
    #[error("kernel `{release}`: sources give symbol `{symbol}` several CRCs ({})", .found.join(", "))]
    AmbiguousCrc {
        release: String,
        symbol: String,
        found: Vec<String>,
    },
    #[error("the headers are kernel `{found}`, not `{want}`")]
    OtherKernel { want: String, found: String },
    #[error("kernel `{release}` is {found}, but {want} was asked for")]
    OtherArch {
        release: String,
        want: Arch,
        found: Arch,
    },
    #[error("kernel `{release}`: cannot tell the target id from the headers: pass --target-id")]
    NoTargetId { release: String },
    #[error("i/o on `{}`", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::driver::Error> for Error {
    fn from(e: crate::driver::Error) -> Error {
        Error::Driver(Box::new(e))
    }
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// What one module build needs.
#[derive(Debug, Clone)]
pub struct KmodRequest<'a> {
    /// The kernel, unpacked with kbuild's own tools (see [`kbuild::stage_kernel`]).
    pub tree: &'a KernelTree,
    /// The driver source, as [`crate::driver::open`] found it.
    pub driver: &'a DriverSource,
    /// The driver version to build it as (default: what the source says it is).
    pub driver_version: Option<&'a str>,
    /// The kernel's own compiler (see [`gcc::choose`]).
    pub compiler: &'a Compiler,
    /// Falco's target id (`debian`), for the file name.
    pub target_id: &'a str,
    /// The module's and its devices' name: [`kbuild::MODULE_NAME`] (`falco`, what Falco opens),
    /// or another consumer's (Debian's sysdig opens `scap`).
    pub module_name: &'a str,
    /// A private directory for this build; it is created and may be left behind.
    pub scratch: &'a Path,
    /// `make -j`.
    pub jobs: usize,
}

/// A built module.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Module {
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub sha256: String,
    /// `falco_<target-id>_<kernel-release>_<kernel-version>.ko`.
    pub file_name: String,
    pub driver_version: String,
    pub kernel_release: String,
    /// The module's `vermagic`, checked equal to the kernel's.
    pub vermagic: String,
    /// `-DHAS_*` configure results kbuild reported, sorted.
    pub configure: Vec<String>,
    /// Which compiler built it (`pinned gcc-12-debian12`, `host /usr/bin/gcc-12`).
    pub compiler: String,
    pub compiler_text: String,
    /// The full kbuild log.
    pub log: PathBuf,
    /// Who signed it (`--sign-key`/`--sign-cert`) and with which hash; never the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<sign::Signed>,
    /// For a tree prepared from its source: the `Module.symvers` lines computed for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symvers_computed: Option<crcs::Completed>,
}

/// Falco's module file name, as its loaders download it.
pub fn module_file_name(target_id: &str, release: &str, kernel_version: &str) -> String {
    crate::pipeline::Driver::Kmod.file_name(target_id, release, kernel_version)
}

/// Builds one module with kbuild and validates it against the kernel it was built for.
pub fn build(req: &KmodRequest) -> Result<Module, Error> {
    kbuild::build(req)
}
