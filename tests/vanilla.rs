//! Kernels from their source: Debian's own `linux-source-6.1` tarball and the `.config` of
//! the matching `linux-image` package (both picked from the live bookworm index at run time).
//! The tarball is served on loopback as kernel.org serves a release (its signed sums) and
//! built with `--target vanilla`; the tree is prepared by `make olddefconfig modules_prepare`
//! with the release set as `uname -r` says it, a probe built from it, the same tarball given as
//! a file takes the tree from the cache, and the probe is loaded and capturing in that
//! kernel's VM. The module is built in the same tree (its imports' CRCs computed there, equal to
//! those of Debian's own headers), and loads and captures in that kernel too. Then the same source as a Flatcar release (its release server on loopback,
//! the config its release folder serves) through `build-all`: listed, prepared by the farm,
//! published under Falco's Flatcar name.

mod common;

use std::fs;

use common::*;
use probeforge::kernel::Arch;

/// The version of a plain 6.1 amd64 kernel's own headers package (not cloud, not rt).
fn plain_headers_version(k: &probeforge::repo::KernelRecord) -> Option<&str> {
    let plain = k.release.ends_with("-amd64")
        && k.release.starts_with("6.1.")
        && !k.release.contains("-cloud-")
        && !k.release.contains("-rt-");
    let own = format!("linux-headers-{}", k.release);
    plain
        .then(|| k.packages.iter().find(|p| p.name == own))
        .flatten()
        .map(|p| p.version.as_str())
}

#[test]
fn a_probe_from_debians_kernel_source_loads_in_that_kernel() {
    let source = lister()
        .find_package("debian-bookworm", Arch::X86_64, "linux-source-6.1")
        .expect("linux-source-6.1 in bookworm");
    // The kernel built from that very source version: its headers carry the same version.
    let kernels = lister()
        .list("debian-bookworm", &[Arch::X86_64])
        .expect("list bookworm");
    let k = kernels
        .iter()
        .find(|k| plain_headers_version(k) == Some(source.version.as_str()))
        .unwrap_or_else(|| {
            panic!(
                "no bookworm amd64 kernel of linux-source {}",
                source.version
            )
        });
    let image = debian_package(
        "debian-bookworm",
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", k.release),
    );
    let source_version = source.version.clone();
    let source_deb = net()
        .client
        .fetch_verified(&source.url, &source.sha256, Some(source.size))
        .expect("linux-source")
        .0;
    let t = tmpdir();
    // The tarball inside Debian's package (dpkg-deb, the reference unpacker), served as
    // kernel.org serves a release: `v6.x/linux-<upstream>.tar.xz`, listed in a clear-signed
    // `sha256sums.asc` (signed here by a test key: kernel.org's is not shipped).
    let deb = t.path().join("deb");
    let ok = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&source_deb)
        .arg(&deb)
        .status()
        .unwrap()
        .success();
    assert!(ok, "dpkg-deb -x {}", source_deb.display());
    let tarball = fs::read_dir(deb.join("usr/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .expect("usr/src/linux-source-*.tar.xz");
    let upstream = source_version.split('-').next().unwrap().to_owned();
    let key = common::gpg::test_key(t.path(), "kernel-org");
    let www = t.path().join("www/v6.x");
    fs::create_dir_all(&www).unwrap();
    fs::rename(&tarball, www.join(format!("linux-{upstream}.tar.xz"))).unwrap();
    let source = www.join(format!("linux-{upstream}.tar.xz"));
    fs::write(
        www.join("sha256sums"),
        format!("{}  linux-{upstream}.tar.xz\n", sha256_file(&source)),
    )
    .unwrap();
    key.clearsign(&www.join("sha256sums"), &www.join("sha256sums.asc"));
    let server = common::server::Server::start(t.path().join("www"));
    // Its own cache for the tree (1.4 GB, prepared once, then taken from the cache); the
    // packages and the driver from the test cache.
    let cache = fresh_cache(&t.path().join("cache"));
    let out = t.path().join("out");
    let build = |how: &[&str]| {
        let o = std::process::Command::new(bin())
            .args(["--mirror", &format!("kernel-org={}", server.base)])
            .arg("--keyring")
            .arg(&key.public)
            .arg("build")
            .args(how)
            .arg("--kernel-config")
            .arg(&image)
            .args(["--target-id", "debian", "--kernel-version", "1", "-o"])
            .arg(&out)
            .args(driver_8_args())
            .env("PROBEFORGE_CACHE", &cache)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // `--target vanilla`: the source from the kernel.org layout, checked against its sums;
    // the release `uname -r` says of Debian's build of it.
    let (code, err) = build(&[
        "--target",
        "vanilla",
        "--kernel",
        &upstream,
        "--kernel-release",
        &k.release,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("kernel tree of {} prepared", k.release)),
        "{err}"
    );
    assert_eq!(
        server.hits(&format!("/v6.x/linux-{upstream}.tar.xz")),
        [200]
    );
    // One probe, named by the prepared tree (which states no `uname -v`: its uname -r).
    let probe = out.join(probeforge::pipeline::probe_file_name(
        "debian",
        &probeforge::loader::file_release("debian", &k.release, None),
        "1",
    ));
    let first = sha256_file(&probe);
    // The same tarball as a file (`--kernel-source`): the same tree, from the cache, and the
    // same bytes.
    fs::remove_file(&probe).unwrap();
    let (code, err) = build(&["--kernel-source", source.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("from the cache"), "{err}");
    assert_eq!(sha256_file(&probe), first);
    // The proof: the probe in the kernel Debian built from that source.
    let (code, stdout, stderr) = run(&[
        "verify".to_owned(),
        probe.display().to_string(),
        "--target".into(),
        "debian-bookworm".into(),
        "--driver-source".into(),
        libs_0_20_0().display().to_string(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("programs loaded"), "{stdout}");
    assert!(stdout.contains("workload events decoded"), "{stdout}");

    // The module, built in the same prepared tree (from the cache) with the compiler that
    // prepared it. The tree has no Module.symvers: the CRCs of the module's imports are
    // computed in it. The oracle is Debian's own build of this very source and config: its
    // headers' Module.symvers must give every CRC in the module's `__versions` as is, and its
    // vermagic must be the kernel's.
    let kmod_out = t.path().join("kmod");
    let started = std::time::Instant::now();
    let o = module_from_source(&source, &image, &k.release, &kmod_out, &cache);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    eprintln!(
        "module from source: {:.1} s\n{err}",
        started.elapsed().as_secs_f64()
    );
    assert!(err.contains("from the cache"), "{err}");
    assert!(err.contains("imported symbols computed from"), "{err}");
    let ko = kmod_out.join(probeforge::kmod::module_file_name(
        "debian", &k.release, "1",
    ));
    let bytes = fs::read(&ko).unwrap();
    let debian = lister().fetch(k).expect("the kernel's Debian headers");
    let tree = probeforge::kmod::kbuild::stage_kernel(&debian, &t.path().join("debian-headers"))
        .expect("Debian's headers");
    let debian_symvers = probeforge::kmod::Symvers::parse(
        &fs::read_to_string(tree.objtree.join("Module.symvers")).unwrap(),
    );
    let report = probeforge::kmod::validate(&bytes, &tree, &debian_symvers)
        .unwrap_or_else(|e| panic!("the module against Debian's own Module.symvers: {e}"));
    // Every import, and modpost's `module_layout`, versioned with Debian's CRC.
    assert!(report.imports > 50, "{report:?}");
    assert_eq!(report.crcs_checked, report.imports + 1, "{report:?}");
    // And it loads and captures in the kernel Debian built from that source.
    let (code, stdout, stderr) = run(&[
        "verify".to_owned(),
        "--json".into(),
        "--kernel-image".into(),
        image.display().to_string(),
        "--driver-source".into(),
        libs_0_20_0().display().to_string(),
        ko.display().to_string(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["booted_release"], k.release.as_str(), "{v}");
    let r = &v["reports"][0];
    assert_eq!(r["kind"], "kmod", "{r}");
    let j = probeforge::verify::judge(r);
    assert!(j.ok, "the module from source in its kernel: {}", j.line);

    // The config of another kernel than the source's: refused, both versions named.
    let other = kernels
        .iter()
        .find(|o| {
            plain_headers_version(o)
                .is_some_and(|v| v != k.packages[0].version && v != source_version)
        })
        .expect("an older bookworm kernel");
    let other_image = debian_package(
        "debian-bookworm",
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", other.release),
    );
    // Debian's source package with another kernel's image package: one build's packages carry
    // one version, so these two are not one kernel.
    let o = std::process::Command::new(bin())
        .args(["build", "--kernel-source"])
        .arg(&source_deb)
        .arg("--kernel-config")
        .arg(&other_image)
        .args(["--target-id", "debian", "--kernel-version", "1", "-o"])
        .arg(t.path().join("mismatch"))
        .args(driver_8_args())
        .env("PROBEFORGE_CACHE", &cache)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&source_version)
            && err.contains("the source of one kernel and the config of another"),
        "{err}"
    );
    assert!(!t.path().join("mismatch").exists());
    // A config that is no config is named.
    let junk = t.path().join("config");
    fs::write(&junk, "not a kernel config\n").unwrap();
    let o = std::process::Command::new(bin())
        .args(["build", "--kernel-source"])
        .arg(&source)
        .arg("--kernel-config")
        .arg(&junk)
        .args(["--kernel-release", &k.release, "-o"])
        .arg(&out)
        .args(driver_8_args())
        .env("PROBEFORGE_CACHE", &cache)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(junk.to_str().unwrap()), "{err}");

    // Flatcar, the nightly's way: its release server (one channel on loopback, laid out as
    // Flatcar's: a directory index, the release's `flatcar_production_image_kernel_config.txt`,
    // here this kernel's config). build-all lists it, takes the source from the kernel.org
    // mirror (checked against its signed sums), prepares the tree once (the farm's path) with
    // `uname -r` `<version>-flatcar`, and publishes the probe under Falco's name, the Flatcar
    // release; a second run builds nothing.
    let config = probeforge::vanilla::read_config(&image, Some(&k.release), t.path())
        .unwrap()
        .bytes;
    let header = format!("# Linux/x86 {upstream} Kernel Configuration");
    assert!(
        String::from_utf8_lossy(&config).contains(&header),
        "the image's config names its kernel version"
    );
    let flatcar = t.path().join("www/stable/amd64-usr");
    fs::create_dir_all(flatcar.join("4081.2.0")).unwrap();
    fs::write(
        flatcar.join("4081.2.0/flatcar_production_image_kernel_config.txt"),
        &config,
    )
    .unwrap();
    // The test server answers a folder with its `index.xml`.
    fs::write(
        flatcar.join("index.xml"),
        "<html><body><pre><a href=\"../\">../</a>\n<a href=\"./4081.2.0/\">4081.2.0/</a>\n<a href=\"./current/\">current/</a>\n</pre></body></html>\n",
    )
    .unwrap();
    let repo = t.path().join("repo");
    let build_all = || {
        let o = std::process::Command::new(bin())
            .args(["--mirror", &format!("kernel-org={}", server.base)])
            .args(["--mirror", &format!("flatcar={}/{{channel}}", server.base)])
            .arg("--keyring")
            .arg(&key.public)
            .args(["--allow-unsigned", "build-all", "flatcar", "--repo"])
            .arg(&repo)
            .args(["--arch", "x86_64", "--json"])
            .args(driver_8_args())
            .env("PROBEFORGE_CACHE", &cache)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, stdout, err) = build_all();
    assert_eq!(code, 0, "{stdout}\n{err}");
    let flatcar_probe = repo.join("8.0.0+driver/x86_64/falco_flatcar_4081.2.0_1.o");
    assert!(flatcar_probe.is_file(), "{stdout}\n{err}");
    let (code, stdout, err) = run(&[
        "validate".to_owned(),
        flatcar_probe.display().to_string(),
        "--kernel-release".into(),
        format!("{upstream}-flatcar"),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let (code, stdout, err) = build_all();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["built"], 0, "{v:#}");
}

/// The first line of this host's `clang --version` (Debian's: `Debian clang version 14.0.6`).
fn host_clang_text() -> String {
    let o = std::process::Command::new("clang")
        .arg("--version")
        .output()
        .expect("clang (.ci/setup)");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

/// Debian's 6.1 source with Debian's own config made a clang-built kernel's (its compiler
/// lines say this host's clang, as `make LLVM=1 olddefconfig` makes them): the tree is prepared
/// with `LLVM=1` and that clang, and the module is built in it with `LLVM=1`, the CRCs of its
/// imports computed there, and validated against the tree (vermagic, CRCs). The module says
/// what compiled and linked it: clang and LLD of that version, not gcc and GNU ld.
#[test]
fn a_clang_built_kernels_source_gets_a_module_built_with_llvm() {
    let clang = host_clang_text();
    let version = clang
        .split("clang version ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .expect("a clang version")
        .to_owned();
    let source = lister()
        .find_package("debian-bookworm", Arch::X86_64, "linux-source-6.1")
        .expect("linux-source-6.1 in bookworm");
    let kernels = lister()
        .list("debian-bookworm", &[Arch::X86_64])
        .expect("list bookworm");
    let k = kernels
        .iter()
        .find(|k| plain_headers_version(k) == Some(source.version.as_str()))
        .expect("the bookworm amd64 kernel of linux-source");
    let image = debian_package(
        "debian-bookworm",
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", k.release),
    );
    let source_deb = net()
        .client
        .fetch_verified(&source.url, &source.sha256, Some(source.size))
        .expect("linux-source")
        .0;
    let t = tmpdir();
    let debian = probeforge::vanilla::read_config(&image, Some(&k.release), t.path())
        .expect("Debian's config");
    let debian = String::from_utf8(debian.bytes).unwrap();
    assert!(debian.contains("CONFIG_CC_IS_GCC=y"));
    // The compiler lines as clang's olddefconfig writes them; the rest is Debian's.
    let mut config: String = debian
        .lines()
        .map(|l| match l {
            l if l.starts_with("CONFIG_CC_VERSION_TEXT=") => {
                format!("CONFIG_CC_VERSION_TEXT=\"{clang}\"")
            }
            "CONFIG_CC_IS_GCC=y" => "# CONFIG_CC_IS_GCC is not set".into(),
            l if l.starts_with("CONFIG_GCC_VERSION=") => "CONFIG_GCC_VERSION=0".into(),
            "# CONFIG_CC_IS_CLANG is not set" => "CONFIG_CC_IS_CLANG=y".into(),
            l => l.to_owned(),
        })
        .map(|l| l + "\n")
        .collect();
    // (A symbol without a prompt that is off is not written at all.)
    if !config.contains("CONFIG_CC_IS_CLANG=y") {
        config.push_str("CONFIG_CC_IS_CLANG=y\n");
    }
    let config_path = t.path().join(format!("config-{}", k.release));
    fs::write(&config_path, &config).unwrap();
    let cache = fresh_cache(&t.path().join("cache"));
    let out = t.path().join("out");
    let started = std::time::Instant::now();
    let o = module_from_source(&source_deb, &config_path, &k.release, &out, &cache);
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!(
        "clang tree and module: {:.1} s\n{err}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("imported symbols computed from"), "{err}");
    // The prepared tree is a clang kernel's: its config names the host clang.
    let trees = cache.join("kernel-trees");
    let tree_dir = fs::read_dir(&trees)
        .unwrap()
        .map(|e| e.unwrap().path().join("tree"))
        .find(|p| p.is_dir())
        .expect("a prepared tree");
    let prepared = fs::read_to_string(tree_dir.join(".config")).unwrap();
    assert!(
        prepared.contains("CONFIG_CC_IS_CLANG=y"),
        "not a clang tree"
    );
    assert!(
        prepared.contains(&format!("CONFIG_CC_VERSION_TEXT=\"{clang}\"")),
        "the prepared tree names another compiler"
    );
    assert!(prepared.contains("CONFIG_LD_IS_LLD=y"), "not linked by LLD");
    let v: Vec<u32> = version.split('.').map(|n| n.parse().unwrap()).collect();
    let lld = format!("CONFIG_LLD_VERSION={}", v[0] * 10000 + v[1] * 100 + v[2]);
    assert!(prepared.contains(&lld), "not LLD {version}");
    let ko = out.join(probeforge::kmod::module_file_name(
        "debian", &k.release, "1",
    ));
    let bytes = fs::read(&ko).unwrap();
    // Compiled by that clang (`.comment`), and linked by LLD: clang's objects start
    // `.comment` with an empty string, which GNU ld keeps and LLD's merge drops.
    let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(
        has(&format!("clang version {version}")),
        "not compiled by clang {version}"
    );
    use object::{Object, ObjectSection};
    let elf = object::File::parse(&*bytes).unwrap();
    let comment = elf
        .section_by_name(".comment")
        .and_then(|s| s.data().ok())
        .expect("a .comment");
    assert!(
        comment.first().is_some_and(|b| *b != 0),
        "not linked by LLD: {:?}",
        String::from_utf8_lossy(comment)
    );
    assert!(!has("GCC: ("), "gcc compiled part of it");
    // Validated against the prepared tree: its vermagic, and every import's CRC as the
    // tree computes it.
    let tree = probeforge::kernel::KernelTree::find(&tree_dir, None).unwrap();
    let symvers = probeforge::kmod::Symvers::parse(
        &fs::read_to_string(tree.objtree.join("Module.symvers")).unwrap(),
    );
    let report = probeforge::kmod::validate(&bytes, &tree, &symvers)
        .unwrap_or_else(|e| panic!("the clang module against its tree: {e}"));
    assert!(
        report.vermagic.starts_with(&format!("{} SMP", k.release)),
        "{report:?}"
    );
    assert!(report.imports > 50, "{report:?}");
    assert_eq!(report.crcs_checked, report.imports + 1, "{report:?}");
}

/// A kernel built by a clang this host does not have (COS's): refused before anything is
/// unpacked or written, naming the config, its compiler and the clang there is.
#[test]
fn a_clang_built_kernels_source_is_refused_without_its_clang() {
    let t = tmpdir();
    let config = t.path().join("config-clang");
    fs::write(
        &config,
        "# Linux/x86 6.1.0 Kernel Configuration\nCONFIG_CC_VERSION_TEXT=\"Chromium OS 17.0_pre498229-r33 clang version 17.0.0\"\nCONFIG_CC_IS_CLANG=y\nCONFIG_CLANG_VERSION=170000\nCONFIG_MODVERSIONS=y\n",
    )
    .unwrap();
    let tarball = t.path().join("linux-6.1.tar.xz");
    fs::write(&tarball, "not read: refused before").unwrap();
    let out = t.path().join("out");
    let o = std::process::Command::new(bin())
        .args(["build", "--driver", "kmod", "--kernel-source"])
        .arg(&tarball)
        .arg("--kernel-config")
        .arg(&config)
        .args(["--kernel-release", "6.1.0-clang", "--kernel-version", "1"])
        .args(["--driver-source"])
        .arg(&tarball)
        .arg("-o")
        .arg(&out)
        .env("PROBEFORGE_CACHE", t.path().join("cache"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("config-clang") && err.contains("Chromium OS 17.0_pre498229-r33"),
        "{err}"
    );
    assert!(err.contains(&host_clang_text()), "{err}");
    assert!(!out.exists());
    assert!(!t.path().join("cache/kernel-trees").exists());
}

/// `probeforge build --driver kmod` of driver 8.0.0 from a kernel source and config, as
/// Debian's kernel `release`, into `out`, with `cache`.
fn module_from_source(
    source: &std::path::Path,
    config: &std::path::Path,
    release: &str,
    out: &std::path::Path,
    cache: &std::path::Path,
) -> std::process::Output {
    std::process::Command::new(bin())
        .args(["build", "--driver", "kmod", "--kernel-source"])
        .arg(source)
        .arg("--kernel-config")
        .arg(config)
        .args(["--kernel-release", release])
        .args(["--target-id", "debian", "--kernel-version", "1", "-o"])
        .arg(out)
        .args(driver_8_args())
        .env("PROBEFORGE_CACHE", cache)
        .output()
        .unwrap()
}
