//! RPM repositories as distributions publish them, made by the real tools: `rpmbuild` packages
//! (real Debian kernel headers laid out as each distribution lays them out), `createrepo_c`
//! metadata, and gpg signatures where the distribution signs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use probeforge::kernel::Arch;
use probeforge::repo::KernelRecord;

use super::gpg::TestKey;
use super::{debian_kernel, header_files};

/// One package for `rpmbuild`: directories copied to paths below `/`, and small files.
pub struct Spec<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub release: &'a str,
    /// `x86_64`, `aarch64` or `noarch`.
    pub arch: &'a str,
    /// (directory on this machine, its path in the package without the leading `/`).
    pub trees: Vec<(PathBuf, String)>,
    /// (path in the package without the leading `/`, content).
    pub files: Vec<(String, String)>,
    /// (path in the package without the leading `/`, link target), inside a tree above.
    pub links: Vec<(String, String)>,
    /// Extra preamble lines (`Requires: ...`).
    pub preamble: Vec<String>,
}

/// Builds one package with rpmbuild under `t`; returns the `.rpm`.
pub fn rpmbuild(t: &Path, s: &Spec) -> PathBuf {
    let top = t.join(format!(
        "rpmbuild-{}-{}-{}.{}",
        s.name, s.version, s.release, s.arch
    ));
    fs::create_dir_all(top.join("SPECS")).unwrap();
    let mut install = String::new();
    let mut files = String::new();
    for (dir, dest) in &s.trees {
        let parent = Path::new(dest).parent().unwrap().display().to_string();
        install += &format!(
            "mkdir -p %{{buildroot}}/{parent}\ncp -a {} %{{buildroot}}/{dest}\n",
            dir.display()
        );
        files += &format!("/{dest}\n");
    }
    for (i, (dest, content)) in s.files.iter().enumerate() {
        let src = top.join(format!("file-{i}"));
        fs::write(&src, content).unwrap();
        let parent = Path::new(dest).parent().unwrap().display().to_string();
        install += &format!(
            "mkdir -p %{{buildroot}}/{parent}\ncp {} %{{buildroot}}/{dest}\n",
            src.display()
        );
        files += &format!("/{dest}\n");
    }
    for (at, to) in &s.links {
        install += &format!("ln -s {to} %{{buildroot}}/{at}\n");
    }
    let build_arch = match s.arch {
        "noarch" => "BuildArch: noarch\n",
        _ => "",
    };
    let spec = top.join(format!("SPECS/{}.spec", s.name));
    fs::write(
        &spec,
        format!(
            r#"
Name: {name}
Version: {version}
Release: {release}
Summary: Debian headers laid out as a distribution packages them (probeforge tests)
License: GPL-2.0
AutoReqProv: no
{build_arch}{preamble}
%global debug_package %{{nil}}
%define __os_install_post %{{nil}}
%define _build_id_links none
%define _binary_payload w2.xzdio
%description
test package
%install
{install}
%files
{files}
"#,
            name = s.name,
            version = s.version,
            release = s.release,
            preamble = s.preamble.join("\n"),
        ),
    )
    .unwrap();
    let target = match s.arch {
        "noarch" => "x86_64",
        a => a,
    };
    let out = Command::new("rpmbuild")
        .arg("-bb")
        .arg(&spec)
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--target")
        .arg(target)
        .env("HOME", t)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpmbuild {}: {}",
        s.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let rpm = walkdir::WalkDir::new(top.join("RPMS"))
        .into_iter()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "rpm"))
        .unwrap()
        .path()
        .to_owned();
    let expect = format!("{}-{}-{}.{}.rpm", s.name, s.version, s.release, s.arch);
    assert_eq!(rpm.file_name().unwrap().to_str().unwrap(), expect);
    rpm
}

/// Copies packages into a repository directory at the given relative paths (`x86_64/`,
/// `noarch/`, `Packages/`), runs `createrepo_c` on it with `args`, and signs
/// `repodata/repomd.xml` as `repomd.xml.asc` (armored, detached) when a key is given.
pub fn yum_repo(repo: &Path, packages: &[(&Path, &str)], args: &[&str], key: Option<&TestKey>) {
    for (rpm, dir) in packages {
        let d = repo.join(dir);
        fs::create_dir_all(&d).unwrap();
        fs::copy(rpm, d.join(rpm.file_name().unwrap())).unwrap();
    }
    let o = Command::new("createrepo_c")
        .arg("--quiet")
        .args(args)
        .arg(repo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if let Some(k) = key {
        let md = repo.join("repodata/repomd.xml");
        k.detach(&md, &repo.join("repodata/repomd.xml.asc"), true);
    }
}

/// The newest bookworm amd64 kernel's header packages unpacked under `t/deb`: the kernel, its
/// srctree (`linux-headers-V-common`) and its objtree (`linux-headers-<release>`), the split
/// openSUSE's `kernel-devel` (noarch) and `kernel-<flavour>-devel` follow too.
pub fn debian_headers(t: &Path) -> (KernelRecord, PathBuf, PathBuf) {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let deb = t.join("deb");
    for p in header_files(&k, &files) {
        assert!(Command::new("dpkg-deb")
            .arg("-x")
            .arg(&p)
            .arg(&deb)
            .status()
            .unwrap()
            .success());
    }
    let common = fs::read_dir(deb.join("usr/src"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-common"))
        .unwrap();
    let obj = deb
        .join("usr/src")
        .join(format!("linux-headers-{}", k.release));
    (k, common, obj)
}

/// The upstream version of a Debian kernel package (`6.1.158-1` -> `6.1.158`).
pub fn upstream_version(k: &KernelRecord) -> String {
    let v = &k.packages[0].version;
    v.split(['-', '~', '+']).next().unwrap().to_owned()
}

/// Makes an objtree say another `uname -r` (and, where given, another `uname -v` and
/// compiler), as the distribution's own build of it would.
pub fn rename_kernel(objtree: &Path, release: &str, uname_v: Option<&str>, cc: Option<&str>) {
    let gen = objtree.join("include/generated");
    fs::write(
        gen.join("utsrelease.h"),
        format!("#define UTS_RELEASE \"{release}\"\n"),
    )
    .unwrap();
    let _ = fs::write(
        objtree.join("include/config/kernel.release"),
        format!("{release}\n"),
    );
    let define = |file: &str, name: &str, value: &str| {
        let p = gen.join(file);
        let Ok(text) = fs::read_to_string(&p) else {
            return;
        };
        // `#define NAME<spaces or tabs>"value"`.
        let is_it = |l: &str| {
            l.strip_prefix("#define ")
                .and_then(|r| r.strip_prefix(name))
                .is_some_and(|r| r.starts_with([' ', '\t']))
        };
        let text: Vec<String> = text
            .lines()
            .map(|l| match is_it(l) {
                true => format!("#define {name} \"{value}\""),
                false => l.to_owned(),
            })
            .collect();
        fs::write(&p, text.join("\n") + "\n").unwrap();
    };
    if let Some(v) = uname_v {
        define("utsversion.h", "UTS_VERSION", v);
        define("compile.h", "UTS_VERSION", v);
    }
    if let Some(c) = cc {
        define("compile.h", "LINUX_COMPILER", c);
    }
}

/// Copies a Debian objtree's own entries (not its links into kbuild, not its `Makefile`,
/// which includes the Debian srctree) to `dest`.
pub fn copy_objtree(obj: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    for e in fs::read_dir(obj).unwrap().flatten() {
        if e.file_type().unwrap().is_symlink() || e.file_name() == "Makefile" {
            continue;
        }
        assert!(Command::new("cp")
            .arg("-a")
            .arg(e.path())
            .arg(dest)
            .status()
            .unwrap()
            .success());
    }
}

/// A staged Debian kernel set (headers, `-common` and `linux-kbuild` unpacked at `staged`) made
/// one tree at `tree`, as RPM `kernel-devel` and Bottlerocket's kit ship it: the srctree, the
/// objtree's own entries over it, and kbuild's programs (fixdep, modpost, objtool) in
/// `scripts/` and `tools/`.
pub fn one_tree_with_kbuild(staged: &Path, tree: &Path) {
    let src = staged.join("usr/src");
    let entries: Vec<PathBuf> = fs::read_dir(&src)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let common = entries
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-common"))
        .expect("a -common srctree");
    let obj = entries
        .iter()
        .find(|p| {
            let n = p.to_string_lossy();
            !n.ends_with("-common") && (n.ends_with("-amd64") || n.ends_with("-arm64"))
        })
        .expect("an objtree");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(common)
        .arg(tree)
        .status()
        .unwrap()
        .success());
    copy_objtree(obj, tree);
    let kb = fs::read_dir(staged.join("usr/lib"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("linux-kbuild-")
        })
        .expect("linux-kbuild");
    for d in ["scripts", "tools"] {
        if kb.join(d).is_dir() {
            let at = tree.join(d);
            if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                fs::remove_file(&at).unwrap();
            }
            fs::create_dir_all(&at).unwrap();
            assert!(Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", kb.join(d).display()))
                .arg(&at)
                .status()
                .unwrap()
                .success());
        }
    }
}
