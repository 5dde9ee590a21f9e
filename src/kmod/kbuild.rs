//! Running kbuild for Falco's module: the kernel's tree made usable in a private root, the
//! driver laid out as its own CMake install (or dkms package) lays it out, and
//! `make -C <objtree> M=<driver> modules` with the kernel's own compiler.
//!
//! Reproducible by construction: every path the compiler sees is mapped to where it would be on
//! the target (`-ffile-prefix-map`), build user, host and time stamps are fixed, and the
//! driver's configure modules are read in sorted order, so two builds of the same inputs in two
//! directories give the same bytes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io_err, Error, KmodRequest, Module};
use crate::driver::{DriverSource, Layout};
use crate::kernel::KernelTree;

/// The module's name inside the kernel and the driver's device name: what Falco's userspace
/// opens (`/dev/falco0`) and its loaders download (`falco_*.ko`), whatever the source calls
/// itself (Debian's dkms package: `scap`).
pub const MODULE_NAME: &str = "falco";

/// Unpacks a kernel's packages (headers, their `-common` tree and the kernel's kbuild
/// package) whole into `root`, and makes the tree buildable there ([`prepare_tree`]).
pub fn stage_kernel(packages: &[PathBuf], root: &Path) -> Result<KernelTree, Error> {
    match packages {
        // One directory (`--headers DIR`): copied, since staging rewrites files in the tree.
        [dir] if dir.is_dir() => copy_links_too(dir, root)?,
        _ => unpack_packages(packages, root)?,
    }
    let tree = KernelTree::find(root, None).map_err(|e| Error::Io {
        path: root.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    prepare_tree(&tree)?;
    Ok(tree)
}

fn unpack_packages(packages: &[PathBuf], root: &Path) -> Result<(), Error> {
    crate::extract::unpack_all(
        packages,
        root,
        crate::extract::Selection::Everything,
        Default::default(),
    )
    .map_err(|source| Error::Unpack {
        what: root.display().to_string(),
        source: Box::new(source),
    })?;
    Ok(())
}

/// A copy of a directory with its symbolic links as links (a header tree's `source`, `build`).
fn copy_links_too(from: &Path, to: &Path) -> Result<(), Error> {
    fs::create_dir_all(to).map_err(|e| io_err(to, e))?;
    for p in sorted_entries(from)? {
        let t = fs::symlink_metadata(&p).map_err(|e| io_err(&p, e))?;
        let dest = to.join(p.file_name().unwrap());
        if t.is_dir() {
            copy_links_too(&p, &dest)?;
        } else if t.is_file() {
            // Modes kept: kbuild runs the tree's own programs.
            fs::copy(&p, &dest).map_err(|e| io_err(&p, e))?;
        } else if t.file_type().is_symlink() {
            let link = fs::read_link(&p).map_err(|e| io_err(&p, e))?;
            std::os::unix::fs::symlink(&link, &dest).map_err(|e| io_err(&dest, e))?;
        }
    }
    Ok(())
}

/// Makes an unpacked tree usable by kbuild where it lies: the objtree `Makefile` includes the
/// srctree (and from 7.x names its output) by absolute path `/usr/src/...`, which on this host
/// is not the root: rewritten relative to the objtree. Refuses a tree without kbuild's tools.
pub fn prepare_tree(tree: &KernelTree) -> Result<(), Error> {
    let mk = tree.objtree.join("Makefile");
    let text = fs::read_to_string(&mk).map_err(|e| io_err(&mk, e))?;
    if text.contains("/usr/src/") {
        let in_usr_src = tree.objtree.parent() == Some(&tree.root.join("usr/src"));
        let to = if in_usr_src {
            "../".to_owned()
        } else {
            format!("{}/usr/src/", tree.root.display())
        };
        let fixed = text
            .replace("include /usr/src/", &format!("include {to}"))
            .replace("=/usr/src/", &format!("={to}"));
        fs::write(&mk, fixed).map_err(|e| io_err(&mk, e))?;
    }
    for tool in ["scripts/basic/fixdep", "scripts/mod/modpost"] {
        let p = tree.objtree.join(tool);
        if !p.is_file() {
            return Err(Error::NoKbuild {
                release: tree.release.clone(),
                missing: p,
            });
        }
    }
    Ok(())
}

/// Makes every kbuild run against the tree (the driver's configure tests too, which start
/// kbuild with nothing but `CC` and `PATH`) build for the tree's architecture with its triplet's
/// binutils: `ARCH` and `CROSS_COMPILE` set in the objtree `Makefile` unless given. The kbuild
/// tools stay the host's (Debian's `linux-kbuild-*` of the host's architecture, with the
/// kernel's headers).
pub fn cross_tree(tree: &KernelTree) -> Result<(), Error> {
    let mk = tree.objtree.join("Makefile");
    let text = fs::read_to_string(&mk).map_err(|e| io_err(&mk, e))?;
    let head = format!(
        "export ARCH ?= {}\nexport CROSS_COMPILE ?= {}-\n",
        tree.arch.kernel_dir(),
        tree.arch.triple()
    );
    if !text.starts_with(&head) {
        fs::write(&mk, head + &text).map_err(|e| io_err(&mk, e))?;
    }
    Ok(())
}

/// Makes the kernel's kbuild tools (`fixdep`, `modpost`, `objtool`, ...: ELF programs of the
/// kernel's distro release) start through `loader` with `library_path`, as the pinned
/// compiler of that release does: each becomes a small script beside `<tool>.real`. A no-op
/// for tools already wrapped, so one tree serves any number of builds.
pub fn wrap_host_tools(tree: &KernelTree, loader: &Path, library_path: &str) -> Result<(), Error> {
    let mut dirs: Vec<PathBuf> = ["scripts", "tools"]
        .iter()
        .filter_map(|d| fs::canonicalize(tree.objtree.join(d)).ok())
        .collect();
    let mut tools = Vec::new();
    while let Some(d) = dirs.pop() {
        for p in sorted_entries(&d)? {
            let m = fs::symlink_metadata(&p).map_err(|e| io_err(&p, e))?;
            if m.is_dir() {
                dirs.push(p);
                continue;
            }
            use std::os::unix::fs::PermissionsExt;
            if !m.is_file() || m.permissions().mode() & 0o111 == 0 {
                continue;
            }
            let mut magic = [0u8; 4];
            let is_elf = fs::File::open(&p)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok()
                && &magic == b"\x7fELF";
            // `<tool>.real` beside its wrapper is a tool already wrapped, never wrapped again
            // (a second build in the same tree would make the wrapper start itself).
            let wrapped = p
                .to_str()
                .and_then(|s| s.strip_suffix(".real"))
                .is_some_and(|t| Path::new(t).is_file());
            if is_elf && !wrapped {
                tools.push(p);
            }
        }
    }
    // glibc's loader takes `--argv0` from 2.33 (Debian 12); bullseye's 2.31 does not.
    let has_argv0 = Command::new(loader).arg("--help").output().is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--argv0")
    });
    for tool in tools {
        let name = tool.file_name().unwrap().to_string_lossy().into_owned();
        let real = tool.with_file_name(format!("{name}.real"));
        if real.exists() {
            continue;
        }
        fs::rename(&tool, &real).map_err(|e| io_err(&tool, e))?;
        // A tool that finds its siblings by its own name (Debian's `modpost` runs
        // `<argv0>.real-lsb-64`, its `objtool` runs `objtool-<arch>`) must see the name it was
        // called by: `--argv0`, or without it the tool started as `.<name>.argv0/<name>`, a
        // link to the real program beside links to its siblings' wrappers.
        let start = match has_argv0 {
            true => format!("--argv0 '{}' '{}'", tool.display(), real.display()),
            false => format!("'{}'", argv0_dir(&tool, &name)?.join(&name).display()),
        };
        let script = format!(
            "#!/bin/sh\nexec '{}' --library-path '{}' {start} \"$@\"\n",
            loader.display(),
            library_path,
        );
        write(&tool, &script)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755))
            .map_err(|e| io_err(&tool, e))?;
    }
    Ok(())
}

/// `<dir>/.<name>.argv0/`: `<name>` linked to `../<name>.real`, every other entry of `<dir>`
/// linked to itself (`../<entry>`, a wrapper once wrapped).
fn argv0_dir(tool: &Path, name: &str) -> Result<PathBuf, Error> {
    let dir = tool.parent().expect("a tool in a directory");
    let d = dir.join(format!(".{name}.argv0"));
    fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
    let link = |target: String, at: PathBuf| -> Result<(), Error> {
        let _ = fs::remove_file(&at);
        std::os::unix::fs::symlink(target, &at).map_err(|e| io_err(&at, e))
    };
    link(format!("../{name}.real"), d.join(name))?;
    for p in sorted_entries(dir)? {
        let Some(entry) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if entry != name && !entry.starts_with('.') {
            link(format!("../{entry}"), d.join(entry))?;
        }
    }
    Ok(d)
}

/// The driver laid out for kbuild.
#[derive(Debug, Clone)]
pub struct StagedDriver {
    pub dir: PathBuf,
    pub version: String,
    /// Where the tree would be on a target (`/usr/src/falco-<version>`): debug info says this.
    pub mapped: String,
    /// The module's name (`falco`, or what the build asked for).
    pub name: String,
}

fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    if let Some(p) = to.parent() {
        fs::create_dir_all(p).map_err(|e| io_err(p, e))?;
    }
    fs::copy(from, to).map_err(|e| io_err(from, e))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(to, fs::Permissions::from_mode(0o644)).map_err(|e| io_err(to, e))?;
    Ok(())
}

fn read(p: &Path) -> Result<String, Error> {
    fs::read_to_string(p).map_err(|e| io_err(p, e))
}

fn write(p: &Path, text: &str) -> Result<(), Error> {
    fs::write(p, text).map_err(|e| io_err(p, e))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    Ok(v)
}

/// `#define NAME "value"` lines with a new value.
fn set_define(text: &str, name: &str, value: &str) -> String {
    text.split_inclusive('\n')
        .map(|l| {
            let mut w = l.split_whitespace();
            if w.next() == Some("#define") && w.next() == Some(name) {
                format!("#define {name} \"{value}\"\n")
            } else {
                l.to_owned()
            }
        })
        .collect()
}

/// The files `set(DRIVER_SOURCES ...)` of the driver's CMakeLists.txt installs, when it says.
fn cmake_sources(driver_dir: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(driver_dir.join("CMakeLists.txt")).ok()?;
    let list = text.split("set(DRIVER_SOURCES").nth(1)?.split(')').next()?;
    let v: Vec<String> = list.split_whitespace().map(str::to_owned).collect();
    (!v.is_empty()).then_some(v)
}

/// Lays the driver out in `dest` as its install does, configured for Falco (module and
/// devices named `name`, Falco's [`MODULE_NAME`] unless a consumer needs another, such as
/// Debian's sysdig `scap`; version `version`). Libs trees: `driver_config.h`,
/// `Makefile` and `dkms.conf` from their templates, `DRIVER_SOURCES`, and each configure module
/// with its `Makefile`, `build.sh` and `Makefile.inc`. Dkms trees: copied, renamed.
pub fn stage_driver(
    src: &DriverSource,
    version: &str,
    name: &str,
    dest: &Path,
) -> Result<StagedDriver, Error> {
    if !src.dir.join("main.c").is_file() {
        return Err(Error::NoModule {
            path: src.dir.clone(),
            why: "the kernel module's sources are not in this tree".into(),
        });
    }
    fs::create_dir_all(dest).map_err(|e| io_err(dest, e))?;
    match src.layout {
        Layout::Libs => stage_libs(src, version, dest)?,
        Layout::Dkms => stage_dkms(src, version, dest)?,
    }
    if name != MODULE_NAME {
        rename_module(dest, MODULE_NAME, name)?;
    }
    // The configure modules are included in `find` order, which is the directory's: sorted,
    // so the compiler's command line does not depend on the file system.
    let mk = dest.join("Makefile");
    let text = read(&mk)?;
    let sorted = text.replace("-name Makefile.inc)", "-name Makefile.inc | LC_ALL=C sort)");
    write(&mk, &sorted)?;
    Ok(StagedDriver {
        dir: dest.to_owned(),
        version: version.to_owned(),
        mapped: format!("/usr/src/{name}-{version}"),
        name: name.to_owned(),
    })
}

fn stage_libs(src: &DriverSource, version: &str, dest: &Path) -> Result<(), Error> {
    let d = &src.dir;
    let tpl = |name: &str| -> Result<String, Error> {
        let p = d.join(name);
        if p.is_file() {
            read(&p)
        } else {
            Err(Error::NoModule {
                path: d.clone(),
                why: format!("`{name}` is missing"),
            })
        }
    };
    let sources = match cmake_sources(d) {
        Some(s) => s,
        None => sorted_entries(d)?
            .into_iter()
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "c" || e == "h"))
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
            .collect(),
    };
    for f in &sources {
        copy(&d.join(f), &dest.join(f))?;
    }
    let cfg = crate::driver::driver_config(
        &tpl("driver_config.h.in")?,
        version,
        src.api_version,
        src.schema_version,
    );
    write(&dest.join("driver_config.h"), &cfg)?;
    let make = tpl("Makefile.in")?
        .replace("@DRIVER_NAME@", MODULE_NAME)
        .replace("@KBUILD_FLAGS@", "");
    write(&dest.join("Makefile"), &make)?;
    if let Ok(conf) = tpl("dkms.conf.in") {
        let conf = conf
            .replace("@DRIVER_PACKAGE_NAME@", MODULE_NAME)
            .replace("@DRIVER_NAME@", MODULE_NAME)
            .replace("@DRIVER_VERSION@", version);
        write(&dest.join("dkms.conf"), &conf)?;
    }
    let cfg_dir = d.join("configure");
    if cfg_dir.is_dir() {
        let inc = tpl("configure/Makefile.inc.in")?;
        for m in sorted_entries(&cfg_dir)? {
            if !m.join("test.c").is_file() {
                continue;
            }
            let name = m.file_name().unwrap().to_string_lossy().into_owned();
            let out = dest.join("configure").join(&name);
            copy(&m.join("test.c"), &out.join("test.c"))?;
            copy(&cfg_dir.join("Makefile"), &out.join("Makefile"))?;
            copy(&cfg_dir.join("build.sh"), &out.join("build.sh"))?;
            write(
                &out.join("Makefile.inc"),
                &inc.replace("@CONFIGURE_MODULE@", &name),
            )?;
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    fs::create_dir_all(to).map_err(|e| io_err(to, e))?;
    for p in sorted_entries(from)? {
        let t = fs::symlink_metadata(&p).map_err(|e| io_err(&p, e))?;
        let dest = to.join(p.file_name().unwrap());
        if t.is_dir() {
            copy_tree(&p, &dest)?;
        } else if t.is_file() {
            copy(&p, &dest)?;
        }
    }
    Ok(())
}

fn stage_dkms(src: &DriverSource, version: &str, dest: &Path) -> Result<(), Error> {
    copy_tree(&src.dir, dest)?;
    let cfg = dest.join("driver_config.h");
    let text = read(&cfg)?;
    let old = crate::kernel::define_string(&text, "DRIVER_NAME").unwrap_or_else(|| "scap".into());
    write(&cfg, &set_define(&text, "DRIVER_VERSION", version))?;
    rename_module(dest, &old, MODULE_NAME)
}

/// Names the staged module and its devices `new` (from `old`): `DRIVER_NAME` and
/// `DRIVER_DEVICE_NAME` in `driver_config.h`, `old-y += main.o ...` and `obj-m += old.o` in
/// the `Makefile`.
fn rename_module(dest: &Path, old: &str, new: &str) -> Result<(), Error> {
    let cfg = dest.join("driver_config.h");
    let text = read(&cfg)?;
    let text = set_define(&text, "DRIVER_NAME", new);
    let text = set_define(&text, "DRIVER_DEVICE_NAME", new);
    write(&cfg, &text)?;
    let mk = dest.join("Makefile");
    let text: String = read(&mk)?
        .split_inclusive('\n')
        .map(|l| {
            if let Some(rest) = l.strip_prefix(&format!("{old}-y")) {
                format!("{new}-y{rest}")
            } else if l.trim_start().starts_with("obj-m") {
                l.replace(&format!("{old}.o"), &format!("{new}.o"))
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !text.contains(&format!("{new}.o")) {
        return Err(Error::NoModule {
            path: mk,
            why: format!("its Makefile builds no `{old}.o` module"),
        });
    }
    write(&mk, &text)?;
    Ok(())
}

fn canonical(p: &Path) -> Result<PathBuf, Error> {
    fs::canonicalize(p).map_err(|e| io_err(p, e))
}

/// The last `n` lines of a log.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `[configure-kmod] Setting HAS_X flag` lines: the configure results, sorted.
fn configure_results(log: &str) -> Vec<String> {
    let mut v: Vec<String> = log
        .lines()
        .filter_map(|l| {
            let rest = l.split("[configure-kmod] Setting ").nth(1)?;
            Some(rest.strip_suffix(" flag")?.trim().to_owned())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Stages the driver into `req.scratch`, runs kbuild and validates the module it wrote.
pub fn build(req: &KmodRequest) -> Result<Module, Error> {
    let tree = req.tree;
    let version = req.driver.version(req.driver_version)?;
    // Never a silent build with another compiler than the kernel's.
    let want = super::KernelCompiler::of(tree)?;
    let same = super::gcc::accepts(
        &want.text,
        &req.compiler.version_text,
        tree.arch,
        req.compiler.nearest,
        req.compiler.major_only,
    );
    if !same {
        return Err(Error::CompilerMismatch {
            kernel: want.text,
            found: req.compiler.version_text.clone(),
            compiler: req.compiler.origin.clone(),
        });
    }
    if req.compiler.target_arch != tree.arch {
        return Err(Error::CompilerArch {
            release: tree.release.clone(),
            kernel: tree.arch,
            compiler: req.compiler.origin.clone(),
            compiles_for: req.compiler.target_arch,
        });
    }
    prepare_tree(tree)?;
    if req.compiler.is_cross() {
        cross_tree(tree)?;
    }
    if let Some((loader, lp)) = req.compiler.launcher() {
        wrap_host_tools(tree, loader, lp)?;
    }
    fs::create_dir_all(req.scratch).map_err(|e| io_err(req.scratch, e))?;
    let scratch = canonical(req.scratch)?;
    let dir = scratch.join("driver");
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    }
    let staged = stage_driver(req.driver, &version, req.module_name, &dir)?;
    let root = canonical(&tree.root)?;
    let objtree = canonical(&tree.objtree)?;
    let cc_dir = scratch.join("cc");
    let (vars, path_dir) = req.compiler.make_vars(&cc_dir)?;
    let path = match (path_dir, std::env::var_os("PATH")) {
        (Some(d), Some(p)) => {
            let mut all = vec![d];
            all.extend(std::env::split_paths(&p));
            std::env::join_paths(all).map_err(|e| io_err(&cc_dir, std::io::Error::other(e)))?
        }
        (Some(d), None) => d.into_os_string(),
        (None, p) => p.unwrap_or_default(),
    };
    let kernel_version = tree
        .kernel_version
        .clone()
        .ok_or_else(|| Error::NoKernelVersion {
            release: tree.release.clone(),
        })?;
    // Paths as they are on the target: the kernel tree under `/`, the driver where its install
    // puts it. (The driver is outside the root, so the two maps never overlap.)
    let kcflags = format!(
        "KCFLAGS=-ffile-prefix-map={}={} -ffile-prefix-map={}/=",
        staged.dir.display(),
        staged.mapped,
        root.display()
    );
    let log_path = scratch.join("kbuild.log");
    let run = |modpost_warn: bool| -> Result<String, Error> {
        let log = fs::File::create(&log_path).map_err(|e| io_err(&log_path, e))?;
        let log2 = log.try_clone().map_err(|e| io_err(&log_path, e))?;
        let status = Command::new("make")
            .arg("-C")
            .arg(&objtree)
            .arg(format!("M={}", staged.dir.display()))
            .arg(format!("KERNELDIR={}", objtree.display()))
            .arg(format!("-j{}", req.jobs.max(1)))
            .args(&vars)
            .arg(&kcflags)
            .args(modpost_warn.then_some("KBUILD_MODPOST_WARN=1"))
            .arg("modules")
            .env("LC_ALL", "C")
            .env("PATH", &path)
            .env("SOURCE_DATE_EPOCH", "0")
            .env("KBUILD_BUILD_TIMESTAMP", "1970-01-01")
            .env("KBUILD_BUILD_USER", "probeforge")
            .env("KBUILD_BUILD_HOST", "probeforge")
            .env_remove("MAKEFLAGS")
            .env_remove("KBUILD_OUTPUT")
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2)
            .status()
            .map_err(|e| io_err(Path::new("make"), e))?;
        let text = String::from_utf8_lossy(&fs::read(&log_path).unwrap_or_default()).into_owned();
        if !status.success() {
            return Err(Error::Compile {
                driver: version.clone(),
                release: tree.release.clone(),
                status: status.to_string(),
                log: log_path.clone(),
                tail: tail(&text, 25),
            });
        }
        Ok(text)
    };
    let mut text = run(false)?;
    let ko = staged.dir.join(format!("{}.ko", staged.name));
    // A tree prepared from its source has no Module.symvers: the CRCs of exactly the symbols
    // this module imports are computed in the tree, then kbuild's modpost runs again with them.
    let mut crcs = None;
    if super::crcs::is_source_tree(tree) {
        let first = fs::read(&ko).map_err(|_| Error::NoOutput {
            driver: version.clone(),
            release: tree.release.clone(),
            path: ko.clone(),
        })?;
        let needed = super::crcs::undefined_symbols(&first).map_err(|e| Error::Invalid {
            driver: version.clone(),
            release: tree.release.clone(),
            source: super::ValidateError::Elf(e),
        })?;
        // modpost versions `module_layout` too (kernels up to 6.2), where the tree exports it.
        let done = super::crcs::complete(
            tree,
            &needed,
            &["module_layout"],
            &super::crcs::Make {
                args: &vars,
                path: &path,
                jobs: req.jobs,
                log: &scratch.join("crcs.log"),
            },
        )?;
        crcs = Some(done);
        // modpost again, with those CRCs. Its unresolved-symbol errors become warnings (as in
        // the first run, which had no Module.symvers): the driver's configure tests link
        // against a file that holds only the module's imports, and validation below refuses
        // any import the tree does not export with its CRC.
        text = run(true)?;
    }
    let bytes = fs::read(&ko).map_err(|_| Error::NoOutput {
        driver: version.clone(),
        release: tree.release.clone(),
        path: ko.clone(),
    })?;
    let symvers_path = objtree.join("Module.symvers");
    let symvers = super::Symvers::parse(&read(&symvers_path)?);
    let report = super::validate(&bytes, tree, &symvers).map_err(|source| Error::Invalid {
        driver: version.clone(),
        release: tree.release.clone(),
        source,
    })?;
    Ok(Module {
        sha256: crate::base::sha256(&bytes),
        bytes,
        file_name: super::module_file_name(
            req.target_id,
            &crate::loader::file_release(req.target_id, &tree.release, tree.uname_v.as_deref()),
            &kernel_version,
        ),
        driver_version: version,
        kernel_release: tree.release.clone(),
        vermagic: report.vermagic,
        configure: configure_results(&text),
        compiler: req.compiler.origin.clone(),
        compiler_text: req.compiler.version_text.clone(),
        log: log_path,
        signed_by: None,
        symvers_computed: crcs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_results_are_read_sorted() {
        let log =
            "[configure-kmod] Setting HAS_B flag\nx\n[configure-kmod] Setting HAS_0__SANITY flag\n";
        assert_eq!(configure_results(log), vec!["HAS_0__SANITY", "HAS_B"]);
    }

    #[test]
    fn defines_are_replaced_whole() {
        let t = "#define DRIVER_NAME \"scap\"\n#define DRIVER_NAME_X \"y\"\n";
        assert_eq!(
            set_define(t, "DRIVER_NAME", "falco"),
            "#define DRIVER_NAME \"falco\"\n#define DRIVER_NAME_X \"y\"\n"
        );
    }
}
