//! The kernel's compiler found in its own pacman repositories (Arch Linux).
//!
//! Arch's kernels say `gcc (GCC) 15.1.1 20250425`: gcc's own version and the date of its
//! snapshot, no package release. The package is `gcc` (or `gccN`, shipping `/usr/bin/gcc-N`)
//! whose version's upstream part (`15.1.1` of `15.1.1+r7+gf36ec88aa85a-1`) is the text's; the
//! date is only known from what the unpacked compiler says, so that is where the exact build
//! is recognised ([`super::gcc::Compiler::pinned`]). Without a build of that version, the
//! newest of the same major version is taken, said and recorded (`nearest`), unless the
//! caller requires the exact one. A compiler named as Debian names it (`<program> (<vendor>
//! <package version>) <version>`) is the package shipping `/usr/bin/<program>` (by the
//! `.files` database, else by name or `%PROVIDES%`) at exactly that package version.
//!
//! The closure follows `%DEPENDS%` through names and `%PROVIDES%` with pacman's version
//! comparison; every package is later fetched by the database's `%SHA256SUM%` and `%CSIZE%`,
//! and one from an unsigned database (Arch's) carries its own signature to be checked then
//! ([`GccPackage::own_signature`]). Pure over the parsed databases: nothing here fetches or
//! decides trust.

use super::gcc::{GccManifest, GccPackage, KernelCompiler, OwnSignature};
use super::resolve::{Resolved, VersionText};
use super::Error;
use crate::kernel::Arch;
use crate::repo::pacman::{self, DbPackage};

/// One package of a target's databases: the path of its repository below the catalog mirror
/// (`core/os/x86_64`) and the package.
pub type PacIndex = [(String, DbPackage)];

/// What an Arch gcc's `--version` says first: `gcc (GCC) 15.1.1 20250425`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GccText {
    /// `gcc`, `gcc-14`.
    pub program: String,
    /// `15.1.1`.
    pub upstream: String,
    /// `20250425`, where the text has one.
    pub date: Option<String>,
    pub major: u32,
}

impl GccText {
    /// Parses `<gcc program> (GCC) <version>[ <date>]`; `None` for any other shape.
    pub fn parse(text: &str) -> Option<GccText> {
        let (program, rest) = text.trim().split_once(" (GCC) ")?;
        if program != "gcc" && !program.starts_with("gcc-") {
            return None;
        }
        let mut words = rest.split_whitespace();
        let upstream = words.next()?.to_owned();
        let date = words.next().map(str::to_owned);
        let major = program
            .strip_prefix("gcc-")
            .unwrap_or(&upstream)
            .split('.')
            .next()?
            .parse()
            .ok()?;
        Some(GccText {
            program: program.to_owned(),
            upstream,
            date,
            major,
        })
    }
}

/// gcc's own version in a pacman version: `15.1.1+r7+gf36ec88aa85a-1` -> `15.1.1`.
pub fn upstream_of(version: &str) -> &str {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    let v = v.rsplit_once('-').map_or(v, |(v, _)| v);
    v.split(['+', '_']).next().unwrap_or(v)
}

/// Packages a compiler never needs to run, though its libraries name them.
const NEVER: &[&str] = &["filesystem", "tzdata", "iana-etc", "sh", "bash"];

/// Runtime libraries of the kernel's own kbuild tools, Arch's names first (the test's
/// packages made from Debian's keep Debian's).
const KBUILD_TOOL_LIBS: &[&[&str]] = &[
    &["libelf", "libelf1t64", "libelf1"],
    &["openssl", "libssl3t64", "libssl3"],
    &["zlib", "zlib1g"],
    &["glibc", "libc6"],
];

/// The kernel's compiler and its closure from a pacman `index` (each package with its
/// repository's path below catalog mirror `mirror`); a package of a repository in
/// `unsigned` (its database is unsigned) must carry its own signature. `target` names the
/// databases for messages and records.
#[allow(clippy::too_many_arguments)]
pub fn resolve(
    want: &KernelCompiler,
    kernel: Arch,
    host: Arch,
    index: &PacIndex,
    unsigned: &[String],
    exact_only: bool,
    target: &str,
    mirror: &str,
    tools: &[&[&str]],
) -> Result<Resolved, Error> {
    let refuse = |why: String| Error::NotInIndex {
        kernel: want.text.clone(),
        target: target.to_owned(),
        why,
    };
    if kernel != host {
        return Err(refuse(format!(
            "a {kernel:?} kernel on a {host:?} host: pacman databases carry no cross compiler \
             probeforge uses"
        )));
    }
    let on_host = |p: &DbPackage| p.arch == host.uname_m() || p.arch == "any";
    let ships = |p: &DbPackage, prog: &str| {
        let path = format!("usr/bin/{prog}");
        p.files.contains(&path)
            || p.name == prog
            || p.provides.iter().any(|d| pacman::split_dep(d).0 == prog)
    };
    // (program, major, the exact build's test, names to look under).
    let arch_text = GccText::parse(&want.text);
    let deb_text = VersionText::parse(&want.text);
    let (program, major, vendor) = match (&arch_text, &deb_text) {
        (Some(a), _) => (a.program.clone(), a.major, "GCC".to_owned()),
        (None, Some(d)) => (d.program.clone(), d.major, d.vendor.clone()),
        (None, None) => return Err(refuse("the text names no gcc and version".into())),
    };
    let exact_of = |p: &DbPackage| match (&arch_text, &deb_text) {
        (Some(a), _) => upstream_of(&p.version) == a.upstream,
        (None, Some(d)) => {
            let v = p
                .version
                .split_once(':')
                .map_or(p.version.as_str(), |(_, v)| v);
            v == d.package_version
        }
        _ => false,
    };
    let gccn = format!("gcc{major}");
    let gcc_n = format!("gcc-{major}");
    let candidates: Vec<&(String, DbPackage)> = index
        .iter()
        .filter(|(_, p)| on_host(p))
        .filter(|(_, p)| {
            ships(p, &program) || (arch_text.is_some() && (p.name == "gcc" || p.name == gccn))
        })
        .filter(|(_, p)| {
            upstream_of(&p.version).split('.').next() == Some(major.to_string().as_str())
        })
        .collect();
    // The package that ships the very program first, then the newest.
    let rank = |a: &&&(String, DbPackage), b: &&&(String, DbPackage)| {
        ships(&a.1, &program)
            .cmp(&ships(&b.1, &program))
            .then_with(|| pacman::vercmp(&a.1.version, &b.1.version))
    };
    let exact_build = candidates.iter().filter(|(_, p)| exact_of(p)).max_by(rank);
    let offered = {
        let mut v: Vec<String> = candidates
            .iter()
            .map(|(_, p)| format!("`{}` {}", p.name, p.version))
            .collect();
        v.sort();
        v.dedup();
        match v.is_empty() {
            true => String::new(),
            false => format!("; the databases offer {}", v.join(", ")),
        }
    };
    let (exact, driver) = match exact_build {
        Some(d) => (true, *d),
        None if exact_only => {
            return Err(refuse(format!(
                "no build of `{program}` {} (exact build required){offered}",
                arch_text
                    .as_ref()
                    .map(|a| a.upstream.clone())
                    .or_else(|| deb_text.as_ref().map(|d| d.package_version.clone()))
                    .unwrap_or_default()
            )))
        }
        None => match candidates.iter().max_by(rank) {
            Some(d) => (false, *d),
            None => {
                return Err(refuse(format!(
                    "no package shipping `/usr/bin/{program}` of gcc {major} for {}",
                    host.uname_m()
                )))
            }
        },
    };
    let mut roots: Vec<&(String, DbPackage)> = vec![driver];
    for group in KBUILD_TOOL_LIBS.iter().chain(tools) {
        roots.extend(
            group
                .iter()
                .find_map(|n| index.iter().find(|(_, p)| p.name == *n && on_host(p))),
        );
    }
    let closure = closure(&roots, index, on_host);
    let all_files = || closure.iter().flat_map(|(_, p)| p.files.iter());
    let has = |path: &str| all_files().any(|f| f == path);
    let d = &driver.1;
    // The driver by the program's name where the package has it, else `gcc-N`, else `gcc`.
    let gcc = [program.as_str(), gcc_n.as_str(), "gcc"]
        .iter()
        .map(|p| format!("usr/bin/{p}"))
        .find(|p| d.files.iter().any(|f| f == p))
        .unwrap_or_else(|| match d.name == gccn {
            true => format!("usr/bin/{gcc_n}"),
            false => format!("usr/bin/{program}"),
        });
    let triplet = host.triple();
    // Arch's binutils are unprefixed; Debian's split packages prefix the triplet.
    let binutils_prefix = match has(&format!("usr/bin/{triplet}-as")) {
        true => format!("usr/bin/{triplet}-"),
        false => "usr/bin/".to_owned(),
    };
    let ld = host.loader().rsplit('/').next().unwrap_or_default();
    // A real file, never a link (Debian's `usr/lib64` link is absolute): Arch's
    // `usr/lib/<ld>`, a multiarch `usr/lib/<triplet>/<ld>`.
    let loader = [
        format!("usr/lib/{triplet}/{ld}"),
        format!("lib/{triplet}/{ld}"),
        format!("usr/lib/{ld}"),
    ]
    .into_iter()
    .find(|p| has(p))
    .unwrap_or_else(|| format!("usr/lib/{ld}"));
    let packages = closure
        .iter()
        .map(|(repo, p)| GccPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            mirror: mirror.to_owned(),
            filename: format!("{repo}/{}", p.filename),
            size: p.csize,
            sha256: p.sha256.clone(),
            own_signature: unsigned.contains(repo).then(|| match &p.pgpsig {
                Some(sig) => OwnSignature::Pgpsig(sig.clone()),
                None => OwnSignature::Beside,
            }),
        })
        .collect::<Vec<_>>();
    let databases = match packages.iter().any(|p| p.own_signature.is_some()) {
        true => "pacman databases (unsigned: each package by its own signature)",
        false => "signed pacman databases",
    };
    let version_text = match exact {
        true => want.text.clone(),
        // What the nearest build will say, but for the date only its binary knows.
        false => match &deb_text {
            Some(t) if arch_text.is_none() => {
                let v = d
                    .version
                    .split_once(':')
                    .map_or(d.version.as_str(), |(_, v)| v);
                format!("{program} ({} {v}) {}", t.vendor, upstream_of(&d.version))
            }
            _ => format!("{program} ({vendor}) {}", upstream_of(&d.version)),
        },
    };
    let manifest = GccManifest {
        name: format!("{}_{}@{target}", d.name, d.version),
        version_text,
        host_arch: host,
        target_arch: kernel,
        pinned_from: target.to_owned(),
        note: match exact {
            true => format!(
                "resolved from {target}'s {databases}: `{}` {} and its dependency closure",
                d.name, d.version
            ),
            false => format!(
                "resolved from {target}'s {databases}: the kernel names `{}`, a build they do \
                 not carry; the nearest build of gcc {major}, `{}` {}, is used",
                want.text, d.name, d.version
            ),
        },
        gcc,
        binutils_prefix,
        loader,
        library_path: vec![
            format!("usr/lib/{triplet}"),
            format!("lib/{triplet}"),
            "usr/lib".into(),
        ],
        packages,
        nearest: !exact,
        major_only: false,
    };
    Ok(Resolved {
        manifest,
        driver_package: d.name.clone(),
        version: d.version.clone(),
        exact,
    })
}

/// The dependency closure of `roots`: each `%DEPENDS%` entry not yet met by a chosen package
/// (by name or `%PROVIDES%`) resolved to a package of that name satisfying it, else one
/// providing it, the newest. Sorted by name, so the manifest's digest is stable.
fn closure(
    roots: &[&(String, DbPackage)],
    index: &PacIndex,
    on_host: impl Fn(&DbPackage) -> bool,
) -> Vec<(String, DbPackage)> {
    let meets = |p: &DbPackage, dep: &str| {
        let (name, op, ver) = pacman::split_dep(dep);
        if p.name == name && pacman::satisfies(&p.version, op, ver) {
            return true;
        }
        p.provides.iter().any(|pr| {
            let (pn, _, pv) = pacman::split_dep(pr);
            // A provision without a version meets only an unversioned dependency.
            pn == name
                && match (op.is_empty(), pv.is_empty()) {
                    (true, _) => true,
                    (false, true) => false,
                    (false, false) => pacman::satisfies(pv, op, ver),
                }
        })
    };
    let mut set: Vec<(String, DbPackage)> = Vec::new();
    let mut queue: Vec<(String, DbPackage)> = roots.iter().map(|r| (*r).clone()).collect();
    while let Some(next) = queue.pop() {
        if set.iter().any(|(_, p)| p.name == next.1.name) {
            continue;
        }
        for dep in &next.1.depends {
            let name = pacman::split_dep(dep).0;
            if NEVER.contains(&name)
                || set
                    .iter()
                    .chain(queue.iter())
                    .chain(std::iter::once(&next))
                    .any(|(_, p)| meets(p, dep))
            {
                continue;
            }
            let best = |by_name: bool| {
                index
                    .iter()
                    .filter(|(_, p)| on_host(p) && (p.name == name) == by_name && meets(p, dep))
                    .max_by(|a, b| pacman::vercmp(&a.1.version, &b.1.version))
            };
            if let Some(p) = best(true).or_else(|| best(false)) {
                queue.push(p.clone());
            }
        }
        set.push(next);
    }
    set.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(
        name: &str,
        version: &str,
        depends: &[&str],
        provides: &[&str],
        files: &[&str],
    ) -> (String, DbPackage) {
        (
            "core/os/x86_64".into(),
            DbPackage {
                filename: format!("{name}-{version}-x86_64.pkg.tar.zst"),
                name: name.into(),
                version: version.into(),
                arch: "x86_64".into(),
                csize: 7,
                sha256: format!("{:0>64}", name.len()),
                pgpsig: None,
                depends: depends.iter().map(|s| s.to_string()).collect(),
                provides: provides.iter().map(|s| s.to_string()).collect(),
                files: files.iter().map(|s| s.to_string()).collect(),
            },
        )
    }

    /// Arch's own shape: names, provides and versions as its databases have them.
    fn arch_index() -> Vec<(String, DbPackage)> {
        vec![
            pkg(
                "gcc",
                "15.1.1+r7+gf36ec88aa85a-1",
                &[
                    "gcc-libs=15.1.1+r7+gf36ec88aa85a-1",
                    "binutils>=2.28",
                    "libmpc",
                    "zstd",
                    "libisl.so=23-64",
                ],
                &["gcc-multilib"],
                &[],
            ),
            pkg(
                "gcc-libs",
                "15.1.1+r7+gf36ec88aa85a-1",
                &["glibc>=2.27"],
                &["libgcc_s.so=1-64"],
                &[],
            ),
            pkg("gcc-libs", "14.9.9-1", &["glibc"], &[], &[]),
            pkg(
                "gcc14",
                "14.2.1+r753+g1cd744a6828f-1",
                &["gcc14-libs=14.2.1+r753+g1cd744a6828f-1", "binutils"],
                &[],
                &[],
            ),
            pkg(
                "gcc14-libs",
                "14.2.1+r753+g1cd744a6828f-1",
                &["glibc"],
                &[],
                &[],
            ),
            pkg(
                "binutils",
                "2.44+r94+gfe459e33c676-1",
                &["glibc>=2.41", "jansson", "libelf", "zlib", "zstd"],
                &["libctf.so=0-64"],
                &[],
            ),
            pkg(
                "glibc",
                "2.41+r48+g5cb575ca9a3d-1",
                &["linux-api-headers>=4.10", "tzdata", "filesystem"],
                &[],
                &[],
            ),
            pkg("linux-api-headers", "6.15-1", &[], &[], &[]),
            pkg("libmpc", "1.3.1-2", &["mpfr"], &[], &[]),
            pkg("mpfr", "4.2.2-1", &["gmp>=5.0"], &[], &[]),
            pkg("gmp", "6.3.0-2", &[], &[], &[]),
            pkg("libisl", "0.27-1", &[], &["libisl.so=23-64"], &[]),
            pkg("zstd", "1.5.7-2", &["glibc"], &[], &[]),
            pkg("jansson", "2.14.1-1", &[], &[], &[]),
            pkg("libelf", "0.193-1", &["zlib"], &[], &[]),
            pkg("zlib", "1:1.3.1-2", &[], &[], &[]),
            pkg("openssl", "3.5.0-1", &[], &[], &[]),
            pkg("tzdata", "2025b-1", &[], &[], &[]),
        ]
    }

    fn from(
        index: &[(String, DbPackage)],
        text: &str,
        exact_only: bool,
    ) -> Result<Resolved, Error> {
        let want = KernelCompiler {
            text: text.into(),
            gcc_version: 0,
        };
        resolve(
            &want,
            Arch::X86_64,
            Arch::X86_64,
            index,
            &[],
            exact_only,
            "arch",
            "arch",
            &[],
        )
    }

    #[test]
    fn arch_version_texts_in_their_parts() {
        let t = GccText::parse("gcc (GCC) 15.1.1 20250425").unwrap();
        assert_eq!(
            (t.program.as_str(), t.upstream.as_str(), t.major),
            ("gcc", "15.1.1", 15)
        );
        assert_eq!(t.date.as_deref(), Some("20250425"));
        let t = GccText::parse("gcc-14 (GCC) 14.2.1 20250207").unwrap();
        assert_eq!(t.major, 14);
        assert!(GccText::parse("gcc-12 (Debian 12.2.0-14) 12.2.0").is_none());
        assert!(GccText::parse("clang version 19.1.7").is_none());
        assert_eq!(upstream_of("15.1.1+r7+gf36ec88aa85a-1"), "15.1.1");
        assert_eq!(upstream_of("1:2.44-1"), "2.44");
    }

    #[test]
    fn arch_gcc_and_its_closure_through_provides_and_versions() {
        let r = from(&arch_index(), "gcc (GCC) 15.1.1 20250425", true).unwrap();
        assert!(r.exact && !r.manifest.nearest);
        assert_eq!(r.driver_package, "gcc");
        let names: Vec<(&str, &str)> = r
            .manifest
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("binutils", "2.44+r94+gfe459e33c676-1"),
                ("gcc", "15.1.1+r7+gf36ec88aa85a-1"),
                ("gcc-libs", "15.1.1+r7+gf36ec88aa85a-1"),
                ("glibc", "2.41+r48+g5cb575ca9a3d-1"),
                ("gmp", "6.3.0-2"),
                ("jansson", "2.14.1-1"),
                ("libelf", "0.193-1"),
                ("libisl", "0.27-1"),
                ("libmpc", "1.3.1-2"),
                ("linux-api-headers", "6.15-1"),
                ("mpfr", "4.2.2-1"),
                ("openssl", "3.5.0-1"),
                ("zlib", "1:1.3.1-2"),
                ("zstd", "1.5.7-2"),
            ]
        );
        let m = &r.manifest;
        assert_eq!(m.version_text, "gcc (GCC) 15.1.1 20250425");
        assert_eq!(
            (m.gcc.as_str(), m.binutils_prefix.as_str()),
            ("usr/bin/gcc", "usr/bin/")
        );
        assert_eq!(m.loader, "usr/lib/ld-linux-x86-64.so.2");
        assert!(m.library_path.contains(&"usr/lib".to_owned()));
        assert_eq!(
            m.packages[1].filename,
            "core/os/x86_64/gcc-15.1.1+r7+gf36ec88aa85a-1-x86_64.pkg.tar.zst"
        );
        assert_eq!(m.name, "gcc_15.1.1+r7+gf36ec88aa85a-1@arch");
    }

    #[test]
    fn a_package_of_an_unsigned_database_carries_its_own_signature() {
        let mut index = arch_index();
        index[0].1.pgpsig = Some("c2ln".into());
        let want = KernelCompiler {
            text: "gcc (GCC) 15.1.1 20250425".into(),
            gcc_version: 0,
        };
        let unsigned = ["core/os/x86_64".to_owned()];
        let r = resolve(
            &want,
            Arch::X86_64,
            Arch::X86_64,
            &index,
            &unsigned,
            true,
            "arch",
            "arch",
            &[],
        )
        .unwrap();
        let own = |name: &str| {
            let p = r.manifest.packages.iter().find(|p| p.name == name).unwrap();
            p.own_signature.clone()
        };
        assert_eq!(own("gcc"), Some(OwnSignature::Pgpsig("c2ln".into())));
        assert_eq!(own("zlib"), Some(OwnSignature::Beside));
        assert!(
            r.manifest.note.contains("own signature"),
            "{}",
            r.manifest.note
        );
        // A signed database's packages are trusted by its digests.
        let r = from(&index, "gcc (GCC) 15.1.1 20250425", true).unwrap();
        assert!(r
            .manifest
            .packages
            .iter()
            .all(|p| p.own_signature.is_none()));
    }

    #[test]
    fn an_older_major_is_its_gccn_package_and_a_gone_build_the_nearest_unless_exact() {
        let r = from(&arch_index(), "gcc (GCC) 14.2.1 20250207", true).unwrap();
        assert_eq!(r.driver_package, "gcc14");
        assert_eq!(r.manifest.gcc, "usr/bin/gcc-14");
        let err = from(&arch_index(), "gcc (GCC) 14.1.1 20240720", true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exact build required") && err.contains("`gcc14` 14.2.1+r753"),
            "{err}"
        );
        let r = from(&arch_index(), "gcc (GCC) 14.1.1 20240720", false).unwrap();
        assert!(!r.exact && r.manifest.nearest);
        assert_eq!(r.manifest.version_text, "gcc (GCC) 14.2.1");
        assert!(
            r.manifest.note.contains("gcc (GCC) 14.1.1 20240720"),
            "{}",
            r.manifest.note
        );
        // Never another major version.
        let err = from(&arch_index(), "gcc (GCC) 13.2.1 20230801", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gcc 13"), "{err}");
    }

    #[test]
    fn a_debian_shaped_text_is_the_package_shipping_its_program() {
        let t = "x86_64-linux-gnu-gcc-15 (Debian 15.2.0-7) 15.2.0";
        let index = vec![
            pkg(
                "gcc-15-x86-64-linux-gnu",
                "15.2.0-7",
                &[
                    "cpp-15-x86-64-linux-gnu=15.2.0-7",
                    "binutils-x86-64-linux-gnu>=2.40",
                    "libc6",
                ],
                &[],
                &["usr/bin/", "usr/bin/x86_64-linux-gnu-gcc-15"],
            ),
            pkg(
                "gcc-15-x86-64-linux-gnu",
                "15.2.0-5",
                &[],
                &[],
                &["usr/bin/x86_64-linux-gnu-gcc-15"],
            ),
            pkg("cpp-15-x86-64-linux-gnu", "15.2.0-7", &["libc6"], &[], &[]),
            pkg(
                "binutils-x86-64-linux-gnu",
                "2.45-7",
                &["libc6"],
                &[],
                &["usr/bin/x86_64-linux-gnu-as"],
            ),
            pkg(
                "libc6",
                "2.41-12",
                &[],
                &[],
                &[
                    "usr/lib64/ld-linux-x86-64.so.2",
                    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                ],
            ),
        ];
        let r = from(&index, t, true).unwrap();
        assert!(r.exact);
        assert_eq!(r.version, "15.2.0-7");
        let m = &r.manifest;
        assert_eq!(m.gcc, "usr/bin/x86_64-linux-gnu-gcc-15");
        assert_eq!(m.binutils_prefix, "usr/bin/x86_64-linux-gnu-");
        assert_eq!(m.loader, "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
        assert_eq!(m.packages.len(), 4);
        let err = from(
            &index,
            "x86_64-linux-gnu-gcc-15 (Debian 15.2.0-9) 15.2.0",
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("15.2.0-5") && err.contains("15.2.0-7"),
            "{err}"
        );
    }
}
