//! A kernel, as its header tree describes it: where the srctree and objtree are, and what
//! `uname -r`, `uname -v`, `uname -m` and `/etc/os-release` would say on it.
//!
//! Everything is read from files in an unpacked root; nothing runs. Paths found in the tree
//! (an objtree `Makefile`'s absolute `include`) are resolved inside the root, never on the host.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no kernel header tree found under `{0}` (looked for include/generated/utsrelease.h)")]
    NotFound(PathBuf),
    #[error("ambiguous: {} kernels in `{root}`: {}; say which one with --kernel-release", .releases.len(), .releases.join(", "))]
    Ambiguous {
        root: PathBuf,
        releases: Vec<String>,
    },
    #[error("kernel `{release}` not found in `{root}` (found: {})", .found.join(", "))]
    NoSuchRelease {
        root: PathBuf,
        release: String,
        found: Vec<String>,
    },
    #[error("objtree `{}`: cannot find its srctree (no include/linux/kconfig.h beside it, {})", .objtree.display(), .named.as_ref().map_or("and its Makefile names none".to_owned(), |n| format!("and `{n}`, which its Makefile includes, is not in the headers given")))]
    NoSrctree {
        objtree: PathBuf,
        /// What the objtree's Makefile includes (Debian: the `-common` package's Makefile).
        named: Option<String>,
    },
    #[error("`{path}`: {what}")]
    Bad { path: PathBuf, what: String },
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// The architectures Falco ships probes for, and a few it knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    Aarch64,
    S390x,
    Ppc64le,
    Riscv64,
}

impl Arch {
    /// `uname -m`, and the directory name in Falco's download layout.
    pub fn uname_m(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::S390x => "s390x",
            Arch::Ppc64le => "ppc64le",
            Arch::Riscv64 => "riscv64",
        }
    }
    /// The kernel's `SRCARCH` (`arch/<dir>`).
    pub fn kernel_dir(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86",
            Arch::Aarch64 => "arm64",
            Arch::S390x => "s390",
            Arch::Ppc64le => "powerpc",
            Arch::Riscv64 => "riscv",
        }
    }
    /// Target triple for clang when building for this arch from another host.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
            Arch::S390x => "s390x-linux-gnu",
            Arch::Ppc64le => "powerpc64le-linux-gnu",
            Arch::Riscv64 => "riscv64-linux-gnu",
        }
    }
    pub fn host() -> Option<Arch> {
        Arch::parse(std::env::consts::ARCH)
    }
    /// Accepts `uname -m` names and the usual aliases (`amd64`, `arm64`).
    pub fn parse(s: &str) -> Option<Arch> {
        Some(match s {
            "x86_64" | "amd64" | "x86" => Arch::X86_64,
            "aarch64" | "arm64" => Arch::Aarch64,
            "s390x" | "s390" => Arch::S390x,
            "ppc64le" | "ppc64el" | "powerpc64le" => Arch::Ppc64le,
            "riscv64" => Arch::Riscv64,
            _ => return None,
        })
    }
    /// glibc's dynamic loader for this architecture, as Debian and Ubuntu install it
    /// (relative to the root; usr-merged releases ship it below `usr/`).
    pub fn loader(self) -> &'static str {
        match self {
            Arch::X86_64 => "lib64/ld-linux-x86-64.so.2",
            Arch::Aarch64 => "lib/ld-linux-aarch64.so.1",
            Arch::S390x => "lib/ld64.so.1",
            Arch::Ppc64le => "lib64/ld64.so.2",
            Arch::Riscv64 => "lib/ld-linux-riscv64-lp64d.so.1",
        }
    }
    /// Debian's architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::S390x => "s390x",
            Arch::Ppc64le => "ppc64el",
            Arch::Riscv64 => "riscv64",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.uname_m())
    }
}

/// A kernel configuration: `CONFIG_FOO` -> value (`y`, `m`, a number, or a quoted string).
#[derive(Debug, Clone, Default)]
pub struct Config(BTreeMap<String, String>);

impl Config {
    /// Parses a `.config`.
    pub fn parse_dotconfig(text: &str) -> Config {
        let mut m = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                if k.starts_with("CONFIG_") {
                    m.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        Config(m)
    }
    /// Parses `include/generated/autoconf.h` (`CONFIG_X_MODULE 1` means `m`).
    pub fn parse_autoconf(text: &str) -> Config {
        let mut m = BTreeMap::new();
        for line in text.lines() {
            let mut it = line.splitn(3, char::is_whitespace);
            if it.next() != Some("#define") {
                continue;
            }
            let (Some(k), Some(v)) = (it.next(), it.next()) else {
                continue;
            };
            if !k.starts_with("CONFIG_") {
                continue;
            }
            if let Some(base) = k.strip_suffix("_MODULE") {
                m.insert(base.to_owned(), "m".to_owned());
            } else {
                m.insert(
                    k.to_owned(),
                    if v == "1" { "y".into() } else { v.to_owned() },
                );
            }
        }
        Config(m)
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = if key.starts_with("CONFIG_") {
            key.to_owned()
        } else {
            format!("CONFIG_{key}")
        };
        self.0.get(&key).map(String::as_str)
    }
    pub fn enabled(&self, key: &str) -> bool {
        matches!(self.get(key), Some("y" | "m"))
    }
    pub fn builtin(&self, key: &str) -> bool {
        self.get(key) == Some("y")
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What `/etc/os-release` would say on this kernel's distro, where the tree tells.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// What the kernel's own headers say a module of it must look like, beyond its configuration
/// (read once with the tree, so module validation stays pure over bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleAbi {
    /// `struct modversion_info` is Ubuntu's variable-length one (`u32 next; u32 crc; char
    /// name[];`, from its 6.8 kernels on) rather than upstream's fixed 64 bytes, as
    /// `include/linux/module.h` declares it.
    pub variable_modversions: bool,
    /// The preemption word of `vermagic` by `include/linux/vermagic.h`'s own chain
    /// ([`preempt_word_of`]); `None` when the header is absent or has no such chain.
    pub vermagic_preempt: Option<String>,
}

impl ModuleAbi {
    /// From the texts of `include/linux/module.h` and `include/linux/vermagic.h` (empty when
    /// absent) and the kernel's configuration.
    pub fn of(module_h: &str, vermagic_h: &str, config: &Config) -> ModuleAbi {
        ModuleAbi {
            variable_modversions: module_h
                .split("struct modversion_info {")
                .nth(1)
                .and_then(|rest| rest.split('}').next())
                .is_some_and(|body| body.contains("u32 next;")),
            vermagic_preempt: preempt_word_of(vermagic_h, |name| config.builtin(name)),
        }
    }
}

/// The word `include/linux/vermagic.h` puts for preemption, by its own `#ifdef` chain over
/// `MODULE_VERMAGIC_PREEMPT` (6.12's tests `PREEMPT_BUILD` before `PREEMPT_RT`, so its RT
/// kernels say `preempt`), with `builtin` saying which options are on; `None` when the header
/// has no such chain.
pub fn preempt_word_of(h: &str, builtin: impl Fn(&str) -> bool) -> Option<String> {
    // The branch being read (`Some(option)`, `None` for `#else`), and whether this chain
    // defines the preempt word at all.
    let mut cond: Option<Option<String>> = None;
    let mut preempt_chain = false;
    for line in h.lines() {
        let l = line.trim();
        let opened = l
            .strip_prefix("#ifdef ")
            .or_else(|| l.strip_prefix("#if defined("));
        if let Some(c) = opened {
            cond = Some(Some(c.trim_end_matches(')').trim().to_owned()));
            preempt_chain = false;
        } else if let Some(c) = l.strip_prefix("#elif defined(") {
            cond = Some(Some(c.trim_end_matches(')').trim().to_owned()));
        } else if l == "#else" && cond.is_some() {
            cond = Some(None);
        } else if let Some(word) = l.strip_prefix("#define MODULE_VERMAGIC_PREEMPT") {
            preempt_chain = true;
            let word = word.trim().trim_matches('"').to_owned();
            match cond.clone()? {
                Some(c) if builtin(c.strip_prefix("CONFIG_")?) => return Some(word),
                Some(_) => {}
                None => return Some(word),
            }
        } else if l.starts_with("#endif") {
            if preempt_chain {
                // The chain ended with no branch taken and no `#else`: no word.
                return Some(String::new());
            }
            cond = None;
        }
    }
    None
}

/// A kernel header tree inside an unpacked root.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelTree {
    /// The unpacked root every path here lies in.
    pub root: PathBuf,
    /// Where generated headers are (`include/generated`); kbuild's working directory.
    pub objtree: PathBuf,
    /// Where the kernel's own sources/headers are; equal to objtree for single trees.
    pub srctree: PathBuf,
    /// `uname -r`: `UTS_RELEASE`.
    pub release: String,
    /// `uname -v`, when the headers record it.
    pub uname_v: Option<String>,
    /// The number after `#` in `uname -v`.
    pub kernel_version: Option<String>,
    pub arch: Arch,
    pub big_endian: bool,
    /// (major, minor, patch) parsed from the release.
    pub version: (u32, u32, u32),
    pub os_release: Option<OsRelease>,
    /// The compiler the kernel was built with (`LINUX_COMPILER`), when recorded.
    pub compiler: Option<String>,
    #[serde(skip)]
    pub module_abi: ModuleAbi,
    #[serde(skip)]
    pub config: Config,
}

fn read(path: &Path) -> Result<String> {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
}

/// The string value of `#define NAME "value"` in a header.
pub fn define_string(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix("#define")?.trim_start();
        let rest = rest.strip_prefix(name)?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let v = rest.trim();
        Some(v.strip_prefix('"')?.strip_suffix('"')?.to_owned())
    })
}

/// `6.1.0-50-amd64` -> (6, 1, 0).
pub fn parse_version(release: &str) -> (u32, u32, u32) {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|s| s.parse().unwrap_or(0));
    (
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
    )
}

/// Objtrees under a root: directories holding `include/generated/utsrelease.h` (or the old
/// `include/linux/utsrelease.h`), found without following links, at most 5 levels down.
pub fn find_objtrees(root: &Path) -> Vec<PathBuf> {
    find_trees(root, |d| {
        d.join("include/generated/utsrelease.h").is_file()
            || d.join("include/linux/utsrelease.h").is_file()
    })
}

/// Srctrees under a root (directories holding `include/linux/kconfig.h`), found the same way.
pub fn find_srctrees(root: &Path) -> Vec<PathBuf> {
    find_trees(root, is_srctree)
}

fn find_trees(root: &Path, is_tree: fn(&Path) -> bool) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, is_tree: fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
        if is_tree(dir) {
            out.push(dir.to_owned());
            return;
        }
        if depth == 0 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut subdirs: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .filter(|p| {
                // Skip the big subtrees of a kernel tree itself.
                !matches!(
                    p.file_name().and_then(|n| n.to_str()),
                    Some("include" | "arch" | "scripts" | "tools" | "Documentation" | "drivers")
                )
            })
            .collect();
        subdirs.sort();
        for d in subdirs {
            walk(&d, depth - 1, is_tree, out);
        }
    }
    let mut out = Vec::new();
    walk(root, 5, is_tree, &mut out);
    out
}

/// Resolves an absolute path written inside the tree (e.g. a Makefile's `include`) to the
/// same place inside the root.
pub fn in_root(root: &Path, p: &str) -> PathBuf {
    root.join(p.trim_start_matches('/'))
}

fn is_srctree(dir: &Path) -> bool {
    dir.join("include/linux/kconfig.h").is_file()
}

/// The files an objtree's `Makefile` includes, as written (Debian: the `-common` tree's
/// Makefile by absolute path).
pub fn makefile_includes(objtree: &Path) -> Vec<String> {
    let mk = fs::read_to_string(objtree.join("Makefile")).unwrap_or_default();
    mk.lines()
        .filter_map(|l| l.trim().strip_prefix("include "))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// SUSE's srctree of an objtree `<dir>/linux-<kr>-obj/<arch>/<flavour>`: `<dir>/linux-<kr>`
/// (the `kernel-devel` package), read from the path alone: the objtree's `Makefile`, which
/// names it too, lies deeper than a probe build unpacks.
fn suse_srctree(objtree: &Path) -> Option<PathBuf> {
    let obj = objtree.parent()?.parent()?;
    let name = obj.file_name()?.to_str()?.strip_suffix("-obj")?;
    Some(obj.with_file_name(name))
}

/// Finds the srctree of an objtree: itself, the tree its Makefile includes (Debian, Ubuntu),
/// SUSE's `linux-<kr>` beside `linux-<kr>-obj/<arch>/<flavour>`, or a sibling whose name is
/// the objtree's without its flavour (`-common`, Ubuntu's base).
pub fn find_srctree(root: &Path, objtree: &Path) -> Result<PathBuf> {
    if is_srctree(objtree) {
        return Ok(objtree.to_owned());
    }
    let includes = makefile_includes(objtree);
    for p in &includes {
        let p = if p.starts_with('/') {
            in_root(root, p)
        } else {
            objtree.join(p)
        };
        if let Some(dir) = p.parent() {
            if is_srctree(dir) {
                return Ok(dir.to_owned());
            }
        }
    }
    if let Some(d) = suse_srctree(objtree).filter(|d| is_srctree(d)) {
        return Ok(d);
    }
    if let (Some(parent), Some(name)) = (
        objtree.parent(),
        objtree.file_name().and_then(|n| n.to_str()),
    ) {
        let mut candidates = Vec::new();
        let mut base = name;
        while let Some((head, _)) = base.rsplit_once('-') {
            candidates.push(format!("{head}-common"));
            candidates.push(head.to_owned());
            base = head;
        }
        for c in candidates {
            let d = parent.join(c);
            if is_srctree(&d) {
                return Ok(d);
            }
        }
    }
    // SUSE's objtree Makefile (deeper than a probe build unpacks) includes the srctree's.
    let suse = suse_srctree(objtree).and_then(|d| {
        Some(format!(
            "/{}/Makefile",
            d.strip_prefix(root).ok()?.display()
        ))
    });
    Err(Error::NoSrctree {
        objtree: objtree.to_owned(),
        named: includes.into_iter().next().or(suse),
    })
}

fn arch_from_config(cfg: &Config) -> Option<(Arch, bool)> {
    let big = cfg.builtin("CPU_BIG_ENDIAN");
    if cfg.builtin("X86_64") {
        Some((Arch::X86_64, false))
    } else if cfg.builtin("ARM64") {
        Some((Arch::Aarch64, big))
    } else if cfg.builtin("S390") {
        Some((Arch::S390x, true))
    } else if cfg.builtin("PPC64") {
        Some((Arch::Ppc64le, !cfg.builtin("CPU_LITTLE_ENDIAN")))
    } else if cfg.builtin("RISCV") && cfg.builtin("64BIT") {
        Some((Arch::Riscv64, false))
    } else {
        None
    }
}

/// Debian's kernel compilers by major version, to the Debian release that ships them.
fn debian_release_for_gcc(compiler: &str) -> Option<&'static str> {
    let major: u32 = compiler
        .strip_prefix("gcc-")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(match major {
        8 => "10",
        10 => "11",
        12 => "12",
        14 => "13",
        15 => "14",
        _ => return None,
    })
}

fn os_release(uname_v: Option<&str>, compiler: Option<&str>, release: &str) -> Option<OsRelease> {
    let v = uname_v.unwrap_or("");
    if v.contains("Debian") {
        // Backports and security rebuilds say which release they are for (`+deb12`,
        // `~deb12u1`, `0.deb11.52`); otherwise the compiler tells.
        let marked = [v, release].iter().find_map(|s| {
            let i = s.find("deb")?;
            let digits: String = s[i + 3..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!digits.is_empty()).then_some(digits)
        });
        return Some(OsRelease {
            id: "debian".into(),
            version_id: marked
                .or_else(|| compiler.and_then(debian_release_for_gcc).map(str::to_owned)),
        });
    }
    if v.contains("Ubuntu") {
        return Some(OsRelease {
            id: "ubuntu".into(),
            version_id: None,
        });
    }
    // Photon OS (`4.19.283-3.ph3`, `-aws`...): the release names its major version.
    if let Some(n) = dist_tag(release, ".ph") {
        return Some(OsRelease {
            id: "photon".into(),
            version_id: Some(format!("{n}.0")),
        });
    }
    // Alibaba Cloud Linux: `.al7` is Alibaba Cloud Linux 2 (2.1903), `.al8` is 3.
    if let Some(n) = dist_tag(release, ".al") {
        return Some(OsRelease {
            id: "alinux".into(),
            version_id: match n {
                7 => Some("2.1903".into()),
                8 => Some("3".into()),
                _ => None,
            },
        });
    }
    // SUSE builds say so in their compiler (`gcc (SUSE Linux) 7.5.0`); the first part of the
    // package release says for what. A SLE code stream (`-150500.55.39-default`: SLE 15 SP5)
    // runs on openSUSE Leap and on SLES alike, which the tree cannot tell apart; `lp155` is
    // built for Leap 15.5; a plain counter (`6.8.1-1-default`) is Tumbleweed's.
    if compiler.is_some_and(|c| c.contains("SUSE Linux")) {
        let stream = release
            .split('-')
            .nth(1)
            .and_then(|r| r.split('.').next())
            .unwrap_or("");
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let id = match stream.strip_prefix("lp") {
            Some(leap) if digits(leap) => "opensuse-leap",
            _ if digits(stream) && stream.len() <= 3 => "opensuse-tumbleweed",
            _ => return None,
        };
        return Some(OsRelease {
            id: id.into(),
            version_id: None,
        });
    }
    // Amazon Linux 1 (`.amzn1`) has no VERSION_ID the tree knows; Falco's loader names every
    // Amazon Linux that is not 2, 2022 or 2023 `amazonlinux`.
    let amzn = [".amzn2023", ".amzn2022", ".amzn2", ".amzn1"]
        .into_iter()
        .find(|m| release.contains(m));
    let id = if amzn.is_some() {
        "amzn"
    } else if release.contains(".el") {
        "rhel"
    } else if release.contains(".fc") {
        "fedora"
    } else {
        return None;
    };
    Some(OsRelease {
        id: id.into(),
        version_id: match amzn {
            Some(".amzn2023") => Some("2023".into()),
            Some(".amzn2022") => Some("2022".into()),
            Some(".amzn2") => Some("2".into()),
            _ => None,
        },
    })
}

/// The number of a distribution tag in a release (`.ph3` -> 3, `.al8` -> 8), where the tag is
/// followed by digits and then the end, `.`, `-` or `_`.
fn dist_tag(release: &str, tag: &str) -> Option<u32> {
    release.match_indices(tag).find_map(|(i, _)| {
        let rest = &release[i + tag.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let next = rest[digits.len()..].chars().next();
        match (digits.parse().ok(), next) {
            (Some(n), None | Some('.' | '-' | '_')) => Some(n),
            _ => None,
        }
    })
}

impl KernelTree {
    /// Reads the kernel whose objtree is `objtree` inside `root`.
    pub fn open(root: &Path, objtree: &Path) -> Result<KernelTree> {
        let srctree = find_srctree(root, objtree)?;
        let gen = objtree.join("include/generated");
        let uts = if gen.join("utsrelease.h").is_file() {
            gen.join("utsrelease.h")
        } else {
            objtree.join("include/linux/utsrelease.h")
        };
        let release = define_string(&read(&uts)?, "UTS_RELEASE").ok_or_else(|| Error::Bad {
            path: uts.clone(),
            what: "no UTS_RELEASE".into(),
        })?;
        let compile_h = fs::read_to_string(gen.join("compile.h")).unwrap_or_default();
        let uname_v = fs::read_to_string(gen.join("utsversion.h"))
            .ok()
            .and_then(|t| define_string(&t, "UTS_VERSION"))
            .or_else(|| define_string(&compile_h, "UTS_VERSION"));
        let kernel_version = uname_v.as_deref().and_then(|v| {
            let digits: String = v
                .strip_prefix('#')?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!digits.is_empty()).then_some(digits)
        });
        let compiler = define_string(&compile_h, "LINUX_COMPILER");
        let config = if objtree.join(".config").is_file() {
            Config::parse_dotconfig(&read(&objtree.join(".config"))?)
        } else if gen.join("autoconf.h").is_file() {
            Config::parse_autoconf(&read(&gen.join("autoconf.h"))?)
        } else {
            Config::default()
        };
        let (arch, big_endian) = arch_from_config(&config)
            .or_else(|| Arch::parse(&define_string(&compile_h, "UTS_MACHINE")?).map(|a| (a, false)))
            .ok_or_else(|| Error::Bad {
                path: objtree.to_owned(),
                what: "cannot tell the architecture (no .config, autoconf.h or UTS_MACHINE)".into(),
            })?;
        let os_release = os_release(uname_v.as_deref(), compiler.as_deref(), &release);
        let header = |p: &str| fs::read_to_string(srctree.join(p)).unwrap_or_default();
        let module_abi = ModuleAbi::of(
            &header("include/linux/module.h"),
            &header("include/linux/vermagic.h"),
            &config,
        );
        Ok(KernelTree {
            root: root.to_owned(),
            objtree: objtree.to_owned(),
            srctree,
            version: parse_version(&release),
            release,
            uname_v,
            kernel_version,
            arch,
            big_endian,
            os_release,
            compiler,
            module_abi,
            config,
        })
    }

    /// Every kernel under a root.
    pub fn all(root: &Path) -> Result<Vec<KernelTree>> {
        let mut out: Vec<KernelTree> = find_objtrees(root)
            .iter()
            .map(|o| KernelTree::open(root, o))
            .collect::<Result<_>>()?;
        out.sort_by(|a, b| a.release.cmp(&b.release));
        Ok(out)
    }

    /// The one kernel under a root (or the one with `release`); never picks silently.
    pub fn find(root: &Path, release: Option<&str>) -> Result<KernelTree> {
        let all = KernelTree::all(root)?;
        let releases: Vec<String> = all.iter().map(|k| k.release.clone()).collect();
        if all.is_empty() {
            return Err(Error::NotFound(root.to_owned()));
        }
        match release {
            Some(r) => {
                all.into_iter()
                    .find(|k| k.release == r)
                    .ok_or_else(|| Error::NoSuchRelease {
                        root: root.to_owned(),
                        release: r.to_owned(),
                        found: releases,
                    })
            }
            None if all.len() == 1 => Ok(all.into_iter().next().unwrap()),
            None => Err(Error::Ambiguous {
                root: root.to_owned(),
                releases,
            }),
        }
    }

    /// `uname -r` / `-v` / `-m` as a triple of strings.
    pub fn uname_m(&self) -> &'static str {
        self.arch.uname_m()
    }

    /// The kernel's top-level Makefile text (srctree), where present.
    pub fn makefile(&self) -> String {
        fs::read_to_string(self.srctree.join("Makefile")).unwrap_or_default()
    }

    /// Which Falco drivers can work on this kernel, and why not.
    pub fn driver_support(&self) -> Vec<DriverSupport> {
        let v = self.version;
        let cfg = &self.config;
        let have_cfg = !cfg.is_empty();
        let mut out = Vec::new();
        let need = |keys: &[&str]| -> Vec<String> {
            if !have_cfg {
                return Vec::new();
            }
            keys.iter()
                .filter(|k| !cfg.builtin(k))
                .map(|k| format!("CONFIG_{k} is not set"))
                .collect()
        };
        // Kernel module.
        let mut why = need(&["TRACEPOINTS", "MODULES"]);
        if v < (3, 10, 0) {
            why.push(format!("kernel {}.{} is older than 3.10", v.0, v.1));
        }
        out.push(DriverSupport::new("kmod", why));
        // Legacy eBPF probe.
        let min = match self.arch {
            Arch::X86_64 => Some((4, 14, 0)),
            Arch::Aarch64 => Some((4, 17, 0)),
            Arch::Ppc64le => Some((5, 1, 0)),
            Arch::S390x => Some((5, 5, 0)),
            Arch::Riscv64 => None,
        };
        let mut why = need(&[
            "BPF",
            "BPF_SYSCALL",
            "BPF_EVENTS",
            "TRACEPOINTS",
            "HAVE_EBPF_JIT",
        ]);
        match min {
            Some(m) if v < m => why.push(format!(
                "kernel {}.{} is older than {}.{}, the minimum on {}",
                v.0, v.1, m.0, m.1, self.arch
            )),
            None => why.push(format!("no legacy eBPF probe for {}", self.arch)),
            _ => {}
        }
        out.push(DriverSupport::new("ebpf", why));
        // Modern (CO-RE) eBPF.
        let mut why = need(&["BPF_SYSCALL", "DEBUG_INFO_BTF", "BPF_EVENTS"]);
        if v < (5, 8, 0) {
            why.push(format!(
                "kernel {}.{} has no BPF ring buffer (needs 5.8)",
                v.0, v.1
            ));
        }
        out.push(DriverSupport::new("modern_ebpf", why));
        out
    }
}

/// Whether one Falco driver kind can run on a kernel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DriverSupport {
    pub driver: &'static str,
    pub supported: bool,
    pub reasons: Vec<String>,
}

impl DriverSupport {
    fn new(driver: &'static str, reasons: Vec<String>) -> Self {
        DriverSupport {
            driver,
            supported: reasons.is_empty(),
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 6.12's header tests PREEMPT_BUILD first: its PREEMPT_RT kernels (which also build
    /// PREEMPT) say `preempt`; 7.x's says `preempt_rt` for them. Each as its header orders it.
    #[test]
    fn the_preempt_word_follows_the_kernels_own_header() {
        let h612 = "#ifdef CONFIG_SMP\n#define MODULE_VERMAGIC_SMP \"SMP \"\n#else\n#define MODULE_VERMAGIC_SMP \"\"\n#endif\n#ifdef CONFIG_PREEMPT_BUILD\n#define MODULE_VERMAGIC_PREEMPT \"preempt \"\n#elif defined(CONFIG_PREEMPT_RT)\n#define MODULE_VERMAGIC_PREEMPT \"preempt_rt \"\n#else\n#define MODULE_VERMAGIC_PREEMPT \"\"\n#endif\n";
        let rt = |n: &str| matches!(n, "SMP" | "PREEMPT_BUILD" | "PREEMPT_RT");
        assert_eq!(preempt_word_of(h612, rt).as_deref(), Some("preempt "));
        let h7 = h612.replace("CONFIG_PREEMPT_BUILD", "CONFIG_PREEMPT_RTX");
        let h7 = h7.replacen("#ifdef CONFIG_PREEMPT_RTX", "#ifdef CONFIG_PREEMPT_RT", 1);
        let h7 = h7.replacen("\"preempt \"", "\"preempt_rt \"", 1);
        assert_eq!(preempt_word_of(&h7, rt).as_deref(), Some("preempt_rt "));
        assert_eq!(preempt_word_of(h612, |n| n == "SMP").as_deref(), Some(""));
        let no_else =
            "#ifdef CONFIG_PREEMPT\n#define MODULE_VERMAGIC_PREEMPT \"preempt \"\n#endif\n";
        assert_eq!(preempt_word_of(no_else, |_| false).as_deref(), Some(""));
        assert_eq!(preempt_word_of("", |_| true), None);
    }

    /// Ubuntu's `struct modversion_info` (from its 6.8 kernels on) against upstream's.
    #[test]
    fn the_modversions_layout_follows_the_kernels_own_module_h() {
        let config = Config::default();
        let ubuntu = "struct modversion_info {\n\tu32 next;\n\tu32 crc;\n\tchar name[0];\n};\n";
        let upstream =
            "struct modversion_info {\n\tunsigned long crc;\n\tchar name[MODULE_NAME_LEN];\n};\n";
        assert!(ModuleAbi::of(ubuntu, "", &config).variable_modversions);
        assert!(!ModuleAbi::of(upstream, "", &config).variable_modversions);
        assert_eq!(ModuleAbi::of("", "", &config), ModuleAbi::default());
    }

    #[test]
    fn defines_and_versions() {
        let t = "#define UTS_RELEASE \"6.1.0-50-amd64\"\n#define UTS_RELEASE_X \"no\"\n";
        assert_eq!(define_string(t, "UTS_RELEASE").unwrap(), "6.1.0-50-amd64");
        assert_eq!(parse_version("6.1.0-50-amd64"), (6, 1, 0));
        assert_eq!(parse_version("5.10.240-1.amzn2.x86_64"), (5, 10, 240));
    }

    #[test]
    fn autoconf_and_dotconfig_agree() {
        let a = Config::parse_autoconf(
            "#define CONFIG_X86_64 1\n#define CONFIG_EXT4_FS_MODULE 1\n#define CONFIG_HZ 250\n",
        );
        let d = Config::parse_dotconfig(
            "CONFIG_X86_64=y\nCONFIG_EXT4_FS=m\nCONFIG_HZ=250\n# CONFIG_X is not set\n",
        );
        for k in ["X86_64", "EXT4_FS", "HZ"] {
            assert_eq!(a.get(k), d.get(k), "{k}");
        }
        assert!(a.enabled("EXT4_FS") && !a.builtin("EXT4_FS"));
        assert_eq!(d.get("X"), None);
    }

    #[test]
    fn os_release_from_uname_and_compiler() {
        assert_eq!(
            os_release(
                Some("#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)"),
                Some("gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"),
                "6.1.0-50-amd64"
            ),
            Some(OsRelease {
                id: "debian".into(),
                version_id: Some("12".into())
            })
        );
        assert_eq!(
            os_release(None, None, "6.1.119-129.201.amzn2023.x86_64")
                .unwrap()
                .version_id,
            Some("2023".into())
        );
    }

    #[test]
    fn suse_objtrees_name_their_srctree() {
        assert_eq!(
            suse_srctree(Path::new(
                "/r/usr/src/linux-5.14.21-150500.55.39-obj/x86_64/default"
            )),
            Some(PathBuf::from("/r/usr/src/linux-5.14.21-150500.55.39"))
        );
        assert_eq!(
            suse_srctree(Path::new("/r/usr/src/linux-headers-6.1.0-50-amd64")),
            None
        );
    }

    /// The distributions whose kernels name themselves in `uname -r` (or in their compiler),
    /// with releases as those distributions write them.
    #[test]
    fn os_release_of_photon_alinux_amazon_linux_1_and_2022_and_suse() {
        let id = |r: &str, cc: Option<&str>| {
            os_release(Some("#1 SMP PREEMPT_DYNAMIC"), cc, r).map(|o| (o.id, o.version_id))
        };
        let some = |id: &str, v: Option<&str>| Some((id.to_owned(), v.map(str::to_owned)));
        assert_eq!(id("4.19.283-3.ph3", None), some("photon", Some("3.0")));
        assert_eq!(id("6.1.83-4.ph5-aws", None), some("photon", Some("5.0")));
        assert_eq!(
            id("4.19.91-26.al7.x86_64", None),
            some("alinux", Some("2.1903"))
        );
        assert_eq!(
            id("5.10.84-10.4.al8.x86_64", None),
            some("alinux", Some("3"))
        );
        assert_eq!(id("4.14.26-46.32.amzn1.x86_64", None), some("amzn", None));
        assert_eq!(
            id("5.15.25-14.106.amzn2022.x86_64", None),
            some("amzn", Some("2022"))
        );
        assert_eq!(
            id("5.10.210-201.852.amzn2.x86_64", None),
            some("amzn", Some("2"))
        );
        // Not a tag: `.alpha`, `.phone`.
        assert_eq!(id("6.1.0-1.alpha", None), None);
        let suse = Some(
            "gcc (SUSE Linux) 13.2.1 20240206 [revision 67ac78caf31f7cb3202177e6428a46d829b70f23]",
        );
        assert_eq!(
            id("6.8.1-1-default", suse),
            some("opensuse-tumbleweed", None)
        );
        // Leap 15.5 or SLES 15 SP5: the same kernel; the tree does not say which.
        assert_eq!(id("5.14.21-150500.55.39-default", suse), None);
        assert_eq!(
            id("6.4.0-lp155.2.1-default", suse),
            some("opensuse-leap", None)
        );
        assert_eq!(id("6.8.1-1-default", None), None);
    }
}
