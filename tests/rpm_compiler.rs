//! A Rocky-layout repository on loopback, signed by a key made here, serving a kernel's
//! `kernel-devel` and that kernel's own compiler as RPMs: the module is built with the compiler
//! found in the target's own signed primary index (`.../bin/<program>` at the text's
//! version-release, its requires followed to provides, sonames included), fetched by the
//! index's digests, unpacked without root, and validated against the kernel's Module.symvers.
//!
//! The kernel is Debian forky's (its gcc is newer than any pinned here and than the host's);
//! its compiler's RPMs are made by rpmbuild around the real Debian packages of its closure
//! (read from debian-forky's own signed indexes by the library), each requiring the others by
//! name and providing the sonames it ships, as rpm's own generators would.

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::gpg::test_key;
use common::rpm::{one_tree_with_kbuild, rename_kernel, yum_repo};
use common::server::Server;
use common::{bin, cache_dir, lister, net, sha256_file, tmpdir};
use probeforge::kernel::Arch;
use probeforge::kmod::{gcc, kbuild, resolve, GccManifest, KernelCompiler};
use probeforge::repo::KernelRecord;

/// The newest plain amd64 kernel of forky's own suite, with its whole set (headers, `-common`,
/// `linux-kbuild-*`), downloaded.
fn forky_kernel() -> (KernelRecord, Vec<PathBuf>) {
    let mut all: Vec<KernelRecord> = lister()
        .list("debian-forky", &[Arch::X86_64])
        .unwrap_or_else(|e| panic!("listing debian-forky: {e:#?}"))
        .into_iter()
        .filter(|k| {
            k.origin == "forky"
                && k.release.strip_suffix("-amd64").is_some_and(|rest| {
                    let last = rest.rsplit('-').next().unwrap_or(rest);
                    last.bytes().all(|b| b.is_ascii_digit()) || last.contains('+')
                })
        })
        .collect();
    all.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
    });
    for k in all {
        let k = lister()
            .with_host_kbuild(&k, Arch::X86_64)
            .unwrap_or_else(|e| panic!("{}: {e}", k.release));
        match lister().fetch(&k) {
            Ok(files) => return (k, files),
            Err(probeforge::repo::Error::Unavailable { .. }) => continue,
            Err(e) => panic!("fetch {}: {e:#?}", k.release),
        }
    }
    panic!("no amd64 kernel of debian-forky can be downloaded completely")
}

/// A Debian package's control fields.
fn control(deb: &Path, field: &str) -> String {
    let o = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(deb)
        .arg(field)
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// `epoch:version-revision` as RPM's (epoch, version, release).
fn rpm_evr(debian: &str) -> (Option<&str>, &str, &str) {
    let (epoch, rest) = match debian.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, debian),
    };
    match rest.rsplit_once('-') {
        Some((v, r)) => (epoch, v, r),
        None => (epoch, rest, "0"),
    }
}

/// One Debian package of the compiler's closure as an RPM: its files, `Requires:` each other
/// closure package its `Depends`/`Pre-Depends` name, and `Provides:` each shared library's
/// soname it ships. Built once per input (the .deb's digest and this recipe), cached.
fn rpm_of_deb(t: &Path, deb: &Path, closure: &BTreeSet<String>) -> (PathBuf, f64) {
    const RECIPE: &str = "v1";
    let key =
        probeforge::base::sha256(format!("{}{RECIPE}{closure:?}", sha256_file(deb)).as_bytes());
    let name = control(deb, "Package");
    let (epoch, version, release) = {
        let v = control(deb, "Version");
        let (e, v, r) = rpm_evr(&v);
        (e.map(str::to_owned), v.to_owned(), r.to_owned())
    };
    let file = format!("{name}-{version}-{release}.x86_64.rpm");
    let cached = cache_dir()
        .join("rpm-compiler")
        .join(&key[..16])
        .join(&file);
    if cached.is_file() {
        return (cached, 0.0);
    }
    let started = std::time::Instant::now();
    let root = t.join(format!("deb-{name}"));
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&root)
        .status()
        .unwrap()
        .success());
    let mut preamble = Vec::new();
    if let Some(e) = &epoch {
        preamble.push(format!("Epoch: {e}"));
    }
    let depends = [control(deb, "Depends"), control(deb, "Pre-Depends")].join(",");
    let needs: BTreeSet<String> = depends
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .map(|n| n.split(':').next().unwrap().to_owned())
        .filter(|n| closure.contains(n) && *n != name)
        .collect();
    preamble.extend(needs.iter().map(|n| format!("Requires: {n}")));
    let sonames: BTreeSet<String> = walkdir::WalkDir::new(&root)
        .into_iter()
        .flatten()
        .filter(|e| {
            e.path()
                .components()
                .any(|c| c.as_os_str() == "lib" || c.as_os_str() == "lib64")
        })
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with("lib") && n.contains(".so."))
        .filter(|n| {
            // The soname: `libc.so.6`, `libcrypto.so.3`, `libelf.so.1` (not the full version).
            let after = n.split(".so.").nth(1).unwrap_or("");
            !after.is_empty() && after.bytes().all(|b| b.is_ascii_digit())
        })
        .map(|n| format!("Provides: {n}()(64bit)"))
        .collect();
    preamble.extend(sonames);
    let trees: Vec<(PathBuf, String)> = fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "DEBIAN")
        .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
        .collect();
    let built = rpmbuild_plain(t, &name, &version, &release, &trees, &preamble);
    let dest = cached.parent().unwrap();
    fs::create_dir_all(dest).unwrap();
    let tmp = dest.join(format!(".{file}.{}", std::process::id()));
    fs::copy(&built, &tmp).unwrap();
    fs::rename(&tmp, &cached).unwrap();
    (cached, started.elapsed().as_secs_f64())
}

/// rpmbuild with an uncompressed payload (packing hundreds of MB of compiler stays fast).
fn rpmbuild_plain(
    t: &Path,
    name: &str,
    version: &str,
    release: &str,
    trees: &[(PathBuf, String)],
    preamble: &[String],
) -> PathBuf {
    let top = t.join(format!("rpmbuild-{name}"));
    fs::create_dir_all(top.join("SPECS")).unwrap();
    let mut install = String::new();
    let mut files = String::new();
    for (dir, dest) in trees {
        install += &format!("cp -a {} %{{buildroot}}/{dest}\n", dir.display());
        files += &format!("/{dest}\n");
    }
    let spec = top.join(format!("SPECS/{name}.spec"));
    fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: a Debian package \
             as an RPM (probeforge tests)\nLicense: GPL-3.0\nAutoReqProv: no\n{}\n\
             %global debug_package %{{nil}}\n%define __os_install_post %{{nil}}\n\
             %define _build_id_links none\n%define _binary_payload w0.ufdio\n\
             %description\ntest package\n%install\nmkdir -p %{{buildroot}}\n{install}\
             %files\n{files}",
            preamble.join("\n")
        ),
    )
    .unwrap();
    let out = Command::new("rpmbuild")
        .arg("-bb")
        .arg(&spec)
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--target")
        .arg("x86_64")
        .env("HOME", t)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpmbuild {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    walkdir::WalkDir::new(top.join("RPMS"))
        .into_iter()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "rpm"))
        .unwrap()
        .path()
        .to_owned()
}

/// The forky kernel as Rocky packages it: one `kernel-devel` tree under
/// `/usr/src/kernels/<uname -r>` (srctree, objtree and kbuild's programs together), renamed to
/// a Rocky-style release.
fn kernel_devel(t: &Path, staged: &Path, uts: &str, version: &str, release: &str) -> PathBuf {
    let tree = t.join("tree");
    one_tree_with_kbuild(staged, &tree);
    rename_kernel(&tree, uts, None, None);
    let dest = t.join("kd/usr/src/kernels");
    fs::create_dir_all(&dest).unwrap();
    fs::rename(&tree, dest.join(uts)).unwrap();
    rpmbuild_plain(
        t,
        "kernel-devel",
        version,
        release,
        &[(t.join("kd/usr"), "usr".into())],
        &[],
    )
}

/// [`kernel_devel`], built once per kernel set and name, cached.
fn kernel_devel_cached(
    t: &Path,
    files: &[PathBuf],
    staged: &Path,
    uts: &str,
    version: &str,
    release: &str,
) -> PathBuf {
    let inputs: String = files.iter().map(|f| sha256_file(f)).collect();
    let key = probeforge::base::sha256(format!("{inputs}{uts}kernel-devel-v1").as_bytes());
    let file = format!("kernel-devel-{version}-{release}.x86_64.rpm");
    let cached = cache_dir()
        .join("rpm-compiler")
        .join(&key[..16])
        .join(&file);
    if !cached.is_file() {
        let built = kernel_devel(t, staged, uts, version, release);
        let dir = cached.parent().unwrap();
        fs::create_dir_all(dir).unwrap();
        let tmp = dir.join(format!(".{file}.{}", std::process::id()));
        fs::copy(&built, &tmp).unwrap();
        fs::rename(&tmp, &cached).unwrap();
    }
    cached
}

fn probeforge(args: &[String]) -> (i32, String, String) {
    let o = Command::new(bin()).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn rocky_serves_its_kernels_compiler_and_the_module_is_built_with_it() {
    let t = tmpdir();
    let (_, files) = forky_kernel();
    let staged = t.path().join("staged");
    let tree = kbuild::stage_kernel(&files, &staged).expect("stage forky");
    let want = KernelCompiler::of(&tree).unwrap();
    // Nothing pinned says it, nor this host.
    assert!(
        gcc::choose(&want, Arch::X86_64, &GccManifest::embedded()).is_err(),
        "{want:?}"
    );

    // Its closure from forky's own signed indexes, fetched by digest.
    let started = std::time::Instant::now();
    let found = resolve::IndexCompilers::new(lister(), true)
        .resolve(
            &want,
            Arch::X86_64,
            "debian-forky",
            &resolve::kbuild_tools(&tree),
        )
        .unwrap_or_else(|e| panic!("{e:#?}"));
    let debian_resolve = started.elapsed().as_secs_f64();
    let n = net();
    let names: BTreeSet<String> = found.packages.iter().map(|p| p.name.clone()).collect();
    let started = std::time::Instant::now();
    let mut built = 0.0;
    let mut rpms = Vec::new();
    for p in &found.packages {
        let base = n.mirrors.resolve(&n.catalog, &p.mirror).unwrap();
        let (deb, _) = n
            .client
            .fetch_verified(&format!("{base}/{}", p.filename), &p.sha256, Some(p.size))
            .unwrap_or_else(|e| panic!("{}: {e:#?}", p.name));
        let (rpm, secs) = rpm_of_deb(t.path(), &deb, &names);
        built += secs;
        rpms.push((p.name.clone(), rpm));
    }
    let packing = started.elapsed().as_secs_f64();

    // kernel-devel as Rocky names it.
    let upstream = tree.release.split(['-', '+']).next().unwrap().to_owned();
    let (version, release) = (upstream.as_str(), "503.15.1.el9_5");
    let uts = format!("{version}-{release}.x86_64");
    let started = std::time::Instant::now();
    let kd = kernel_devel_cached(t.path(), &files, &staged, &uts, version, release);
    let kd_secs = started.elapsed().as_secs_f64();

    let key = test_key(t.path(), "rocky");
    let srv = t.path().join("srv");
    let server = Server::start(srv.clone());
    let os = srv.join("9/BaseOS/x86_64/os");
    let mut served: Vec<(&Path, &str)> = vec![(kd.as_path(), "Packages/k")];
    served.extend(rpms.iter().map(|(_, r)| (r.as_path(), "Packages/g")));
    yum_repo(&os, &served, &[], Some(&key));

    let dkms = drivers::scap_dkms_0_23_2();
    let run = |cache: &str, repo: &str| {
        let mut a: Vec<String> = vec![
            "--mirror".into(),
            format!("rocky={}", server.base),
            "--cache-dir".into(),
            t.path().join(cache).display().to_string(),
            "--keyring".into(),
            key.public.display().to_string(),
            "build-all".into(),
            "rocky-9".into(),
            "--arch".into(),
            "x86_64".into(),
            "--driver".into(),
            "kmod".into(),
            "--repo".into(),
            t.path().join(repo).display().to_string(),
            "--driver-source".into(),
            dkms.display().to_string(),
            "--driver-version".into(),
            "9.1.0+driver".into(),
            "--json".into(),
        ];
        a.retain(|s| !s.is_empty());
        let started = std::time::Instant::now();
        let r = probeforge(&a);
        (r, started.elapsed().as_secs_f64())
    };

    // A gcc package whose bytes are not what the signed index lists is refused, naming it.
    let driver_pkg = rpms
        .iter()
        .find(|(n, _)| n.starts_with("gcc-") && n.ends_with("-x86-64-linux-gnu"))
        .map(|(n, r)| (n.clone(), r.clone()))
        .expect("the split gcc package");
    let served_gcc = os
        .join("Packages/g")
        .join(driver_pkg.1.file_name().unwrap());
    let good = fs::read(&served_gcc).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    fs::write(&served_gcc, &bad).unwrap();
    let ((code, out, err), refused_secs) = run("c-bad", "r-bad");
    assert_eq!(code, 1, "{out}\n{err}");
    // Named as the package whose download does not have the digest the signed index lists.
    let said = format!("{out}{err}");
    assert!(
        said.contains(&format!("package `{}`", driver_pkg.0))
            && said.contains(&format!("expected {}", sha256_file(&driver_pkg.1))),
        "the refusal names `{}` and its listed digest: {out}\n{err}",
        driver_pkg.0
    );
    fs::write(&served_gcc, &good).unwrap();

    let ((code, out, err), module_secs) = run("c", "r");
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        (v["built"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(0)),
        "{v:#}"
    );
    // The published record says the compiler came from rocky-9's indexes.
    let records: String = walkdir::WalkDir::new(t.path().join("r"))
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .collect();
    let program = KernelCompiler::program(&want).to_owned();
    assert!(
        records.contains(&format!("resolved {}", driver_pkg.0)) && records.contains("@rocky-9"),
        "the module's toolchain names `{}` from rocky-9 ({program}): {records}",
        driver_pkg.0
    );
    // The module is there, for this kernel.
    let ko: Vec<PathBuf> = walkdir::WalkDir::new(t.path().join("r"))
        .into_iter()
        .flatten()
        .map(|e| e.path().to_owned())
        .filter(|p| p.to_string_lossy().ends_with(".ko"))
        .collect();
    assert_eq!(ko.len(), 1, "{ko:?} {v:#}");
    assert!(ko[0].to_string_lossy().contains(&uts), "{ko:?}");
    eprintln!(
        "figures: debian-forky resolve {debian_resolve:.1}s, {} RPMs packed in {packing:.1}s \
         (rpmbuild {built:.1}s), kernel-devel {kd_secs:.1}s, refused build-all \
         {refused_secs:.1}s, build-all (rocky-9 resolve + fetch + module) {module_secs:.1}s",
        rpms.len()
    );
}
