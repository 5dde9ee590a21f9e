//! Unpacking real Debian header packages (vs dpkg-deb -x), real RPMs built with rpmbuild (vs
//! rpm2cpio | cpio), `inspect` on every real layout, and a corpus of hostile archives.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use probeforge::extract::{self, Limits, Selection, Unpacker};
use probeforge::kernel::{Arch, KernelTree};

/// path -> ("f", sha256) | ("l", target) | ("d", "")
fn snapshot(root: &Path) -> BTreeMap<String, (char, String)> {
    let mut m = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let t = e.file_type();
        let v = if t.is_symlink() {
            ('l', fs::read_link(e.path()).unwrap().display().to_string())
        } else if t.is_dir() {
            ('d', String::new())
        } else {
            ('f', sha256_file(e.path()))
        };
        m.insert(rel, v);
    }
    m
}

fn dpkg_x(pkgs: &[PathBuf], dest: &Path) {
    for p in pkgs {
        let s = Command::new("dpkg-deb")
            .arg("-x")
            .arg(p)
            .arg(dest)
            .status()
            .unwrap();
        assert!(s.success(), "dpkg-deb -x {}", p.display());
    }
}

/// Absolute links are rewritten relative (so they resolve inside the root): compare what
/// they point at, not how.
fn normalize_links(m: &mut BTreeMap<String, (char, String)>) {
    for (path, (kind, target)) in m.iter_mut() {
        if *kind == 'l' {
            let parent = Path::new(path).parent().unwrap_or(Path::new(""));
            let abs = if target.starts_with('/') {
                PathBuf::from(target.trim_start_matches('/'))
            } else {
                parent.join(&*target)
            };
            let mut out: Vec<String> = Vec::new();
            for c in abs.components() {
                match c.as_os_str().to_str().unwrap() {
                    ".." => {
                        out.pop();
                    }
                    "." => {}
                    s => out.push(s.to_owned()),
                }
            }
            *target = out.join("/");
        }
    }
}

#[test]
fn everything_matches_dpkg_deb_x_and_selection_is_a_subset() {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let t = tmpdir();
    let mine = t.path().join("mine");
    let (_, stats) =
        extract::unpack_all(&files, &mine, Selection::Everything, Limits::default()).unwrap();
    let theirs = t.path().join("dpkg");
    dpkg_x(&files, &theirs);
    let (mut a, mut b) = (snapshot(&mine), snapshot(&theirs));
    normalize_links(&mut a);
    normalize_links(&mut b);
    // Directories are made on demand; dpkg also creates empty ones.
    let files_only = |m: &BTreeMap<String, (char, String)>| -> BTreeMap<String, (char, String)> {
        m.iter()
            .filter(|(_, v)| v.0 != 'd')
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let (fa, fb) = (files_only(&a), files_only(&b));
    assert_eq!(fa.len(), fb.len(), "{}: entry count differs", k.release);
    for (p, v) in &fb {
        assert_eq!(fa.get(p), Some(v), "{p}");
    }
    assert!(stats.written > 10_000, "{stats:?}");

    let sel = t.path().join("sel");
    let (_, sstats) =
        extract::unpack_all(&files, &sel, Selection::ProbeBuild, Limits::default()).unwrap();
    let mut s = snapshot(&sel);
    normalize_links(&mut s);
    for (p, v) in files_only(&s) {
        assert_eq!(fb.get(&p), Some(&v), "selected {p} differs from dpkg's");
    }
    assert!(
        sstats.written < stats.written / 2,
        "selection wrote {} of {}",
        sstats.written,
        stats.written
    );
    // And it is enough: the kernel is fully described.
    let kt = KernelTree::find(&sel, None).unwrap();
    assert_eq!(kt.release, k.release);
}

fn check_inspect(suite: &str, arch: Arch, version_id: &str) {
    let (k, files) = debian_kernel(suite, arch);
    let mut args = vec![
        "inspect",
        "--json",
        "--config",
        "BPF_SYSCALL",
        "--config",
        "CONFIG_NO_SUCH_OPTION",
    ];
    let paths: Vec<String> = header_files(&k, &files)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["uname"]["r"], k.release.as_str());
    assert_eq!(v["uname"]["m"], arch.uname_m());
    let uv = v["uname"]["v"].as_str().unwrap();
    assert!(uv.starts_with("#1 SMP") && uv.contains("Debian"), "{uv}");
    assert_eq!(v["kernel"]["kernel_version"], "1");
    assert_eq!(v["kernel"]["os_release"]["id"], "debian");
    assert_eq!(v["kernel"]["os_release"]["version_id"], version_id);
    assert!(v["kernel"]["srctree"]
        .as_str()
        .unwrap()
        .ends_with("-common"));
    assert_eq!(v["config"]["BPF_SYSCALL"], "y");
    assert!(v["config"]["CONFIG_NO_SUCH_OPTION"].is_null());
    let drivers = v["drivers"].as_array().unwrap();
    assert!(!drivers.is_empty(), "inspect names no driver: {v}");
    assert!(
        drivers.iter().all(|d| d["supported"] == true),
        "{drivers:?}"
    );
}

#[test]
fn inspect_bullseye_amd64() {
    check_inspect("bullseye", Arch::X86_64, "11");
}
#[test]
fn inspect_bullseye_arm64() {
    check_inspect("bullseye", Arch::Aarch64, "11");
}
#[test]
fn inspect_bookworm_amd64() {
    check_inspect("bookworm", Arch::X86_64, "12");
}
#[test]
fn inspect_trixie_amd64() {
    check_inspect("trixie", Arch::X86_64, "13");
}
#[test]
fn inspect_bookworm_arm64() {
    check_inspect("bookworm", Arch::Aarch64, "12");
}
#[test]
fn inspect_trixie_arm64() {
    check_inspect("trixie", Arch::Aarch64, "13");
}

#[test]
fn several_kernels_in_one_root_are_ambiguous_until_chosen() {
    let (k1, f1) = debian_kernel("bookworm", Arch::X86_64);
    let (k2, f2) = debian_kernel("bookworm", Arch::Aarch64);
    let mut all = header_files(&k1, &f1);
    // The arm64 flavour package only: -common is shared by both.
    all.push(f2[0].clone());
    let args: Vec<String> = all.iter().map(|p| p.display().to_string()).collect();
    let mut a = vec!["inspect"];
    a.extend(args.iter().map(String::as_str));
    let (code, _, err) = run(&a);
    assert_eq!(code, 1);
    assert!(err.contains("ambiguous: 2 kernels"), "{err}");
    a.extend(["--kernel-release", k2.release.as_str()]);
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("aarch64"), "{out}");
}

#[test]
fn rpm_reads_what_rpm2cpio_cpio_reads() {
    let t = tmpdir();
    let (rpm, release) = build_kernel_devel_rpm(t.path());
    let theirs = t.path().join("cpio");
    fs::create_dir_all(&theirs).unwrap();
    let s = Command::new("sh")
        .arg("-c")
        .arg(format!("rpm2cpio '{}' | cpio -idm --quiet", rpm.display()))
        .current_dir(&theirs)
        .status()
        .unwrap();
    assert!(s.success());
    let mine = t.path().join("mine");
    let mut u = Unpacker::new(&mine, Selection::Everything, Limits::default()).unwrap();
    let info = u.unpack_file(&rpm).unwrap();
    assert_eq!(info.name.as_deref(), Some("kernel-devel"));
    assert_eq!(info.arch.as_deref(), Some("x86_64"));
    assert!(info.files.unwrap() > 10_000);
    let (mut a, mut b) = (snapshot(&mine), snapshot(&theirs));
    normalize_links(&mut a);
    normalize_links(&mut b);
    let files = |m: &BTreeMap<String, (char, String)>| m.iter().filter(|(_, v)| v.0 != 'd').count();
    assert_eq!(files(&a), files(&b));
    for (p, v) in b.iter().filter(|(_, v)| v.0 != 'd') {
        assert_eq!(a.get(p), Some(v), "{p}");
    }
    // RPM single-tree layout: srctree == objtree.
    let k = KernelTree::find(&mine, None).unwrap();
    assert_eq!(k.release, release);
    assert_eq!(k.srctree, k.objtree);
    assert!(k.objtree.ends_with(format!("usr/src/kernels/{release}")));
}

// ---------------------------------------------------------------- hostile and broken input

fn tar_header(name: &str, typeflag: u8, mode: u32, link: &str, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let put = |h: &mut [u8; 512], off: usize, len: usize, v: u64| {
        let s = format!("{:0width$o}\0", v, width = len - 1);
        h[off..off + len].copy_from_slice(s.as_bytes());
    };
    put(&mut h, 100, 8, mode as u64);
    put(&mut h, 108, 8, 0);
    put(&mut h, 116, 8, 0);
    put(&mut h, 124, 12, size as u64);
    put(&mut h, 136, 12, 0);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

struct Tar(Vec<u8>);
impl Tar {
    fn new() -> Tar {
        Tar(Vec::new())
    }
    fn add(mut self, name: &str, typeflag: u8, mode: u32, link: &str, data: &[u8]) -> Tar {
        self.0
            .extend_from_slice(&tar_header(name, typeflag, mode, link, data.len()));
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Tar {
        self.add(name, b'0', 0o644, "", data)
    }
    fn done(mut self) -> Vec<u8> {
        self.0.extend([0u8; 1024]);
        self.0
    }
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn xz(b: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn ar(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let h = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        );
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn deb(data_tar: Vec<u8>) -> Vec<u8> {
    let control = gz(&Tar::new()
        .file(
            "./control",
            b"Package: evil\nVersion: 1\nArchitecture: all\n",
        )
        .done());
    ar(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", control),
        ("data.tar.xz", xz(&data_tar)),
    ])
}

/// Unpacks `bytes` (written as `name`) into a fresh root; asserts it fails with a message
/// containing every `needle`, and that nothing is left: not the root, not anything beside it.
fn refused(name: &str, bytes: &[u8], needles: &[&str]) {
    let t = tmpdir();
    let pkg_dir = t.path().join("in");
    fs::create_dir_all(&pkg_dir).unwrap();
    let pkg = pkg_dir.join(name);
    fs::write(&pkg, bytes).unwrap();
    let area = t.path().join("area");
    fs::create_dir_all(&area).unwrap();
    let root = area.join("root");
    let err = extract::unpack_all(&[pkg], &root, Selection::Everything, Limits::default())
        .expect_err(&format!("{name} must be refused"));
    let msg = format!("{:#}", anyhow::Error::from(err));
    for n in needles {
        assert!(msg.contains(n), "{name}: `{msg}` lacks `{n}`");
    }
    assert!(
        msg.contains(name),
        "{name}: the message must name the package: {msg}"
    );
    let left: Vec<_> = fs::read_dir(&area)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "{name}: left behind {left:?}");
    assert!(!Path::new("/tmp/probeforge-evil").exists());
}

#[test]
fn hostile_tarballs_are_refused_and_leave_nothing() {
    let ok = |t: Tar| t.file("usr/src/ok.h", b"fine");
    refused(
        "abs.tar",
        &ok(Tar::new()).file("/tmp/probeforge-evil", b"x").done(),
        &["/tmp/probeforge-evil", "absolute path"],
    );
    refused(
        "dotdot.tar",
        &ok(Tar::new())
            .file("usr/../../probeforge-evil", b"x")
            .done(),
        &["probeforge-evil", "`..`"],
    );
    refused(
        "symlink-escape.tar.gz",
        &gz(&ok(Tar::new())
            .add(
                "a",
                b'2',
                0o777,
                "../../../../../../tmp/probeforge-evil",
                b"",
            )
            .done()),
        &["a", "resolves outside the root"],
    );
    // A NUL inside a path: ustar's name field cannot hold one (NUL ends it), but a GNU long
    // name and a pax `path` record can.
    let mut long = b"usr/src/evil\0.h/".to_vec();
    long.extend(std::iter::repeat_n(b'x', 120));
    long.push(0);
    refused(
        "nul-gnu-longname.tar",
        &ok(Tar::new())
            .add("././@LongLink", b'L', 0o644, "", &long)
            .file("usr/src/placeholder", b"x")
            .done(),
        &["NUL"],
    );
    let record = |kv: &[u8]| -> Vec<u8> {
        // "<len> key=value\n", len counting itself.
        let mut n = kv.len() + 3;
        loop {
            let r = [format!("{n} ").as_bytes(), kv, b"\n"].concat();
            if r.len() == n {
                return r;
            }
            n = r.len();
        }
    };
    refused(
        "nul-pax-path.tar",
        &ok(Tar::new())
            .add("pax", b'x', 0o644, "", &record(b"path=usr/src/evil\0.h"))
            .file("usr/src/placeholder", b"x")
            .done(),
        &["NUL"],
    );
    refused(
        "through-link.tar",
        &ok(Tar::new())
            .add("usr/lib", b'2', 0o777, "src", b"")
            .file("usr/lib/x", b"x")
            .done(),
        &["usr/lib/x", "parent `usr/lib` is a link"],
    );
    refused(
        "hardlink.tar",
        &ok(Tar::new())
            .add("h", b'1', 0o644, "/etc/passwd", b"")
            .done(),
        &["hard link target"],
    );
    refused(
        "chardev.tar",
        &ok(Tar::new()).add("dev/null", b'3', 0o666, "", b"").done(),
        &["dev/null", "character device"],
    );
    refused(
        "blockdev.tar",
        &ok(Tar::new()).add("dev/sda", b'4', 0o660, "", b"").done(),
        &["block device"],
    );
    refused(
        "fifo.tar",
        &ok(Tar::new()).add("p", b'6', 0o644, "", b"").done(),
        &["fifo"],
    );
    refused(
        "setuid.tar",
        &ok(Tar::new()).add("bin/su", b'0', 0o4755, "", b"x").done(),
        &["bin/su", "setuid"],
    );
    refused(
        "setgid.tar",
        &ok(Tar::new()).add("bin/sg", b'0', 0o2755, "", b"x").done(),
        &["setgid"],
    );
    // A chain whose second link, listed first, only escapes once the first exists.
    refused(
        "chain.tar",
        &ok(Tar::new())
            .add("a/b/c/l2", b'2', 0o777, "l1/../../..", b"")
            .add("a/b/c/l1", b'2', 0o777, "../../../t", b"")
            .done(),
        &["resolves outside the root"],
    );
    refused(
        "loop.tar",
        &Tar::new()
            .add("x", b'2', 0o777, "y", b"")
            .add("y", b'2', 0o777, "x", b"")
            .done(),
        &["loop"],
    );
}

#[test]
fn bombs_and_broken_streams_get_clear_errors() {
    // 400 MB of zeros compresses to almost nothing: refused by ratio long before it is written.
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    e.write_all(&tar_header("usr/src/zero", b'0', 0o644, "", 400 << 20))
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..400 {
        e.write_all(&zeros).unwrap();
    }
    e.write_all(&[0u8; 1024]).unwrap();
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    refused(
        "bomb.tar.zst",
        &bomb,
        &["compression ratio", "exceeds the limit"],
    );

    let good = xz(&Tar::new().file("usr/src/a.h", &vec![7u8; 300_000]).done());
    refused(
        "truncated.tar.xz",
        &good[..good.len() / 2],
        &["truncated or corrupt"],
    );
    let mut corrupt = gz(&Tar::new()
        .file("usr/src/a.h", &vec![7u8; 300_000])
        .file("usr/src/b.h", b"b")
        .done());
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 16] {
        *b ^= 0x5a;
    }
    refused("corrupt.tar.gz", &corrupt, &["truncated or corrupt"]);
    refused(
        "garbage.bin",
        b"this is not a package at all",
        &["unknown package format"],
    );
}

#[test]
fn broken_debs_and_rpms_are_refused() {
    let data = Tar::new().file("./usr/src/x.h", b"x").done();
    let two = {
        let control = gz(&Tar::new().file("./control", b"Package: two\n").done());
        ar(&[
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.gz", control),
            ("data.tar.xz", xz(&data)),
            ("data.tar.gz", gz(&data)),
        ])
    };
    refused("two-data.deb", &two, &["more than one data member"]);
    let none = ar(&[("debian-binary", b"2.0\n".to_vec())]);
    refused("no-data.deb", &none, &["no data.tar member"]);
    let evil = deb(Tar::new()
        .file("./usr/src/ok.h", b"ok")
        .file("../escape", b"x")
        .done());
    refused("evil.deb", &evil, &["../escape", "`..`"]);
    let noise: Vec<u8> = (0u32..200_000)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let d = deb(Tar::new().file("./usr/src/x.h", &noise).done());
    refused(
        "truncated.deb",
        &d[..d.len() * 2 / 3],
        &["truncated or corrupt"],
    );

    // RPMs: a real header with a broken magic, and a real one cut short.
    let t = tmpdir();
    let rpm = {
        let top = t.path().join("rb");
        fs::create_dir_all(top.join("SPECS")).unwrap();
        let spec = top.join("SPECS/small.spec");
        fs::write(&spec, "Name: small\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\n%description\nd\n%install\nmkdir -p %{buildroot}/usr/src/small/include\nhead -c 300000 /dev/urandom > %{buildroot}/usr/src/small/include/a.h\n%files\n/usr/src/small\n").unwrap();
        let o = Command::new("rpmbuild")
            .arg("-bb")
            .arg(&spec)
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .env("HOME", t.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let p = walkdir::WalkDir::new(top.join("RPMS"))
            .into_iter()
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "rpm"))
            .unwrap();
        fs::read(p.path()).unwrap()
    };
    let mut bad = rpm.clone();
    bad[96] = 0; // signature header magic
    refused(
        "bad-header.rpm",
        &bad,
        &["signature header", "bad header magic"],
    );
    refused(
        "cut.rpm",
        &rpm[..rpm.len() - 100_000],
        &["truncated or corrupt"],
    );
}

#[test]
fn a_failed_package_removes_only_what_it_wrote() {
    let t = tmpdir();
    let good = t.path().join("good.tar");
    fs::write(&good, Tar::new().file("usr/src/a/include/a.h", b"a").done()).unwrap();
    let bad = t.path().join("bad.tar");
    fs::write(
        &bad,
        Tar::new()
            .file("usr/src/b/include/b.h", b"b")
            .file("/abs", b"x")
            .done(),
    )
    .unwrap();
    let root = t.path().join("root");
    let mut u = Unpacker::new(&root, Selection::Everything, Limits::default()).unwrap();
    u.unpack_file(&good).unwrap();
    assert!(u.unpack_file(&bad).is_err());
    let left = snapshot(&root);
    let names: Vec<&str> = left.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "usr",
            "usr/src",
            "usr/src/a",
            "usr/src/a/include",
            "usr/src/a/include/a.h"
        ]
    );
}
