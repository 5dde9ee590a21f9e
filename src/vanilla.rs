//! A kernel tree made from its source and a `.config`, for kernels whose headers are not
//! packaged (vanilla kernel.org releases, talos, minikube) or to check a distro's own source
//! package: the source tarball (or a package holding one, Debian's `linux-source-*`) unpacked
//! through `extract`, the `.config` (a file, or the kernel image package that ships it) put in,
//! then `make olddefconfig` and `make modules_prepare` with the host's compiler and the kernel
//! release the target's loaders expect (`KERNELRELEASE`, which is what `uname -r` says of it).
//! A config of a clang-built kernel (`CONFIG_CC_IS_CLANG=y`) is prepared with `LLVM=1` and
//! this host's clang of exactly its `CONFIG_CC_VERSION_TEXT` ([`crate::kmod::gcc::host_clang`]),
//! or refused. Once per (source, config, release, arch, host compiler): kept in the cache by that digest,
//! appearing whole or not at all. The tree then builds like any header tree.
//!
//! Never trusts an archive path (extract decides); never prepares in place of a cached tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::base::Cache;
use crate::extract::{self, Limits, Selection};
use crate::kernel::Arch;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unpack(#[from] extract::Error),
    #[error("`{}` holds no kernel source tarball (usr/src/linux-*.tar.*)", .0.display())]
    NoTarball(PathBuf),
    #[error("`{}`: expected one top-level kernel directory (with Makefile and Kconfig), found {found}", path.display())]
    NoTree { path: PathBuf, found: String },
    #[error("`{}` holds no kernel .config{}", path.display(), .release.as_ref().map(|r| format!(" for `{r}`")).unwrap_or_default())]
    NoConfig {
        path: PathBuf,
        release: Option<String>,
    },
    #[error("`{}` holds several kernel configs ({}): say which with --kernel-release", path.display(), found.join(", "))]
    SeveralConfigs { path: PathBuf, found: Vec<String> },
    #[error("`{}` is version {source_version} but `{}` is {config_version}: the source of one kernel and the config of another", tarball.display(), config.display())]
    Mismatch {
        tarball: PathBuf,
        source_version: String,
        config: PathBuf,
        config_version: String,
    },
    #[error(
        "no kernel release: give --kernel-release (the `uname -r` of the kernel to build for)"
    )]
    NoRelease,
    #[error("kernel release `{0}` is longer than the 64 bytes uname allows")]
    LongRelease(String),
    #[error("`{}` is a config of a kernel built with clang (`{text}`): {why} (a tree prepared with another compiler would not be that kernel's)", path.display())]
    Clang {
        path: PathBuf,
        text: String,
        why: String,
    },
    #[error("the clang of `{}`", .path.display())]
    ClangTools {
        path: PathBuf,
        #[source]
        source: Box<crate::kmod::Error>,
    },
    #[error("`{tool}` is needed to prepare a kernel tree{hint}")]
    Missing { tool: String, hint: String },
    #[error("preparing {release} ({step}) failed: {status}\n{tail}\n(kbuild needs make, gcc, flex, bison, bc, and libelf and libssl headers: on Debian `apt-get install make gcc flex bison bc libelf-dev libssl-dev`)")]
    Make {
        release: String,
        step: String,
        status: String,
        tail: String,
    },
    #[error("prepared tree of {release}: UTS_RELEASE is `{found}`")]
    WrongRelease { release: String, found: String },
    #[error("`{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// What to prepare.
#[derive(Debug, Clone)]
pub struct Request {
    /// A kernel source tarball (`.tar.xz`, `.tar.gz`, ...), or a package holding one.
    pub source: PathBuf,
    /// A `.config`, or a kernel image package shipping one (`boot/config-<release>`).
    pub config: PathBuf,
    /// `uname -r` of the kernel (default: from the config's file name in a package).
    pub release: Option<String>,
    pub arch: Arch,
    /// `make -j`.
    pub jobs: usize,
}

/// A prepared tree.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub tree: PathBuf,
    pub release: String,
    /// Taken from the cache (prepared by an earlier run).
    pub cached: bool,
    pub key: String,
}

/// A kernel `.config`: its bytes, the release its package names (`config-<release>`) and the
/// package's version.
#[derive(Debug)]
pub struct Config {
    pub bytes: Vec<u8>,
    pub release: Option<String>,
    pub package_version: Option<String>,
}

/// The `.config` of `path` (a file, or a kernel image package).
pub fn read_config(path: &Path, release: Option<&str>, scratch: &Path) -> Result<Config> {
    let mut f = std::io::BufReader::new(fs::File::open(path).map_err(io(path))?);
    match extract::sniff(&mut f, path) {
        Ok(extract::Format::Deb | extract::Format::Rpm) => {}
        // Not a package: the file is the .config itself.
        _ => {
            let bytes = fs::read(path).map_err(io(path))?;
            if !bytes.windows(7).any(|w| w == b"CONFIG_") {
                return Err(Error::NoConfig {
                    path: path.to_owned(),
                    release: None,
                });
            }
            return Ok(Config {
                bytes,
                release: release.map(str::to_owned),
                package_version: None,
            });
        }
    }
    let root = tempfile::Builder::new()
        .prefix("probeforge-config-")
        .tempdir_in(scratch)
        .map_err(io(scratch))?;
    let dir = root.path().join("root");
    let (infos, _) = extract::unpack_all(
        &[path.to_owned()],
        &dir,
        Selection::KernelConfig,
        Limits::default(),
    )?;
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for (sub, strip) in [("boot", true), ("lib/modules", false)] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            match strip {
                true => {
                    if let Some(r) = name.strip_prefix("config-") {
                        found.push((r.to_owned(), e.path()));
                    }
                }
                false if e.path().join("config").is_file() => {
                    found.push((name, e.path().join("config")))
                }
                false => {}
            }
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    let pick = match (release, found.as_slice()) {
        (Some(r), _) => found.iter().find(|(name, _)| name == r),
        (None, [one]) => Some(one),
        (None, []) => None,
        (None, _) => {
            return Err(Error::SeveralConfigs {
                path: path.to_owned(),
                found: found.into_iter().map(|f| f.0).collect(),
            })
        }
    };
    let (name, p) = pick.ok_or_else(|| Error::NoConfig {
        path: path.to_owned(),
        release: release.map(str::to_owned),
    })?;
    Ok(Config {
        bytes: fs::read(p).map_err(io(p))?,
        release: Some(name.clone()),
        package_version: infos.into_iter().next().and_then(|i| i.version),
    })
}

/// The compiler text of a config that says its kernel was built with clang.
fn clang_built(config: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(config);
    let clang = text.lines().any(|l| l.trim() == "CONFIG_CC_IS_CLANG=y");
    clang.then(|| {
        text.lines()
            .find_map(|l| l.strip_prefix("CONFIG_CC_VERSION_TEXT="))
            .unwrap_or("clang")
            .trim_matches('"')
            .to_owned()
    })
}

/// This host's clang whose `--version` says exactly `text`, ready for kbuild's `LLVM=1`
/// (for this host's architecture only).
fn host_clang(config: &Path, text: &str, arch: Arch) -> Result<crate::kmod::Compiler> {
    let refuse = |why: String| Error::Clang {
        path: config.to_owned(),
        text: text.to_owned(),
        why,
    };
    if Arch::host() != Some(arch) {
        return Err(refuse(format!(
            "a {arch:?} tree is prepared with clang only on a {arch:?} host"
        )));
    }
    let want = crate::kmod::KernelCompiler {
        text: text.to_owned(),
        gcc_version: 0,
    };
    let path = crate::kmod::gcc::host_clang(&want).map_err(|seen| {
        refuse(format!(
            "no clang here says exactly that (available: {})",
            match seen.is_empty() {
                true => "none".to_owned(),
                false => seen.join(", "),
            }
        ))
    })?;
    crate::kmod::Compiler::host(&path, &want).map_err(|source| Error::ClangTools {
        path: config.to_owned(),
        source: Box::new(source),
    })
}

/// The host compiler's identity (part of the key: the tree's generated files come from it).
fn host_compiler(cross: Option<&str>) -> Result<String> {
    let cc = format!("{}gcc", cross.unwrap_or(""));
    let o = Command::new(&cc)
        .arg("--version")
        .output()
        .map_err(|_| Error::Missing {
            tool: cc.clone(),
            hint: match cross {
                Some(_) => {
                    " to prepare a tree of another architecture (Debian: gcc-<arch>-linux-gnu)"
                        .into()
                }
                None => String::new(),
            },
        })?;
    Ok(String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// Prepares (or finds in the cache) the tree of `req`; `scratch` holds the temporary copies of
/// the packages.
pub fn prepare(req: &Request, cache_dir: &Path, scratch: &Path) -> Result<Prepared> {
    let config = read_config(&req.config, req.release.as_deref(), scratch)?;
    // `make olddefconfig` with gcc would turn a clang-built kernel's config into a gcc one:
    // a tree whose flags, vermagic and module ABI are not that kernel's. Such a config is
    // prepared with `LLVM=1` and this host's clang of exactly its text, or refused.
    let clang = match clang_built(&config.bytes) {
        Some(text) => Some(host_clang(&req.config, &text, req.arch)?),
        None => None,
    };
    let release = req
        .release
        .clone()
        .or(config.release.clone())
        .ok_or(Error::NoRelease)?;
    if release.len() > 64 || release.is_empty() || release.contains(['/', '"', '\\', ' ']) {
        return Err(Error::LongRelease(release));
    }
    // Another architecture's tree needs its cross compiler (`aarch64-linux-gnu-gcc`, ...).
    let prefix = format!("{}-", req.arch.triple());
    let cross = (Arch::host() != Some(req.arch)).then_some(prefix.as_str());
    let compiler = match &clang {
        // Its own key: the same config prepared with gcc is another tree.
        Some(c) => format!("{}\nLLVM=1", c.version_text),
        None => host_compiler(cross)?,
    };
    let source_sha = crate::base::sha256_file(&req.source).map_err(io(&req.source))?;
    let key = crate::base::sha256(
        format!(
            "probeforge-kernel-tree-1\n{source_sha}\n{}\n{release}\n{}\n{compiler}\n",
            crate::base::sha256(&config.bytes),
            req.arch.uname_m()
        )
        .as_bytes(),
    );
    let place = Cache(cache_dir).kernel_trees().join(&key);
    if place.join(".complete").is_file() {
        return Ok(Prepared {
            tree: place.join("tree"),
            release,
            cached: true,
            key,
        });
    }
    let parent = place.parent().expect("has a parent");
    fs::create_dir_all(parent).map_err(io(parent))?;
    let work = tempfile::Builder::new()
        .prefix(".preparing-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let staged = work.path().join("place");
    // clang's `CC=` and `LLVM=1`, its LLVM's programs first on PATH.
    let (llvm_vars, llvm_path) = match &clang {
        Some(c) => {
            let (vars, dir) =
                c.make_vars(&work.path().join("cc"))
                    .map_err(|source| Error::ClangTools {
                        path: req.config.clone(),
                        source: Box::new(source),
                    })?;
            let mut all: Vec<PathBuf> = dir.into_iter().collect();
            all.extend(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ));
            (vars, std::env::join_paths(all).ok())
        }
        None => (Vec::new(), None),
    };
    let (tarball, source_version) = source_tarball(&req.source, work.path())?;
    // A distro's source package and image package of one build carry one version: any other
    // pair gives a tree whose structures are not the running kernel's.
    if let (Some(src), Some(img)) = (&source_version, &config.package_version) {
        if src != img {
            return Err(Error::Mismatch {
                tarball: req.source.clone(),
                source_version: src.clone(),
                config: req.config.clone(),
                config_version: img.clone(),
            });
        }
    }
    let unpacked = staged.join("unpacked");
    extract::unpack_all(
        std::slice::from_ref(&tarball),
        &unpacked,
        Selection::Everything,
        Limits::default(),
    )?;
    let top = single_tree(&unpacked)?;
    let tree = staged.join("tree");
    fs::rename(&top, &tree).map_err(io(&top))?;
    fs::remove_dir_all(&unpacked).map_err(io(&unpacked))?;
    fs::write(tree.join(".config"), &config.bytes).map_err(io(&tree))?;
    let make = |step: &str, args: &[String]| -> Result<()> {
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(&tree)
            .arg(format!("ARCH={}", req.arch.kernel_dir()))
            .args(cross.map(|c| format!("CROSS_COMPILE={c}")))
            .args(&llvm_vars)
            .args(args)
            .env("LC_ALL", "C")
            .env("KBUILD_BUILD_TIMESTAMP", "1970-01-01")
            .env("KBUILD_BUILD_USER", "probeforge")
            .env("KBUILD_BUILD_HOST", "probeforge");
        if let Some(p) = &llvm_path {
            c.env("PATH", p);
        }
        let o = c.output().map_err(|_| Error::Missing {
            tool: "make".into(),
            hint: String::new(),
        })?;
        if o.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&o.stderr));
        let lines: Vec<&str> = text.lines().collect();
        Err(Error::Make {
            release: release.clone(),
            step: step.to_owned(),
            status: crate::compile::describe_status(o.status),
            tail: lines[lines.len().saturating_sub(15)..].join("\n"),
        })
    };
    make("make olddefconfig", &["-s".into(), "olddefconfig".into()])?;
    make(
        "make modules_prepare",
        &[
            "-s".into(),
            format!("-j{}", req.jobs.max(1)),
            "modules_prepare".into(),
            format!("KERNELRELEASE={release}"),
        ],
    )?;
    // What `uname -r` of this kernel says, where kbuild and the probe build read it.
    let kr = tree.join("include/config/kernel.release");
    fs::write(&kr, format!("{release}\n")).map_err(io(&kr))?;
    let uts = tree.join("include/generated/utsrelease.h");
    let found = fs::read_to_string(&uts).unwrap_or_default();
    if !found.contains(&format!("\"{release}\"")) {
        return Err(Error::WrongRelease {
            release,
            found: found.trim().to_owned(),
        });
    }
    fs::write(staged.join(".complete"), &key).map_err(io(&staged))?;
    match fs::rename(&staged, &place) {
        Ok(()) => {}
        // Another run prepared it first: theirs is as good.
        Err(_) if place.join(".complete").is_file() => {}
        Err(e) => return Err(io(&place)(e)),
    }
    Ok(Prepared {
        tree: place.join("tree"),
        release,
        cached: false,
        key,
    })
}

/// The source tarball: the file itself, or the `usr/src/linux-*.tar.*` a package holds
/// (unpacked under `work`), with that package's version.
fn source_tarball(source: &Path, work: &Path) -> Result<(PathBuf, Option<String>)> {
    let mut f = std::io::BufReader::new(fs::File::open(source).map_err(io(source))?);
    match extract::sniff(&mut f, source)? {
        extract::Format::Tar => return Ok((source.to_owned(), None)),
        extract::Format::Deb | extract::Format::Rpm => {}
    }
    let dir = work.join("package");
    let (infos, _) = extract::unpack_all(
        &[source.to_owned()],
        &dir,
        Selection::Everything,
        Limits::default(),
    )?;
    let version = infos.into_iter().next().and_then(|i| i.version);
    let src = dir.join("usr/src");
    let mut found: Vec<PathBuf> = fs::read_dir(&src)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("linux") && n.contains(".tar"))
        })
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Ok((one.clone(), version)),
        _ => Err(Error::NoTarball(source.to_owned())),
    }
}

/// The one top-level directory of an unpacked source tarball that is a kernel tree.
fn single_tree(unpacked: &Path) -> Result<PathBuf> {
    let entries: Vec<PathBuf> = fs::read_dir(unpacked)
        .map_err(io(unpacked))?
        .flatten()
        .map(|e| e.path())
        .collect();
    match entries.as_slice() {
        [one] if one.join("Makefile").is_file() && one.join("Kconfig").is_file() => Ok(one.clone()),
        _ => Err(Error::NoTree {
            path: unpacked.to_owned(),
            found: entries
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_config_file_is_read_and_anything_else_refused() {
        let t = tempfile::tempdir().unwrap();
        let cfg = t.path().join("config");
        fs::write(&cfg, "# Linux/x86 6.1 Kernel Configuration\nCONFIG_BPF=y\n").unwrap();
        let c = read_config(&cfg, Some("6.1.0-1-amd64"), t.path()).unwrap();
        assert!(c.bytes.starts_with(b"# Linux"));
        assert_eq!(c.release.as_deref(), Some("6.1.0-1-amd64"));
        let junk = t.path().join("junk");
        fs::write(&junk, "hello").unwrap();
        assert!(matches!(
            read_config(&junk, None, t.path()),
            Err(Error::NoConfig { .. })
        ));
    }

    #[test]
    fn a_clang_built_kernels_config_is_told_apart() {
        let gcc = b"CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14+deb12u1) 12.2.0\"\nCONFIG_CC_IS_GCC=y\n# CONFIG_CC_IS_CLANG is not set\n";
        assert_eq!(clang_built(gcc), None);
        let clang =
            b"CONFIG_CC_VERSION_TEXT=\"Debian clang version 14.0.6\"\nCONFIG_CC_IS_CLANG=y\n";
        assert_eq!(
            clang_built(clang).as_deref(),
            Some("Debian clang version 14.0.6")
        );
    }

    #[test]
    fn a_tree_needs_one_kernel_directory() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a")).unwrap();
        fs::create_dir_all(t.path().join("b")).unwrap();
        let e = single_tree(t.path()).unwrap_err().to_string();
        assert!(e.contains("a, b") || e.contains("b, a"), "{e}");
    }
}
