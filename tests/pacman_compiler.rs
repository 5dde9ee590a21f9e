//! A kernel's module compiler from its own signed pacman database: an Arch-layout repository
//! (the real `repo-add`, databases signed with gpg) on loopback serving `linux-headers` made
//! from a real Debian forky kernel (whose compiler no pinned manifest and not this host's gcc
//! says) and that kernel's real compiler as pacman packages made around the real Debian
//! packages of its closure. The module is built with the compiler fetched by the database's
//! digests and validated against the kernel's Module.symvers; a tampered package is refused.
//! As on real Arch, unsigned databases with every package signed on its own also give the
//! compiler; a compiler package without its own valid signature is then refused.

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::distros::{arch_package_with, repo_add};
use common::gpg::test_key;
use common::server::{Fault, Server};
use common::*;
use probeforge::kernel::Arch;
use probeforge::kmod::gcc::{self, GccManifest, KernelCompiler};
use probeforge::kmod::resolve::{kbuild_tools, IndexCompilers};
use probeforge::repo::{apt, KernelRecord};

/// The newest forky amd64 kernel whose set the mirror serves whole.
fn forky_kernel() -> (KernelRecord, Vec<PathBuf>) {
    let mut all: Vec<KernelRecord> = lister()
        .list("debian-forky", &[Arch::X86_64])
        .unwrap_or_else(|e| panic!("listing debian-forky: {e:#?}"))
        .into_iter()
        .filter(|k| k.origin == "forky" && k.release.ends_with("+deb14-amd64"))
        .collect();
    all.sort_by(|a, b| apt::compare_versions(&b.packages[0].version, &a.packages[0].version));
    for k in all {
        match lister().fetch(&k) {
            Ok(files) => return (k, files),
            Err(probeforge::repo::Error::Unavailable { .. }) => continue,
            Err(e) => panic!("fetch {}: {e:#?}", k.release),
        }
    }
    panic!("no forky amd64 kernel can be downloaded completely")
}

/// A Debian version as a pacman one: one `-` before the release (`1:1.3-1`, `15.2.0-7`).
fn pacman_version(v: &str) -> String {
    match v.rsplit_once('-') {
        Some((up, rel)) => format!("{}-{rel}", up.replace('-', "_")),
        None => format!("{v}-1"),
    }
}

/// A package made once per input (the .deb's digest, its pacman version and depends) and kept
/// in the shared test cache; copied into `dir`.
fn cached_package(
    dir: &Path,
    scratch: &Path,
    key: &str,
    file_name: &str,
    make: impl FnOnce(&Path) -> PathBuf,
) -> PathBuf {
    let store = cache_dir().join("pacman-compiler");
    fs::create_dir_all(&store).unwrap();
    let cached = store.join(format!("{}.pkg.tar.zst", &key[..32]));
    if !cached.is_file() {
        let out = scratch.join(format!("out-{}", &key[..16]));
        fs::create_dir_all(&out).unwrap();
        let made = make(&out);
        let tmp = store.join(format!(".{}.{}", &key[..32], std::process::id()));
        fs::copy(&made, &tmp).unwrap();
        fs::rename(&tmp, &cached).unwrap();
        let _ = fs::remove_dir_all(&out);
    }
    let dest = dir.join(file_name);
    fs::copy(&cached, &dest).unwrap();
    dest
}

fn unpack_deb(deb: &Path, root: &Path) {
    let st = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(root)
        .status()
        .unwrap();
    assert!(st.success(), "dpkg-deb -x {}", deb.display());
}

#[test]
fn arch_builds_the_module_with_the_compiler_from_its_signed_database() {
    let t = tmpdir();
    let srv = t.path().join("srv");
    let core = srv.join("core/os/x86_64");
    fs::create_dir_all(&core).unwrap();

    // (a) A forky kernel, whose compiler is neither pinned nor this host's.
    let (k, files) = forky_kernel();
    let stage = t.path().join("headers");
    probeforge::extract::unpack_all(
        &files,
        &stage,
        probeforge::extract::Selection::Everything,
        Default::default(),
    )
    .unwrap();
    let tree = probeforge::kernel::KernelTree::find(&stage, None).unwrap();
    let want = KernelCompiler::of(&tree).unwrap();
    assert!(
        gcc::choose(&want, Arch::X86_64, &GccManifest::embedded()).is_err(),
        "{} is pinned or this host's: the test proves nothing",
        want.text
    );
    let tools = kbuild_tools(&tree);
    drop(tree);
    // `lib/modules/<release>/build` links to `/usr/src/...`: not a file of Arch's package.
    let _ = fs::remove_dir_all(stage.join("lib/modules"));
    let _ = fs::remove_dir_all(stage.join("usr/lib/modules"));
    let up = k.packages[0].version.split(['-', '+', '~']).next().unwrap();
    let headers_ver = format!("{up}.arch1-1");
    let headers_key = probeforge::base::sha256(
        k.packages
            .iter()
            .map(|p| p.sha256.as_str())
            .collect::<String>()
            .as_bytes(),
    );
    let scratch = t.path().join("scratch");
    let headers_file = format!("linux-headers-{headers_ver}-x86_64.pkg.tar.zst");
    let headers = cached_package(&core, &scratch, &headers_key, &headers_file, |out| {
        arch_package_with(
            out,
            &stage,
            "linux-headers",
            "linux",
            &headers_ver,
            None,
            &[],
        )
    });
    let _ = fs::remove_dir_all(&stage);

    // (b) Its compiler's closure as the library reads it from forky's indexes, each Debian
    // package remade as a pacman package with its Debian dependencies inside the closure.
    let compilers = IndexCompilers::new(lister(), true);
    let m = compilers
        .resolve(&want, Arch::X86_64, "debian-forky", &tools)
        .unwrap_or_else(|e| panic!("{}: {e}", want.text));
    let index = lister()
        .apt_index("debian-forky", Arch::X86_64, |_| true)
        .unwrap();
    let names: Vec<&str> = m.packages.iter().map(|p| p.name.as_str()).collect();
    let n = net();
    let mut packages = vec![headers];
    let mut gcc_file = String::new();
    for p in &m.packages {
        let debian = index
            .iter()
            .map(|(_, d)| d)
            .find(|d| d.name == p.name && d.version == p.version)
            .unwrap_or_else(|| panic!("{} {} in forky's index", p.name, p.version));
        let depends: Vec<String> = debian
            .depends
            .split(',')
            .filter_map(|group| {
                group.split('|').find_map(|alt| {
                    let (name, c) = apt::parse_depends(alt).into_iter().next()?;
                    let name = name.split(':').next().unwrap().to_owned();
                    if !names.contains(&name.as_str()) {
                        return None;
                    }
                    // An exact pairing keeps its version (pacman's `=`); others only the name.
                    Some(match c {
                        Some((op, v)) if op == "=" => format!("{name}={}", pacman_version(&v)),
                        _ => name,
                    })
                })
            })
            .collect();
        let ver = pacman_version(&p.version);
        let file = format!("{}-{ver}-x86_64.pkg.tar.zst", p.name);
        if p.name.starts_with("gcc-") && p.name.ends_with("-x86-64-linux-gnu") {
            gcc_file = file.clone();
        }
        let key = probeforge::base::sha256(format!("{}{ver}{depends:?}", p.sha256).as_bytes());
        packages.push(cached_package(&core, &scratch, &key, &file, |out| {
            let base = n.mirrors.resolve(&n.catalog, &p.mirror).unwrap();
            let (deb, _) = n
                .client
                .fetch_verified(&format!("{base}/{}", p.filename), &p.sha256, Some(p.size))
                .unwrap();
            let root = scratch.join(format!("root-{}", p.name));
            unpack_deb(&deb, &root);
            arch_package_with(out, &root, &p.name, &p.name, &ver, None, &depends)
        }));
    }
    assert!(!gcc_file.is_empty(), "no gcc package in {names:?}");
    repo_add(&core, "core", "gz", &packages);
    let signer = test_key(t.path(), "arch-db");
    for db in ["core.db", "core.files"] {
        signer.detach(
            &core.join(format!("{db}.tar.gz")),
            &core.join(format!("{db}.tar.gz.sig")),
            false,
        );
        std::os::unix::fs::symlink(format!("{db}.tar.gz.sig"), core.join(format!("{db}.sig")))
            .unwrap();
    }

    let server = Server::start(srv.clone());
    let mirror = format!("arch={}", server.base);
    let keyring = signer.public.to_str().unwrap().to_owned();
    let src = drivers::scap_dkms_0_23_2();
    let out = t.path().join("out");
    let build = |cache: &Path, extra: &[&str]| {
        let mut a = vec!["--mirror", mirror.as_str(), "--keyring", keyring.as_str()];
        a.extend_from_slice(extra);
        a.extend([
            "build",
            "--target",
            "arch",
            "--kernel",
            k.release.as_str(),
            "--driver",
            "kmod",
            "--driver-source",
            src.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]);
        cli(&a, cache)
    };
    let cache = t.path().join("cache");
    let (code, stdout, err) = build(&cache, &[]);
    assert_eq!(code, 0, "{err}\n{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let compiler = v["compiler"].as_str().unwrap_or_default();
    assert!(
        compiler.starts_with("resolved gcc-") && compiler.ends_with("@arch"),
        "the compiler came from arch's database: {v:#}"
    );
    assert_eq!(v["compiler_text"], want.text.as_str(), "{v:#}");
    assert!(v["symbols_checked"].as_u64().unwrap() > 1000, "{v:#}");
    assert!(server
        .hits(&format!("/core/os/x86_64/{gcc_file}"))
        .contains(&200));
    assert!(server.hits("/core/os/x86_64/core.files.sig").contains(&200));

    let gcc_name = m
        .packages
        .iter()
        .find(|p| gcc_file.starts_with(&format!("{}-", p.name)))
        .map(|p| p.name.clone())
        .unwrap();

    // Real Arch: `core.db` and `core.files` unsigned, each package with its own `.sig` (made
    // after `repo-add`, so the databases carry no %PGPSIG%): the kernel and its compiler are
    // trusted package by package.
    let aside = t.path().join("db-sigs");
    fs::create_dir_all(&aside).unwrap();
    for db in ["core.db", "core.files"] {
        for sig in [format!("{db}.sig"), format!("{db}.tar.gz.sig")] {
            fs::rename(core.join(&sig), aside.join(&sig)).unwrap();
        }
    }
    for p in &packages {
        let mut sig = p.clone().into_os_string();
        sig.push(".sig");
        signer.detach(p, Path::new(&sig), false);
    }
    let (code, stdout, err) = build(&t.path().join("cache-unsigned-db"), &[]);
    assert_eq!(code, 0, "{err}\n{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        v["compiler"]
            .as_str()
            .unwrap_or_default()
            .ends_with("@arch"),
        "{v:#}"
    );
    assert!(v["symbols_checked"].as_u64().unwrap() > 1000, "{v:#}");
    assert!(server
        .hits(&format!("/core/os/x86_64/{gcc_file}.sig"))
        .contains(&200));
    assert!(server.hits("/core/os/x86_64/core.files.sig").contains(&404));

    // One compiler package without its own signature, then signed by another key: refused
    // before anything is unpacked, naming it.
    let gcc_sig = core.join(format!("{gcc_file}.sig"));
    fs::rename(&gcc_sig, t.path().join("gcc.sig")).unwrap();
    let (code, stdout, err) = build(&t.path().join("cache-gcc-unsigned"), &[]);
    assert_eq!(code, 1, "{err}\n{stdout}");
    assert!(
        err.contains(&format!("package `{gcc_name}` is refused"))
            && err.contains(&format!("`{gcc_file}`"))
            && err.contains("is not signed"),
        "{err}"
    );
    let other = test_key(t.path(), "not-arch");
    other.detach(&core.join(&gcc_file), &gcc_sig, false);
    let (code, stdout, err) = build(&t.path().join("cache-gcc-other-key"), &[]);
    assert_eq!(code, 1, "{err}\n{stdout}");
    assert!(
        err.contains(&format!("package `{gcc_name}` is refused"))
            && err.contains("no valid signature by a trusted key"),
        "{err}"
    );
    fs::rename(t.path().join("gcc.sig"), &gcc_sig).unwrap();
    for db in ["core.db", "core.files"] {
        for sig in [format!("{db}.sig"), format!("{db}.tar.gz.sig")] {
            fs::rename(aside.join(&sig), core.join(&sig)).unwrap();
        }
    }

    // A gcc package whose bytes differ from the signed database's sha256 is refused, naming it.
    server.fault(&format!("/core/os/x86_64/{gcc_file}"), Fault::Corrupt);
    let (code, stdout, err) = build(&t.path().join("cache-tampered"), &[]);
    assert_eq!(code, 1, "{err}\n{stdout}");
    assert!(
        err.contains(&format!("package `{gcc_name}`")) && err.contains("sha256"),
        "{err}"
    );
}
