//! The kernel's compiler found in its own YUM/DNF repositories' signed primary index.
//!
//! RPM distributions' kernels name their compiler in shapes of their own:
//! RHEL, Rocky, Alma, Oracle, CentOS Stream, Fedora and Amazon Linux 2023
//! `gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)` (package `gcc`, or `gcc-toolset-N-gcc` whose
//! program lives under `/opt/rh/gcc-toolset-N/root/usr/bin`), Amazon Linux 2's
//! `gcc10-gcc (GCC) 10.5.0 20230707 (Red Hat 10.5.0-1)` (package `gcc10`), SUSE's
//! `gcc-7 (SUSE Linux) 7.5.0` (package `gcc7`: no package release in the text) and Debian's
//! `gcc-14 (Debian 14.2.0-19) 14.2.0`. Whatever the shape, the package that ships the compiler
//! is the one whose primary `<file>` list holds `.../bin/<program>`, at the text's
//! version-release (the text's release lacks the dist tag: `3` is `3.el9`), else the nearest
//! build of the same major version, said and recorded (`nearest`), unless the exact one is
//! required. Its closure follows requires to provides (names, sonames, file paths); every
//! package is later fetched by the sha256 the signed index lists.
//!
//! Pure over the parsed index: no IO here.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::gcc::{GccManifest, GccPackage, KernelCompiler};
use super::resolve::Resolved;
use super::Error;
use crate::kernel::Arch;
use crate::repo::yum::{Dep, Rpm};

/// One package of a yum target's index: its catalog mirror, its path below that mirror (or a
/// whole URL), and its primary entry.
pub type Listed = (String, String, Rpm);

/// What an RPM distribution's gcc says first, in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmText {
    /// `gcc`, `gcc10-gcc`, `gcc-7`, `x86_64-linux-gnu-gcc-14`.
    pub program: String,
    /// `GCC`, `SUSE Linux`, `Debian`: the first parentheses.
    pub vendor: String,
    /// The package's version and release as the text gives them (`11.4.1`, `3`), when it does.
    pub package: Option<(String, String)>,
    /// gcc's own version: `11.4.1`.
    pub upstream: String,
    pub major: u32,
}

impl RpmText {
    /// `<program> (<vendor>[ <V-R>]) <version>[ <date>][ (<vendor> <V-R>[ ...])]`; `None`
    /// for another shape (clang).
    pub fn parse(text: &str) -> Option<RpmText> {
        let text = text.trim();
        let (program, rest) = text.split_once(" (")?;
        if !program.ends_with("gcc") && !program.contains("gcc-") {
            return None;
        }
        let (inside, after) = rest.split_once(") ")?;
        let upstream = after.split_whitespace().next()?.to_owned();
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let versioned = |s: &str| -> Option<(String, String)> {
            let (v, r) = s.rsplit_once('-')?;
            v.starts_with(|c: char| c.is_ascii_digit())
                .then(|| (v.to_owned(), r.to_owned()))
        };
        // Debian's shape: the package version inside the first parentheses.
        let (vendor, mut package) = match inside.rsplit_once(' ') {
            Some((vendor, last)) if versioned(last).is_some() => {
                (vendor.to_owned(), versioned(last))
            }
            _ => (inside.to_owned(), None),
        };
        // Red Hat's shape: `(Red Hat 11.4.1-3)` after the date.
        if package.is_none() {
            if let Some((_, tail)) = after.split_once(" (") {
                let tail = tail.trim_end_matches(')');
                package = tail.split_whitespace().find_map(versioned);
            }
        }
        let major = upstream.split('.').next()?.parse().ok()?;
        Some(RpmText {
            program: program.to_owned(),
            vendor,
            package,
            upstream,
            major,
        })
    }
}

/// rpm's version comparison (`rpmvercmp`): alternating runs of digits and letters, digits
/// newer than letters, `~` older than anything, `^` newer than the end.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    'runs: loop {
        let skip = |s: &mut &[u8]| {
            while let Some((&c, rest)) = s.split_first() {
                if c.is_ascii_alphanumeric() || c == b'~' || c == b'^' {
                    break;
                }
                *s = rest;
            }
        };
        skip(&mut a);
        skip(&mut b);
        for sep in [b'~', b'^'] {
            match (a.first() == Some(&sep), b.first() == Some(&sep)) {
                (true, true) => {
                    a = &a[1..];
                    b = &b[1..];
                    continue 'runs;
                }
                (true, false) if sep == b'~' => return Ordering::Less,
                (false, true) if sep == b'~' => return Ordering::Greater,
                (true, false) => {
                    return match b.is_empty() {
                        true => Ordering::Greater,
                        false => Ordering::Less,
                    }
                }
                (false, true) => {
                    return match a.is_empty() {
                        true => Ordering::Less,
                        false => Ordering::Greater,
                    }
                }
                _ => {}
            }
        }
        // Whichever still has characters left is newer.
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let digits = a[0].is_ascii_digit();
        let run = |s: &[u8]| {
            s.iter()
                .take_while(|c| match digits {
                    true => c.is_ascii_digit(),
                    false => c.is_ascii_alphabetic(),
                })
                .count()
        };
        let (na, nb) = (run(a), run(b));
        if nb == 0 {
            // A digit run against a letter run: digits are newer.
            return match digits {
                true => Ordering::Greater,
                false => Ordering::Less,
            };
        }
        let (ra, rb) = (&a[..na], &b[..nb]);
        let ord = match digits {
            true => {
                let strip = |s: &'_ [u8]| -> Vec<u8> {
                    let i = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
                    s[i..].to_vec()
                };
                let (x, y) = (strip(ra), strip(rb));
                x.len().cmp(&y.len()).then_with(|| x.cmp(&y))
            }
            false => ra.cmp(rb),
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[na..];
        b = &b[nb..];
    }
}

/// Compares epoch:version-release triples (an empty epoch is 0; an empty release on either
/// side matches any).
pub fn evr_cmp(a: (&str, &str, &str), b: (&str, &str, &str)) -> Ordering {
    let epoch = |e: &str| e.parse::<u64>().unwrap_or(0);
    epoch(a.0)
        .cmp(&epoch(b.0))
        .then_with(|| rpmvercmp(a.1, b.1))
        .then_with(|| match a.2.is_empty() || b.2.is_empty() {
            true => Ordering::Equal,
            false => rpmvercmp(a.2, b.2),
        })
}

/// Whether `p` (something a package provides) satisfies `req`.
fn satisfies(p: &Dep, req: &Dep) -> bool {
    if p.name != req.name {
        return false;
    }
    if req.flags.is_empty() || p.ver.is_empty() {
        return true;
    }
    let o = evr_cmp((&p.epoch, &p.ver, &p.rel), (&req.epoch, &req.ver, &req.rel));
    match req.flags.as_str() {
        "EQ" => o == Ordering::Equal,
        "GE" => o != Ordering::Less,
        "GT" => o == Ordering::Greater,
        "LE" => o != Ordering::Greater,
        "LT" => o == Ordering::Less,
        _ => true,
    }
}

/// What a package provides, itself included (rpm adds `name = epoch:version-release`).
fn offers(r: &Rpm, req: &Dep) -> bool {
    let own = Dep {
        name: r.name.clone(),
        flags: "EQ".into(),
        epoch: r.epoch.clone(),
        ver: r.version.clone(),
        rel: r.release.clone(),
        pre: false,
    };
    if req.name.starts_with('/') {
        return r.files.contains(&req.name);
    }
    satisfies(&own, req) || r.provides.iter().any(|p| satisfies(p, req))
}

/// Packages a compiler never needs to run, though its packages require them (shells, install
/// scripts' tools, locale data, trust stores).
const NEVER: &[&str] = &[
    "bash",
    "coreutils",
    "coreutils-single",
    "filesystem",
    "setup",
    "basesystem",
    "chkconfig",
    "alternatives",
    "info",
    "glibc-common",
    "tzdata",
    "ca-certificates",
    "crypto-policies",
    "systemd",
    "grep",
    "sed",
    "gawk",
    "findutils",
];

/// Runtime libraries of the kernel's own kbuild tools (`fixdep`, `modpost`, `objtool`,
/// `sign-file`), by soname: the first each group the index provides.
const KBUILD_TOOL_LIBS: &[&[&str]] = &[
    &["libelf.so.1()(64bit)"],
    &[
        "libcrypto.so.3()(64bit)",
        "libcrypto.so.1.1()(64bit)",
        "libcrypto.so.10()(64bit)",
    ],
    &["libz.so.1()(64bit)"],
    &["libc.so.6()(64bit)"],
];

fn by_name(name: &str) -> Dep {
    Dep {
        name: name.to_owned(),
        ..Dep::default()
    }
}

/// The kernel's compiler and its closure from a yum target's `index`. `host` is where it
/// runs and must be the kernel's arch (RPM distributions ship no cross compilers of their
/// kernels' gcc). `tools` are kbuild's other programs' packages (`pahole`: `dwarves`).
pub fn resolve(
    want: &KernelCompiler,
    kernel: Arch,
    host: Arch,
    index: &[Listed],
    exact_only: bool,
    target: &str,
    tools: &[&[&str]],
) -> Result<Resolved, Error> {
    let refuse = |why: String| Error::NotInIndex {
        kernel: want.text.clone(),
        target: target.to_owned(),
        why,
    };
    let text = RpmText::parse(&want.text)
        .ok_or_else(|| refuse("the text names no gcc and version".into()))?;
    if kernel != host {
        return Err(refuse(format!(
            "a {} kernel on a {} host: RPM repositories carry no cross compiler of their \
             kernels' gcc",
            kernel.uname_m(),
            host.uname_m()
        )));
    }
    // Every package shipping `.../bin/<program>`, with that path.
    let suffix = format!("bin/{}", text.program);
    let candidates: Vec<(usize, &str)> = index
        .iter()
        .enumerate()
        .filter_map(|(i, (_, _, r))| {
            r.files
                .iter()
                .find(|f| f.ends_with(&suffix) && f[..f.len() - suffix.len()].ends_with('/'))
                .map(|f| (i, f.as_str()))
        })
        .collect();
    let same_major = |r: &Rpm| r.version.split('.').next() == Some(&text.major.to_string());
    // The text's release lacks the distribution's tag: `3` is `3.el9`, `1` is `1.amzn2.0.2`.
    let same_build = |r: &Rpm| match &text.package {
        Some((v, rel)) => {
            r.version == *v
                && (r.release == *rel
                    || r.release.strip_prefix(rel.as_str()).is_some_and(|t| {
                        t.starts_with('.') || t.starts_with(|c: char| c.is_ascii_alphabetic())
                    }))
        }
        // SUSE names no release: the upstream version, checked against what it says later.
        None => r.version == text.upstream,
    };
    let exact = newest(
        index,
        candidates.iter().filter(|(i, _)| same_build(&index[*i].2)),
    );
    let offered = || {
        let mut v: Vec<String> = candidates
            .iter()
            .map(|(i, _)| {
                let r = &index[*i].2;
                format!("{}-{}-{}", r.name, r.version, r.release)
            })
            .collect();
        v.sort();
        v.dedup();
        match v.is_empty() {
            true => String::new(),
            false => format!("; the index offers {}", v.join(", ")),
        }
    };
    let wanted = match &text.package {
        Some((v, r)) => format!("{v}-{r}"),
        None => text.upstream.clone(),
    };
    let (is_exact, (driver, gcc_path)) = match exact {
        Some(d) => (true, d),
        None if exact_only => {
            return Err(refuse(format!(
                "no package ships `{suffix}` at {wanted} (exact build required){}",
                offered()
            )))
        }
        None => match newest(
            index,
            candidates.iter().filter(|(i, _)| same_major(&index[*i].2)),
        ) {
            Some(d) => (false, d),
            None => {
                return Err(refuse(format!(
                    "no package ships `{suffix}` of gcc {}{}",
                    text.major,
                    offered()
                )))
            }
        },
    };
    let mut roots = vec![driver];
    for group in KBUILD_TOOL_LIBS.iter().chain(tools) {
        let found = group.iter().find_map(|n| {
            let d = by_name(n);
            index.iter().position(|(_, _, r)| offers(r, &d))
        });
        roots.extend(found);
    }
    let set = closure(&roots, index);
    let packages = set
        .iter()
        .map(|&i| {
            let (mirror, file, r) = &index[i];
            GccPackage {
                name: r.name.clone(),
                version: format!("{}-{}", r.version, r.release),
                mirror: mirror.clone(),
                filename: file.clone(),
                size: r.size,
                sha256: r.checksum.clone(),
                own_signature: None,
            }
        })
        .collect();
    let d = &index[driver].2;
    let gcc_path = gcc_path.trim_start_matches('/').to_owned();
    let bin_dir = &gcc_path[..gcc_path.len() - text.program.len()];
    // binutils beside the compiler (gcc-toolset's own), else the system's; by the triplet
    // name where the distribution has one (Debian), else plain (`usr/bin/as`).
    let files: BTreeSet<&str> = set
        .iter()
        .flat_map(|&i| index[i].2.files.iter())
        .map(|f| f.trim_start_matches('/'))
        .collect();
    let triplet = kernel.triple();
    let binutils_prefix = [
        format!("{bin_dir}{triplet}-"),
        bin_dir.to_owned(),
        format!("usr/bin/{triplet}-"),
        "usr/bin/".to_owned(),
    ]
    .into_iter()
    .find(|p| files.contains(format!("{p}as").as_str()))
    .unwrap_or_else(|| "usr/bin/".to_owned());
    // Libraries: RPM's `lib64`, Debian's multiarch directories, and a toolset root's own.
    let mut library_path = vec![
        "lib64".to_owned(),
        "usr/lib64".to_owned(),
        format!("lib/{triplet}"),
        format!("usr/lib/{triplet}"),
    ];
    if let Some(root) = bin_dir.strip_suffix("usr/bin/").filter(|r| !r.is_empty()) {
        library_path.insert(0, format!("{root}usr/lib64"));
    }
    let version = format!("{}-{}", d.version, d.release);
    let version_text = match is_exact {
        true => want.text.clone(),
        false => format!("{} ({}) {}", text.program, text.vendor, d.version),
    };
    let manifest = GccManifest {
        name: format!("{}_{version}@{target}", d.name),
        version_text,
        host_arch: host,
        target_arch: kernel,
        pinned_from: target.to_owned(),
        note: match is_exact {
            true => format!(
                "resolved from {target}'s signed indexes: `{}` {version} and its dependency \
                 closure",
                d.name
            ),
            false => format!(
                "resolved from {target}'s signed indexes: the kernel names {} {wanted}, a build \
                 they do not carry; the nearest build of gcc {}, `{}` {version}, is used",
                text.program, text.major, d.name
            ),
        },
        gcc: gcc_path.clone(),
        binutils_prefix,
        loader: host.loader().to_owned(),
        library_path,
        packages,
        nearest: !is_exact,
        major_only: false,
    };
    Ok(Resolved {
        manifest,
        driver_package: d.name.clone(),
        version,
        exact: is_exact,
    })
}

/// The newest package among `it` (on a tie, the first by name).
fn newest<'a>(
    index: &[Listed],
    it: impl Iterator<Item = &'a (usize, &'a str)>,
) -> Option<(usize, &'a str)> {
    it.max_by(|a, b| {
        let (x, y) = (&index[a.0].2, &index[b.0].2);
        evr_cmp(
            (&x.epoch, &x.version, &x.release),
            (&y.epoch, &y.version, &y.release),
        )
        .then_with(|| y.name.cmp(&x.name))
    })
    .copied()
}

/// The dependency closure of `roots` over `index`: each run-time requirement (not
/// `rpmlib(...)`, not an install-time `Requires(pre)`, not a boolean dependency) resolved to a
/// package already chosen, else the newest that provides it (the one named like it first).
/// Sorted by name, so the manifest's digest is stable.
fn closure(roots: &[usize], index: &[Listed]) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::new();
    let mut queue: Vec<usize> = roots.to_vec();
    while let Some(next) = queue.pop() {
        let r = &index[next].2;
        if chosen.iter().any(|&c| index[c].2.name == r.name) {
            continue;
        }
        chosen.push(next);
        for req in &r.requires {
            if req.pre || req.name.starts_with("rpmlib(") || req.name.starts_with('(') {
                continue;
            }
            let have = chosen
                .iter()
                .chain(queue.iter())
                .any(|&c| offers(&index[c].2, req));
            if have {
                continue;
            }
            let pick = index
                .iter()
                .enumerate()
                .filter(|(_, (_, _, p))| offers(p, req))
                .max_by(|(_, (_, _, a)), (_, (_, _, b))| {
                    (a.name == req.name)
                        .cmp(&(b.name == req.name))
                        .then_with(|| b.name.cmp(&a.name))
                        .then_with(|| {
                            evr_cmp(
                                (&a.epoch, &a.version, &a.release),
                                (&b.epoch, &b.version, &b.release),
                            )
                        })
                })
                .map(|(i, _)| i);
            if let Some(p) = pick {
                if !NEVER.contains(&index[p].2.name.as_str()) {
                    queue.push(p);
                }
            }
        }
    }
    chosen.sort_by(|&a, &b| index[a].2.name.cmp(&index[b].2.name));
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_texts_of_rpm_distributions() {
        let t = RpmText::parse("gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)").unwrap();
        assert_eq!(
            (t.program.as_str(), t.vendor.as_str(), t.major),
            ("gcc", "GCC", 11)
        );
        assert_eq!(t.package, Some(("11.4.1".into(), "3".into())));
        let t = RpmText::parse("gcc10-gcc (GCC) 10.5.0 20230707 (Red Hat 10.5.0-1)").unwrap();
        assert_eq!((t.program.as_str(), t.major), ("gcc10-gcc", 10));
        assert_eq!(t.package, Some(("10.5.0".into(), "1".into())));
        let t = RpmText::parse("gcc-7 (SUSE Linux) 7.5.0").unwrap();
        assert_eq!(
            (t.program.as_str(), t.vendor.as_str(), t.package.clone()),
            ("gcc-7", "SUSE Linux", None)
        );
        assert_eq!(t.upstream, "7.5.0");
        let t = RpmText::parse("gcc-14 (Debian 14.2.0-19) 14.2.0").unwrap();
        assert_eq!((t.vendor.as_str(), t.major), ("Debian", 14));
        assert_eq!(t.package, Some(("14.2.0".into(), "19".into())));
        let t = RpmText::parse("gcc (SUSE Linux) 13.3.1 20250313 [revision abc]").unwrap();
        assert_eq!((t.upstream.as_str(), t.package.clone()), ("13.3.1", None));
        assert!(RpmText::parse("clang version 17.0.6 (Fedora 17.0.6-2.fc39)").is_none());
    }

    #[test]
    fn rpm_versions_compare_as_rpm_does() {
        use Ordering::*;
        for (a, b, o) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("3.el9", "3.el9_2", Less),
            ("11.4.1", "11.4.1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0", "1.0a", Less),
            ("2a", "2.0", Less),
            ("010", "10", Equal),
            ("1.0.1", "1.0", Greater),
        ] {
            assert_eq!(rpmvercmp(a, b), o, "{a} vs {b}");
        }
    }

    fn rpm(
        name: &str,
        v: &str,
        r: &str,
        requires: &[&str],
        provides: &[&str],
        files: &[&str],
    ) -> Listed {
        let dep = |s: &&str| {
            let mut it = s.split(' ');
            let name = it.next().unwrap().to_owned();
            let (flags, ver) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            let (ver, rel) = ver.split_once('-').unwrap_or((ver, ""));
            Dep {
                name,
                flags: match flags {
                    "=" => "EQ",
                    ">=" => "GE",
                    "" => "",
                    _ => "LT",
                }
                .into(),
                ver: ver.into(),
                rel: rel.into(),
                ..Dep::default()
            }
        };
        (
            "rocky".into(),
            format!("BaseOS/x86_64/os/Packages/{name}-{v}-{r}.rpm"),
            Rpm {
                name: name.into(),
                arch: "x86_64".into(),
                version: v.into(),
                release: r.into(),
                checksum_type: "sha256".into(),
                checksum: format!("{:0>64}", name.len()),
                size: 1,
                requires: requires.iter().map(dep).collect(),
                provides: provides.iter().map(dep).collect(),
                files: files.iter().map(|f| f.to_string()).collect(),
                ..Rpm::default()
            },
        )
    }

    fn index() -> Vec<Listed> {
        vec![
            rpm(
                "gcc",
                "11.4.1",
                "3.el9",
                &[
                    "cpp = 11.4.1-3.el9",
                    "binutils >= 2.35",
                    "libc.so.6()(64bit)",
                    "rpmlib(CompressedFileNames) <= 3.0.4-1",
                    "/usr/bin/sh",
                ],
                &[],
                &["/usr/bin/gcc", "/usr/bin/cc"],
            ),
            rpm(
                "gcc",
                "11.4.1",
                "2.el9",
                &["cpp = 11.4.1-2.el9"],
                &[],
                &["/usr/bin/gcc"],
            ),
            rpm(
                "cpp",
                "11.4.1",
                "3.el9",
                &["libmpc.so.3()(64bit)"],
                &[],
                &["/usr/bin/cpp"],
            ),
            rpm("cpp", "11.4.1", "2.el9", &[], &[], &["/usr/bin/cpp"]),
            rpm(
                "libmpc",
                "1.2.1",
                "4.el9",
                &[],
                &["libmpc.so.3()(64bit)"],
                &[],
            ),
            rpm(
                "binutils",
                "2.35.2",
                "43.el9",
                &["binutils-gold", "coreutils"],
                &[],
                &["/usr/bin/as", "/usr/bin/ld.bfd"],
            ),
            rpm(
                "binutils-gold",
                "2.35.2",
                "43.el9",
                &[],
                &[],
                &["/usr/bin/ld.gold"],
            ),
            rpm("coreutils", "8.32", "34.el9", &[], &[], &["/usr/bin/ls"]),
            rpm(
                "bash",
                "5.1.8",
                "9.el9",
                &[],
                &["/bin/sh"],
                &["/usr/bin/sh", "/usr/bin/bash"],
            ),
            rpm(
                "glibc",
                "2.34",
                "100.el9",
                &["glibc-common = 2.34-100.el9"],
                &["libc.so.6()(64bit)"],
                &["/usr/sbin/ldconfig"],
            ),
            rpm(
                "glibc-common",
                "2.34",
                "100.el9",
                &[],
                &[],
                &["/usr/bin/locale"],
            ),
            rpm(
                "elfutils-libelf",
                "0.190",
                "2.el9",
                &["libz.so.1()(64bit)"],
                &["libelf.so.1()(64bit)"],
                &[],
            ),
            rpm(
                "zlib",
                "1.2.11",
                "40.el9",
                &[],
                &["libz.so.1()(64bit)"],
                &[],
            ),
            rpm(
                "openssl-libs",
                "3.0.7",
                "27.el9",
                &["crypto-policies"],
                &["libcrypto.so.3()(64bit)"],
                &[],
            ),
            rpm("crypto-policies", "20240202", "1.git.el9", &[], &[], &[]),
            rpm(
                "gcc-toolset-13-gcc",
                "13.2.1",
                "6.el9",
                &["gcc-toolset-13-binutils"],
                &[],
                &["/opt/rh/gcc-toolset-13/root/usr/bin/gcc"],
            ),
            rpm(
                "gcc-toolset-13-binutils",
                "2.40",
                "21.el9",
                &[],
                &[],
                &["/opt/rh/gcc-toolset-13/root/usr/bin/as"],
            ),
        ]
    }

    fn from_index(text: &str, exact_only: bool) -> Result<Resolved, Error> {
        let want = KernelCompiler {
            text: text.into(),
            gcc_version: 0,
        };
        resolve(
            &want,
            Arch::X86_64,
            Arch::X86_64,
            &index(),
            exact_only,
            "rocky-9",
            &[],
        )
    }

    #[test]
    fn the_exact_build_by_its_program_and_its_closure() {
        let r = from_index("gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)", true).unwrap();
        assert!(r.exact && !r.manifest.nearest);
        assert_eq!(
            (r.driver_package.as_str(), r.version.as_str()),
            ("gcc", "11.4.1-3.el9")
        );
        let names: Vec<(&str, &str)> = r
            .manifest
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("binutils", "2.35.2-43.el9"),
                ("binutils-gold", "2.35.2-43.el9"),
                ("cpp", "11.4.1-3.el9"),
                ("elfutils-libelf", "0.190-2.el9"),
                ("gcc", "11.4.1-3.el9"),
                ("glibc", "2.34-100.el9"),
                ("libmpc", "1.2.1-4.el9"),
                ("openssl-libs", "3.0.7-27.el9"),
                ("zlib", "1.2.11-40.el9"),
            ]
        );
        assert_eq!(r.manifest.gcc, "usr/bin/gcc");
        assert_eq!(r.manifest.binutils_prefix, "usr/bin/");
        assert_eq!(r.manifest.name, "gcc_11.4.1-3.el9@rocky-9");
        assert_eq!(
            r.manifest.packages[0].filename,
            "BaseOS/x86_64/os/Packages/binutils-2.35.2-43.el9.rpm"
        );
        assert!(r.manifest.library_path.contains(&"usr/lib64".to_owned()));
    }

    #[test]
    fn a_build_gone_takes_the_nearest_of_its_major_unless_exact_is_required() {
        let text = "gcc (GCC) 11.4.1 20230605 (Red Hat 11.4.1-1)";
        let err = from_index(text, true).unwrap_err().to_string();
        assert!(
            err.contains("11.4.1-1") && err.contains("gcc-11.4.1-3.el9"),
            "{err}"
        );
        let r = from_index(text, false).unwrap();
        assert!(!r.exact && r.manifest.nearest);
        assert_eq!(r.version, "11.4.1-3.el9");
        assert!(r.manifest.note.contains("11.4.1-1"), "{}", r.manifest.note);
        // What the nearest build says is accepted as that: the same program and major.
        assert!(super::super::gcc::same_major(
            text,
            "gcc (GCC) 11.5.0 20240719 (Red Hat 11.5.0-2)"
        ));
        assert!(!super::super::gcc::same_major(
            text,
            "gcc (GCC) 12.2.1 20221121 (Red Hat 12.2.1-7)"
        ));
        let err = from_index("gcc (GCC) 12.2.1 20221121 (Red Hat 12.2.1-7)", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gcc 12"), "{err}");
    }

    #[test]
    fn a_toolset_compiler_runs_from_its_own_root_with_its_binutils() {
        let r = from_index("gcc (GCC) 13.2.1 20231205 (Red Hat 13.2.1-6)", true).unwrap();
        assert_eq!(r.driver_package, "gcc-toolset-13-gcc");
        assert_eq!(r.manifest.gcc, "opt/rh/gcc-toolset-13/root/usr/bin/gcc");
        assert_eq!(
            r.manifest.binutils_prefix,
            "opt/rh/gcc-toolset-13/root/usr/bin/"
        );
        assert_eq!(
            r.manifest.library_path[0],
            "opt/rh/gcc-toolset-13/root/usr/lib64"
        );
    }

    /// A plan knows before any header is read: this host's arch resolves from the target's
    /// indexes, another arch from Debian's cross compilers (none in RPM repositories).
    #[test]
    fn a_plan_says_where_a_yum_kernels_compiler_comes_from() {
        let catalog = crate::repo::Catalog::embedded();
        let k = |arch: Arch| crate::repo::KernelRecord {
            target: "rocky-9".into(),
            target_id: "rocky".into(),
            release: "5.14.0-503.15.1.el9_5.x86_64".into(),
            kernel_version: "1".into(),
            arch,
            origin: "9/BaseOS/x86_64/os".into(),
            packages: vec![],
            unsigned_metadata: false,
        };
        let host = Arch::host().unwrap();
        let other = match host {
            Arch::X86_64 => Arch::Aarch64,
            _ => Arch::X86_64,
        };
        let native = super::super::resolve::planned_source(&catalog, &k(host)).unwrap();
        assert!(native.starts_with("rocky-9's signed indexes"), "{native}");
        let cross = super::super::resolve::planned_source(&catalog, &k(other)).unwrap();
        assert!(
            cross.contains("Debian's cross build") && cross.contains("no cross compiler"),
            "{cross}"
        );
    }

    #[test]
    fn primary_requires_provides_and_files_are_read() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="1">
<package type="rpm"><name>gcc</name><arch>x86_64</arch><version epoch="0" ver="11.4.1" rel="3.el9"/>
<checksum type="sha256" pkgid="YES">abc</checksum><location href="Packages/g/gcc-11.4.1-3.el9.x86_64.rpm"/>
<size package="34000000" installed="1" archive="1"/>
<format><rpm:license>GPL</rpm:license>
<rpm:provides><rpm:entry name="gcc" flags="EQ" epoch="0" ver="11.4.1" rel="3.el9"/><rpm:entry name="gcc(x86-64)" flags="EQ" epoch="0" ver="11.4.1" rel="3.el9"/></rpm:provides>
<rpm:requires><rpm:entry name="/bin/sh" pre="1"/><rpm:entry name="cpp" flags="EQ" epoch="0" ver="11.4.1" rel="3.el9"/><rpm:entry name="libc.so.6()(64bit)"/></rpm:requires>
<file>/usr/bin/gcc</file><file type="dir">/usr/lib/gcc/x86_64-redhat-linux/11</file></format></package>
</metadata>"#;
        let r = &crate::repo::yum::parse_primary_full(xml).unwrap()[0];
        assert_eq!((r.name.as_str(), r.size), ("gcc", 34000000));
        assert_eq!(r.provides.len(), 2);
        assert_eq!(r.requires.len(), 3);
        assert!(r.requires[0].pre && !r.requires[1].pre);
        assert_eq!(
            (r.requires[1].flags.as_str(), r.requires[1].rel.as_str()),
            ("EQ", "3.el9")
        );
        assert_eq!(r.files[0], "/usr/bin/gcc");
        // The listing's parser reads none of it.
        let r = &crate::repo::yum::parse_primary(xml, |_| true).unwrap()[0];
        assert!(r.requires.is_empty() && r.files.is_empty());
    }
}
