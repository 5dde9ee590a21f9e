//! From a kernel's packages to a validated module: the one path `build --driver kmod` and the
//! batch share. The packages are unpacked whole (kbuild's tools included), the kernel's own
//! compiler is chosen from its headers (pinned by digest and fetched through the caller, or the
//! host's with the very same version text), kbuild builds the driver, and the module is
//! checked against the kernel's `Module.symvers`.

use std::path::{Path, PathBuf};

use super::resolve::FindCompiler;
use super::{Compiler, CompilerSource, Error, KernelCompiler, Module};
use crate::driver::DriverSource;
use crate::kernel::{Arch, KernelTree};
use crate::report::{Phase, Reporter};

/// What one module build from packages needs.
pub struct FromPackages<'a> {
    /// The kernel's packages: headers, their `-common`, and kbuild's (Debian `linux-kbuild-*`).
    pub packages: &'a [PathBuf],
    pub driver: &'a DriverSource,
    /// The driver version to build it as (default: what the source says it is).
    pub driver_version: Option<&'a str>,
    /// Falco's target id; `None`: read from the headers' os-release.
    pub target_id: Option<&'a str>,
    /// Falco's kernel version (`#N` of `uname -v`, Ubuntu's `37~24.04.1`), as the listing
    /// says it; `None`: what the headers say (Debian's do, Ubuntu's do not).
    pub kernel_version: Option<&'a str>,
    /// The module's name (see [`super::KmodRequest::module_name`]).
    pub module_name: &'a str,
    /// What the caller expects the packages to be (a mismatch is an error naming both).
    pub release: Option<&'a str>,
    pub arch: Option<Arch>,
    /// A private directory for this build (the unpacked kernel and kbuild's work).
    pub scratch: &'a Path,
    /// `make -j`.
    pub jobs: usize,
    /// Where the kernel's compiler comes from, and how it is fetched into the cache.
    pub compilers: &'a dyn FindCompiler,
    /// The catalog target that listed the kernel, whose indexes hold its compiler.
    pub target: Option<&'a str>,
}

/// A module built from packages, and the kernel it was built for.
pub struct Built {
    pub module: Module,
    pub tree: KernelTree,
    /// The kernel's exported symbols the module was checked against.
    pub symbols_checked: usize,
}

/// Builds and validates one module; `rep` hears each phase under the kernel's release.
pub fn build(r: &FromPackages, rep: &dyn Reporter) -> Result<Built, Error> {
    let subject = r.release.unwrap_or("kernel").to_owned();
    rep.phase(&subject, Phase::Unpack);
    let staged = super::kbuild::stage_kernel(r.packages, &r.scratch.join("root"));
    rep.done(&subject);
    let mut tree = staged?;
    if let Some(kv) = r.kernel_version {
        tree.kernel_version = Some(kv.to_owned());
    }
    if let Some(want) = r.release.filter(|w| **w != tree.release) {
        return Err(Error::OtherKernel {
            want: want.to_owned(),
            found: tree.release.clone(),
        });
    }
    if let Some(want) = r.arch.filter(|a| *a != tree.arch) {
        return Err(Error::OtherArch {
            release: tree.release.clone(),
            want,
            found: tree.arch,
        });
    }
    let target_id = match r.target_id {
        Some(t) => t.to_owned(),
        None => crate::pipeline::default_target_id(&tree).ok_or_else(|| Error::NoTargetId {
            release: tree.release.clone(),
        })?,
    };
    let want = KernelCompiler::of(&tree)?;
    let compiler = match r.compilers.find(&tree, r.target)? {
        CompilerSource::Host(path) => Compiler::host(&path, &want)?,
        CompilerSource::Pinned(m) => {
            rep.phase(&m.name, Phase::Download);
            let root = r.compilers.fetch(&m);
            rep.done(&m.name);
            Compiler::pinned(&m, &root?, &want)?
        }
    };
    rep.phase(&tree.release, Phase::Compile);
    let built = super::build(&super::KmodRequest {
        tree: &tree,
        driver: r.driver,
        driver_version: r.driver_version,
        compiler: &compiler,
        target_id: &target_id,
        module_name: r.module_name,
        scratch: &r.scratch.join("build"),
        jobs: r.jobs,
    });
    rep.done(&tree.release);
    let module = built?;
    let symvers_path = tree.objtree.join("Module.symvers");
    let symvers =
        std::fs::read_to_string(&symvers_path).map_err(|e| super::io_err(&symvers_path, e))?;
    Ok(Built {
        symbols_checked: super::Symvers::parse(&symvers).len(),
        module,
        tree,
    })
}
