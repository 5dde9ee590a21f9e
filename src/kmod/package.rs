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
    /// Where the build's own directory is made (see [`Workdir`]): the unpacked kernel and
    /// kbuild's work.
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
    let work = Workdir::acquire(r.scratch, &workdir_key(r.release, r.packages))?;
    let scratch = work.path();
    rep.phase(&subject, Phase::Unpack);
    let staged = super::kbuild::stage_kernel(r.packages, &scratch.join("root"));
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
        CompilerSource::Kit(m, root) => Compiler::pinned(&m, &root, &want)?,
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
        scratch: &scratch.join("build"),
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

/// The name of a build's directory: the kernel's release when the caller knows it, else a
/// digest of the packages' names and sizes. A function of the inputs, never random.
fn workdir_key(release: Option<&str>, packages: &[PathBuf]) -> String {
    if let Some(r) = release.filter(|r| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '~'))
    }) {
        return r.to_owned();
    }
    let mut all = String::new();
    for p in packages {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        all.push_str(&format!("{}\0{size}\0", name.unwrap_or_default()));
    }
    crate::base::sha256(all.as_bytes())[..16].to_owned()
}

/// A module build's directory at a path that depends only on its inputs:
/// `<scratch>/probeforge-kmod-<release>`, held under an exclusive lock
/// (`probeforge-kmod-<release>.lock` beside it, kept) and removed when dropped.
///
/// Why not a random temporary name: kernels built with UBSAN (Ubuntu's) have gcc record the
/// path of every header it instruments in the module's `.rodata` (its source locations), and
/// gcc 13 applies no `-ffile-prefix-map` to them (measured: two builds of one Ubuntu kernel in
/// two random directories differed in exactly that string). A build in the same place gives
/// the same bytes; another process building the same kernel waits for the lock.
pub struct Workdir {
    dir: PathBuf,
    _lock: std::fs::File,
}

impl Workdir {
    pub fn acquire(scratch: &Path, key: &str) -> Result<Workdir, Error> {
        std::fs::create_dir_all(scratch).map_err(|e| super::io_err(scratch, e))?;
        let dir = scratch.join(format!("probeforge-kmod-{key}"));
        let lock_path = scratch.join(format!("probeforge-kmod-{key}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| super::io_err(&lock_path, e))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(super::io_err(&lock_path, std::io::Error::last_os_error()));
        }
        // Whatever a killed build left there is no one's now.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| super::io_err(&dir, e))?;
        }
        std::fs::create_dir(&dir).map_err(|e| super::io_err(&dir, e))?;
        Ok(Workdir { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one module build in a kernel tree prepared from its source needs (see
/// [`crate::vanilla`]): the tree, built in place by the compiler that prepared it.
pub struct InTree<'a> {
    /// The prepared tree (srctree and objtree in one).
    pub tree: &'a Path,
    pub driver: &'a DriverSource,
    pub driver_version: Option<&'a str>,
    pub target_id: &'a str,
    /// Falco's kernel version (`#N` of `uname -v`): a prepared tree does not say it.
    pub kernel_version: &'a str,
    pub module_name: &'a str,
    pub scratch: &'a Path,
    pub jobs: usize,
}

/// Builds and validates one module in a prepared tree, with the compiler its
/// `CONFIG_CC_VERSION_TEXT` names (the one that prepared it: this host's, the very same text),
/// computing the tree's missing `Module.symvers` lines for exactly the symbols it imports.
pub fn build_in_tree(r: &InTree, rep: &dyn Reporter) -> Result<Built, Error> {
    let mut tree = KernelTree::find(r.tree, None).map_err(|e| Error::Io {
        path: r.tree.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    tree.kernel_version = Some(r.kernel_version.to_owned());
    let work = Workdir::acquire(
        r.scratch,
        &format!("src-{}", workdir_key(Some(&tree.release), &[])),
    )?;
    let want = KernelCompiler::of(&tree)?;
    // gcc by the name its text gives; a clang-built tree's clang of exactly its text.
    let program = match super::gcc::clang_version(&want.text) {
        Some(_) => super::gcc::host_clang(&want).map_err(|available| Error::NoCompiler {
            kernel: want.text.clone(),
            arch: tree.arch,
            available,
        })?,
        None => Path::new(want.program()).to_owned(),
    };
    let compiler = Compiler::host(&program, &want)?;
    rep.phase(&tree.release, Phase::Compile);
    let built = super::build(&super::KmodRequest {
        tree: &tree,
        driver: r.driver,
        driver_version: r.driver_version,
        compiler: &compiler,
        target_id: r.target_id,
        module_name: r.module_name,
        scratch: &work.path().join("build"),
        jobs: r.jobs,
    });
    rep.done(&tree.release);
    let module = built?;
    let symvers_path = tree.objtree.join("Module.symvers");
    let symvers = std::fs::read_to_string(&symvers_path).unwrap_or_default();
    Ok(Built {
        symbols_checked: super::Symvers::parse(&symvers).len(),
        module,
        tree,
    })
}
