//! Falco's kernel module built by probeforge's library: real Debian kernels picked from the live
//! index, Debian's own driver sources (`falcosecurity-scap-dkms` 0.23.2 = 9.1.0+driver, and the
//! `falcosecurity-libs` 0.20.0 orig tarball = 8.0.0+driver), the kernels' own compilers pinned
//! by digest (Debian 11's gcc-10 for bullseye 5.10, Debian 12's gcc-12 for bookworm 6.1 and its
//! 6.12 backports, Debian 13's gcc-14 for trixie 6.12, and its cross gcc-14 for trixie's arm64
//! 6.12). Each module costs ~15 s of CPU, most of it the driver's configure tests (each a kbuild
//! run).

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use probeforge::kernel::{Arch, KernelTree};
use probeforge::kmod::{self, gcc, kbuild, Compiler, GccManifest, KernelCompiler, Symvers};
use probeforge::repo::KernelRecord;

/// The newest kernel of a Debian suite's own series and flavour, with its whole set (headers,
/// `-common`, `linux-kbuild-*`), downloaded.
fn debian_set(suite: &str, series: &str, flavour: &str) -> (KernelRecord, Vec<PathBuf>) {
    let security = format!("{suite}-security");
    debian_set_from(suite, &[suite, &security], series, flavour, Arch::X86_64)
}

/// The newest kernel of a series and flavour that a Debian release's target lists from the
/// given suites (`bookworm-security`, `bookworm-backports`), for `arch`, with its whole set.
fn debian_set_from(
    suite: &str,
    origins: &[&str],
    series: &str,
    flavour: &str,
    arch: Arch,
) -> (KernelRecord, Vec<PathBuf>) {
    let mut all: Vec<KernelRecord> = lister()
        .list(&format!("debian-{suite}"), &[arch])
        .unwrap_or_else(|e| panic!("listing debian-{suite}: {e:#?}"))
        .into_iter()
        .filter(|k| {
            origins.contains(&k.origin.as_str())
                && k.release.starts_with(series)
                && k.release
                    .strip_suffix(&format!("-{flavour}"))
                    .is_some_and(|rest| {
                        // `6.1.0-57` or `6.12.118+deb13`, not `6.1.0-57-cloud` for `amd64`.
                        let last = rest.rsplit('-').next().unwrap_or(rest);
                        last.bytes().all(|b| b.is_ascii_digit()) || last.contains('+')
                    })
        })
        .collect();
    all.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
    });
    for k in all {
        // kbuild's own programs run here: for an arm64 kernel, the amd64 kbuild package.
        let k = lister()
            .with_host_kbuild(&k, Arch::host().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", k.release));
        match lister().fetch(&k) {
            Ok(files) => return (k, files),
            Err(probeforge::repo::Error::Unavailable { .. }) => continue,
            Err(e) => panic!("fetch {}: {e:#?}", k.release),
        }
    }
    panic!("no {series}*-{flavour} kernel of debian-{suite} ({origins:?}) can be downloaded completely")
}

/// A kernel's set unpacked whole into `dir/root`, ready for kbuild.
fn staged(files: &[PathBuf], dir: &Path) -> KernelTree {
    kbuild::stage_kernel(files, &dir.join("root")).expect("stage kernel")
}

/// A pinned compiler, fetched by digest into the test cache, for a kernel built by `kernel`
/// (by default: by the compiler as its manifest names it).
fn pinned(name: &str, kernel: Option<&KernelCompiler>) -> Compiler {
    let m = GccManifest::embedded()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is shipped"));
    let n = net();
    let root = gcc::fetch(&m, &n.client, &n.catalog, &n.mirrors, &|_, _, _| Ok(()))
        .unwrap_or_else(|e| panic!("fetch {name}: {e:#?}"));
    let own = KernelCompiler {
        text: m.version_text.clone(),
        gcc_version: 0,
    };
    Compiler::pinned(&m, &root, kernel.unwrap_or(&own))
        .unwrap_or_else(|e| panic!("{name} runs and says its text: {e}"))
}

/// The compiler a kernel's headers name, chosen among the shipped pins (never named by the
/// test), fetched.
fn chosen(tree: &KernelTree) -> Compiler {
    let want = KernelCompiler::of(tree).unwrap();
    match gcc::choose(&want, tree.arch, &GccManifest::embedded()) {
        Ok(kmod::CompilerSource::Pinned(m)) => pinned(&m.name, Some(&want)),
        other => panic!("{}: expected a pinned compiler, got {other:?}", want.text),
    }
}

/// Debian 12's gcc-12.
fn gcc12() -> &'static Compiler {
    static C: OnceLock<Compiler> = OnceLock::new();
    C.get_or_init(|| pinned("gcc-12-debian12", None))
}

fn dkms_0_23_2(scratch: &Path) -> probeforge::driver::DriverSource {
    probeforge::driver::open(&drivers::scap_dkms_0_23_2(), scratch).expect("open dkms 0.23.2")
}

struct Built {
    _dir: tempfile::TempDir,
    record: KernelRecord,
    tree: KernelTree,
    module: kmod::Module,
    secs: f64,
}

/// 9.1.0+driver for the newest bookworm 6.1 amd64 kernel, built once for the tests below.
fn built_9_1_0() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let (record, files) = debian_set("bookworm", "6.1.", "amd64");
        let dir = tmpdir();
        let tree = staged(&files, dir.path());
        let want = KernelCompiler::of(&tree).unwrap();
        assert!(want.text.starts_with("gcc-12 "), "{}", want.text);
        let compiler = gcc12();
        let driver = dkms_0_23_2(dir.path());
        let t = std::time::Instant::now();
        let module = kmod::build(&kmod::KmodRequest {
            tree: &tree,
            driver: &driver,
            driver_version: Some("9.1.0+driver"),
            compiler,
            target_id: "debian",
            module_name: kbuild::MODULE_NAME,
            scratch: &dir.path().join("build"),
            jobs: 2,
        })
        .unwrap_or_else(|e| panic!("{e}\n{e:#?}"));
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "9.1.0+driver on {}: {} bytes in {secs:.1} s",
            tree.release,
            module.bytes.len()
        );
        Built {
            _dir: dir,
            record,
            tree,
            module,
            secs,
        }
    })
}

fn symvers(tree: &KernelTree) -> Symvers {
    Symvers::parse(&std::fs::read_to_string(tree.objtree.join("Module.symvers")).unwrap())
}

/// A shipped manifest against its spec pinned from the live index now. With
/// `PROBEFORGE_WRITE_PIN` set, (re)writes the manifest from the index first.
fn manifest_is_what_the_index_ships(spec: gcc::PinSpec) {
    let live = gcc::pin(&lister(), &spec).expect("pin from the live index");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("toolchain/{}.json", spec.name));
    if std::env::var_os("PROBEFORGE_WRITE_PIN").is_some() {
        let text = serde_json::to_string_pretty(&live).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let shipped: GccManifest =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        GccManifest::embedded().contains(&shipped),
        "{} is embedded",
        spec.name
    );
    assert_eq!(shipped.version_text, spec.version_text);
    let names = |m: &GccManifest| {
        m.packages
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&shipped), names(&live));
    for (s, l) in shipped.packages.iter().zip(&live.packages) {
        // The index may move on (a point release): a package of the same version must be the
        // same file, and the compiler itself must not have changed.
        if s.version == l.version {
            assert_eq!(
                (&s.filename, &s.sha256, s.size),
                (&l.filename, &l.sha256, l.size)
            );
        }
    }
    assert_eq!(
        shipped.packages[0].version, live.packages[0].version,
        "{}: the compiler in the index changed: re-pin",
        spec.name
    );
}

#[test]
fn gcc_12_manifest_is_what_bookworm_ships() {
    manifest_is_what_the_index_ships(gcc::debian12_gcc12_spec());
}

#[test]
fn gcc_10_manifest_is_what_bullseye_ships() {
    manifest_is_what_the_index_ships(gcc::debian11_gcc10_spec());
}

#[test]
fn gcc_14_manifest_is_what_trixie_ships() {
    manifest_is_what_the_index_ships(gcc::debian13_gcc14_spec());
}

#[test]
fn gcc_12_arm64_cross_manifest_is_what_bookworm_ships() {
    manifest_is_what_the_index_ships(gcc::debian12_gcc12_arm64_cross_spec());
}

#[test]
fn gcc_14_arm64_cross_manifest_is_what_trixie_ships() {
    manifest_is_what_the_index_ships(gcc::debian13_gcc14_arm64_cross_spec());
}

#[test]
fn dkms_0_23_2_builds_as_9_1_0_for_bookworm_6_1_and_validates() {
    let b = built_9_1_0();
    let m = &b.module;
    assert_eq!(
        m.file_name,
        falco_file(&b.record, "ko"),
        "Falco's name (the loader's: package version and flavour)"
    );
    assert_eq!(m.compiler, "pinned gcc-12-debian12");
    assert_eq!(m.compiler_text, KernelCompiler::of(&b.tree).unwrap().text);
    assert!(
        m.vermagic.starts_with(&format!("{} SMP ", b.tree.release)),
        "{}",
        m.vermagic
    );
    assert!(
        m.configure.contains(&"HAS_0__SANITY".to_owned()),
        "{:?}",
        m.configure
    );
    let r = kmod::validate(&m.bytes, &b.tree, &symvers(&b.tree)).expect("validates");
    assert_eq!(r.name, "falco");
    assert_eq!(r.license, "Dual MIT/GPL");
    assert_eq!(r.srcversion.len(), 23, "{}", r.srcversion);
    assert!(r.imports > 50 && r.crcs_checked >= r.imports, "{r:?}");
    let info = kmod::validate::modinfo(&m.bytes).unwrap();
    assert!(
        info.iter()
            .any(|(k, v)| k == "version" && v == "9.1.0+driver"),
        "the module carries the version it is published as: {info:?}"
    );
    eprintln!("built in {:.1} s", b.secs);
}

#[test]
fn a_module_is_refused_for_another_kernel_and_when_altered() {
    let b = built_9_1_0();
    // The same release line's other flavour: another vermagic, other CRCs.
    let (_, files) = debian_set("bookworm", "6.1.", "cloud-amd64");
    let dir = tmpdir();
    let other = staged(&files, dir.path());
    assert_ne!(other.release, b.tree.release);
    let err = kmod::validate(&b.module.bytes, &other, &symvers(&other)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&other.release) && msg.contains(&b.tree.release),
        "{msg}"
    );
    // The kernel's CRC of one symbol the module uses, changed: refused, naming it.
    let text = std::fs::read_to_string(b.tree.objtree.join("Module.symvers")).unwrap();
    let line = text
        .lines()
        .find(|l| l.split('\t').nth(1) == Some("_printk"))
        .expect("_printk in Module.symvers");
    let crc = line.split('\t').next().unwrap();
    let flipped = format!("0x{:08x}", u32::from_str_radix(&crc[2..], 16).unwrap() ^ 1);
    let sv = Symvers::parse(&text.replace(line, &line.replacen(crc, &flipped, 1)));
    let err = kmod::validate(&b.module.bytes, &b.tree, &sv).unwrap_err();
    assert!(
        matches!(&err, kmod::ValidateError::Crc { symbol, .. } if symbol == "_printk"),
        "{err}"
    );
    // A symbol the kernel does not export.
    let text = std::fs::read_to_string(b.tree.objtree.join("Module.symvers")).unwrap();
    let sv = Symvers::parse(
        &text
            .lines()
            .filter(|l| !l.contains("\t_printk\t"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let err = kmod::validate(&b.module.bytes, &b.tree, &sv).unwrap_err();
    assert!(err.to_string().contains("_printk"), "{err}");
    // An arm64 kernel: wrong machine.
    let mut arm = b.tree.clone();
    arm.arch = Arch::Aarch64;
    let err = kmod::validate(&b.module.bytes, &arm, &symvers(&b.tree)).unwrap_err();
    assert!(matches!(err, kmod::ValidateError::Machine { .. }), "{err}");
}

#[test]
fn same_bytes_from_other_directories() {
    let b = built_9_1_0();
    let (_, files) = debian_set("bookworm", "6.1.", "amd64");
    let dir = tmpdir();
    let deeper = dir.path().join("somewhere/else entirely".replace(' ', "_"));
    let tree = staged(&files, &deeper);
    assert_eq!(tree.release, b.tree.release);
    let driver = dkms_0_23_2(&deeper);
    let again = kmod::build(&kmod::KmodRequest {
        tree: &tree,
        driver: &driver,
        driver_version: Some("9.1.0+driver"),
        compiler: gcc12(),
        target_id: "debian",
        module_name: kbuild::MODULE_NAME,
        scratch: &deeper.join("other-scratch"),
        jobs: 1,
    })
    .unwrap_or_else(|e| panic!("{e}\n{e:#?}"));
    assert_eq!(
        again.sha256, b.module.sha256,
        "two builds of the same inputs in two directories differ"
    );
    let root = tree.root.canonicalize().unwrap();
    let root = root.to_string_lossy();
    assert!(
        !again
            .bytes
            .windows(root.len())
            .any(|w| w == root.as_bytes()),
        "the build directory leaks into the module"
    );
}

#[test]
fn a_kernel_whose_compiler_is_unavailable_is_refused_naming_both() {
    // forky's kernels are built by a gcc newer than any pinned here, and than the host's.
    let (_, files) = debian_set_from("forky", &["forky"], "", "amd64", Arch::X86_64);
    let dir = tmpdir();
    let tree = staged(&files, dir.path());
    let want = KernelCompiler::of(&tree).unwrap();
    assert!(want.text.contains("gcc-1"), "{}", want.text);
    let err = gcc::choose(&want, tree.arch, &GccManifest::embedded()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&want.text)
            && msg.contains("gcc-10-debian11")
            && msg.contains("gcc-12-debian12")
            && msg.contains("gcc-14-debian13"),
        "{msg}"
    );
    // Handing kbuild another compiler anyway is refused too, naming both.
    let driver = dkms_0_23_2(dir.path());
    let err = kmod::build(&kmod::KmodRequest {
        tree: &tree,
        driver: &driver,
        driver_version: Some("9.1.0+driver"),
        compiler: gcc12(),
        target_id: "debian",
        module_name: kbuild::MODULE_NAME,
        scratch: &dir.path().join("build"),
        jobs: 1,
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, kmod::Error::CompilerMismatch { .. })
            && msg.contains(&want.text)
            && msg.contains("gcc-12 (Debian 12.2.0"),
        "{msg}"
    );
    let host12 = Path::new("/usr/bin/gcc-12");
    if host12.is_file() {
        let err = Compiler::host(host12, &want).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&want.text) && msg.contains("gcc-12"), "{msg}");
    }
}

/// `inspect --compiler` of a kernel's header set: what its module needs and where that comes
/// from.
fn module_compiler(files: &[PathBuf], global: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = global.iter().map(|s| s.to_string()).collect();
    args.extend(["inspect".into(), "--compiler".into(), "--json".into()]);
    args.extend(files.iter().map(|f| f.display().to_string()));
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["module_compiler"].clone()
}

/// Each kernel's compiler is looked up in its own release's indexes, whatever target listed it
/// (the header set alone names the release): forky's gcc-16 from debian-forky, bookworm's arm64
/// cross gcc-12 from debian-bookworm (its nearest build there, not trixie's 12.4). Before, a
/// kernel without a single-release target was resolved against the whole `debian` umbrella:
/// forky's gcc-16 was "not in the index" and bookworm's arm64 module got trixie's gcc-12.
#[test]
fn inspect_names_each_kernels_module_compiler_from_its_own_release() {
    let (_, bookworm) = debian_set("bookworm", "6.1.", "amd64");
    let m = module_compiler(&bookworm, &[]);
    assert_eq!(
        (m["source"].as_str(), m["name"].as_str()),
        (Some("pinned"), Some("gcc-12-debian12")),
        "{m:#}"
    );

    let (_, forky) = debian_set_from("forky", &["forky"], "", "amd64", Arch::X86_64);
    let m = module_compiler(&forky, &[]);
    let name = m["name"].as_str().unwrap_or_default();
    assert_eq!(m["source"], "index", "{m:#}");
    assert!(
        name.starts_with("gcc-1") && name.ends_with("@debian-forky"),
        "{m:#}"
    );

    let (_, arm) = debian_set_from(
        "bookworm",
        &["bookworm-backports"],
        "6.12.",
        "arm64",
        Arch::Aarch64,
    );
    let m = module_compiler(&arm, &[]);
    let name = m["name"].as_str().unwrap_or_default();
    assert_eq!(
        (m["source"].as_str(), m["nearest"].as_bool()),
        (Some("index"), Some(true)),
        "{m:#}"
    );
    assert!(
        name.starts_with("gcc-12-aarch64-linux-gnu_12.2.0-") && name.ends_with("@debian-bookworm"),
        "{m:#}"
    );
    // The exact build is required: none, and why, in the index's own words.
    let m = module_compiler(&arm, &["--exact-compiler"]);
    assert_eq!(m["source"], "none", "{m:#}");
    let note = m["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("debian-bookworm's indexes: no `gcc-12-aarch64-linux-gnu` 12.2.0-14+deb12u1 (exact build required)"),
        "{note}"
    );
}

#[test]
fn a_driver_without_main_c_is_refused() {
    let dir = tmpdir();
    let src = dkms_0_23_2(dir.path());
    let copy = dir.path().join("no-kmod/scap-0.23.2");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(&src.dir)
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    std::fs::remove_file(copy.join("main.c")).unwrap();
    let s = probeforge::driver::DriverSource::find(&copy).unwrap();
    let err = kbuild::stage_driver(
        &s,
        "9.1.0+driver",
        kbuild::MODULE_NAME,
        &dir.path().join("out"),
    )
    .unwrap_err();
    assert!(matches!(err, kmod::Error::NoModule { .. }), "{err}");
    assert!(err.to_string().contains("main.c"), "{err}");
}

/// Whether a module carries BTF (kbuild's `BTF [M]` step ran rather than being skipped).
fn has_btf(ko: &[u8]) -> bool {
    use object::{Object, ObjectSection};
    let f = object::File::parse(ko).expect("the module is ELF");
    f.section_by_name(".BTF").is_some_and(|s| s.size() > 0)
}

/// Bookworm's 6.12 backports (`6.12.N+deb12-amd64`, in bookworm-security and -backports) were
/// built by bookworm's gcc-12 under its triplet name (`x86_64-linux-gnu-gcc-12`), and their
/// kbuild adds BTF to a module with the pahole they were configured with (1.24) against the
/// `vmlinux` their headers ship: the gcc-12 pin, chosen from the headers, builds them with its
/// own pahole, with BTF, the same bytes twice.
#[test]
fn dkms_0_23_2_builds_as_9_1_0_for_bookworm_6_12_backports_with_btf() {
    let (_, files) = debian_set_from(
        "bookworm",
        &["bookworm-security", "bookworm-backports"],
        "6.12.",
        "amd64",
        Arch::X86_64,
    );
    let dir = tmpdir();
    let tree = staged(&files, dir.path());
    assert!(tree.release.ends_with("+deb12-amd64"), "{}", tree.release);
    let want = KernelCompiler::of(&tree).unwrap();
    assert!(
        want.text.starts_with("x86_64-linux-gnu-gcc-12 (Debian 12."),
        "{}",
        want.text
    );
    assert_eq!(tree.config.get("PAHOLE_VERSION"), Some("124"));
    assert!(
        tree.objtree.join("vmlinux").is_file(),
        "no vmlinux: BTF skipped"
    );
    let compiler = chosen(&tree);
    assert_eq!(compiler.origin, "pinned gcc-12-debian12");
    assert_eq!(
        compiler.version_text, want.text,
        "started by the kernel's name"
    );
    let build = |scratch: &Path, jobs: usize| {
        let t = std::time::Instant::now();
        let m = kmod::build(&kmod::KmodRequest {
            tree: &tree,
            driver: &dkms_0_23_2(scratch),
            driver_version: Some("9.1.0+driver"),
            compiler: &compiler,
            target_id: "debian",
            module_name: kbuild::MODULE_NAME,
            scratch: &scratch.join("build"),
            jobs,
        })
        .unwrap_or_else(|e| panic!("{e}\n{e:#?}"));
        eprintln!(
            "9.1.0+driver on {} (-j{jobs}): {} bytes in {:.1} s",
            tree.release,
            m.bytes.len(),
            t.elapsed().as_secs_f64()
        );
        m
    };
    let m = build(&dir.path().join("one"), 2);
    let log = std::fs::read_to_string(&m.log).unwrap();
    assert!(!log.contains("Skipping BTF"), "BTF skipped:\n{log}");
    assert!(has_btf(&m.bytes), "the module has no .BTF");
    let r = kmod::validate(&m.bytes, &tree, &symvers(&tree)).expect("validates");
    assert_eq!(r.name, "falco");
    assert!(r.crcs_checked > 50, "{r:?}");
    assert!(
        m.vermagic.starts_with(&format!("{} SMP ", tree.release)),
        "{}",
        m.vermagic
    );
    // pahole writes BTF too: still the same bytes from another directory and job count.
    let again = build(&dir.path().join("two/deeper"), 1);
    assert_eq!(
        again.sha256, m.sha256,
        "two builds of the same inputs differ"
    );
}

/// The ELF machine of a module.
fn machine(ko: &[u8]) -> object::Architecture {
    use object::Object;
    object::File::parse(ko)
        .expect("the module is ELF")
        .architecture()
}

/// An arm64 kernel's set for this x86_64 host holds the headers of arm64 and kbuild's programs
/// of amd64, of the same version.
fn assert_host_kbuild(k: &KernelRecord, files: &[PathBuf]) {
    let (p, f) = k
        .packages
        .iter()
        .zip(files)
        .find(|(p, _)| p.name.starts_with("linux-kbuild-"))
        .expect("a kbuild package");
    assert!(p.url.ends_with("_amd64.deb"), "{}", p.url);
    let dir = tmpdir();
    probeforge::extract::unpack_all(
        std::slice::from_ref(f),
        dir.path(),
        probeforge::extract::Selection::Everything,
        Default::default(),
    )
    .unwrap();
    let fixdep = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .flatten()
        .find(|e| e.file_name() == "fixdep")
        .expect("fixdep in kbuild");
    let bytes = std::fs::read(fixdep.path()).unwrap();
    assert_eq!(machine(&bytes), object::Architecture::X86_64);
}

/// Bookworm's arm64 kernels say `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0`; bookworm's cross
/// compiler for arm64 is built from 12.2.0-14 and says `aarch64-linux-gnu-gcc-12 (Debian
/// 12.2.0-14) 12.2.0`. The one change between them (CVE-2023-4039) is AArch64's stack
/// protector: not the kernel's compiler, refused naming both texts, whether chosen or handed
/// to kbuild.
#[test]
fn bookworm_6_1_arm64_is_refused_to_its_cross_gcc_12_of_another_debian_build() {
    let (k, files) = debian_set_from(
        "bookworm",
        &["bookworm", "bookworm-security"],
        "6.1.",
        "arm64",
        Arch::Aarch64,
    );
    assert_host_kbuild(&k, &files);
    let dir = tmpdir();
    let tree = staged(&files, dir.path());
    assert_eq!(tree.arch, Arch::Aarch64);
    let want = KernelCompiler::of(&tree).unwrap();
    let cross = pinned("gcc-12-debian12-arm64-cross", None);
    assert!(!gcc::same_release(
        &want.text,
        &cross.version_text,
        Arch::Aarch64
    ));
    let err = gcc::choose(&want, tree.arch, &GccManifest::embedded()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&want.text) && msg.contains(&cross.version_text),
        "{msg}"
    );
    let driver = dkms_0_23_2(dir.path());
    let err = kmod::build(&kmod::KmodRequest {
        tree: &tree,
        driver: &driver,
        driver_version: Some("9.1.0+driver"),
        compiler: &cross,
        target_id: "debian",
        module_name: kbuild::MODULE_NAME,
        scratch: &dir.path().join("build"),
        jobs: 2,
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, kmod::Error::CompilerMismatch { .. })
            && msg.contains(&want.text)
            && msg.contains(&cross.version_text),
        "{msg}"
    );
    // The native x86_64 gcc-12 says the kernel's very text, and compiles for another machine.
    let err = kmod::build(&kmod::KmodRequest {
        tree: &tree,
        driver: &driver,
        driver_version: Some("9.1.0+driver"),
        compiler: gcc12(),
        target_id: "debian",
        module_name: kbuild::MODULE_NAME,
        scratch: &dir.path().join("build"),
        jobs: 2,
    })
    .unwrap_err();
    assert!(matches!(err, kmod::Error::CompilerArch { .. }), "{err}");
}

/// Trixie's arm64 6.12 kernels say `aarch64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0`, which
/// trixie's cross compiler on x86_64 says too: cross-built (`ARCH=arm64`,
/// `CROSS_COMPILE=aarch64-linux-gnu-`, amd64 kbuild programs with the arm64 headers), an
/// AArch64 module that validates against the kernel's `Module.symvers`.
#[test]
fn dkms_0_23_2_cross_builds_as_9_1_0_for_trixie_6_12_arm64() {
    let (k, files) = debian_set_from(
        "trixie",
        &["trixie", "trixie-security"],
        "6.12.",
        "arm64",
        Arch::Aarch64,
    );
    assert_host_kbuild(&k, &files);
    let dir = tmpdir();
    let tree = staged(&files, dir.path());
    assert_eq!(tree.arch, Arch::Aarch64);
    let compiler = chosen(&tree);
    assert_eq!(compiler.origin, "pinned gcc-14-debian13-arm64-cross");
    assert!(compiler.is_cross());
    let t = std::time::Instant::now();
    let m = kmod::build(&kmod::KmodRequest {
        tree: &tree,
        driver: &dkms_0_23_2(dir.path()),
        driver_version: Some("9.1.0+driver"),
        compiler: &compiler,
        target_id: "debian",
        module_name: kbuild::MODULE_NAME,
        scratch: &dir.path().join("build"),
        jobs: 2,
    })
    .unwrap_or_else(|e| panic!("{e}\n{e:#?}"));
    eprintln!(
        "9.1.0+driver on {} (cross): {} bytes in {:.1} s",
        tree.release,
        m.bytes.len(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(machine(&m.bytes), object::Architecture::Aarch64);
    assert!(
        m.configure.contains(&"HAS_0__SANITY".to_owned()),
        "the configure tests built for arm64: {:?}",
        m.configure
    );
    let r = kmod::validate(&m.bytes, &tree, &symvers(&tree)).expect("validates");
    assert_eq!(r.name, "falco");
    assert!(r.crcs_checked > 50, "{r:?}");
    assert!(m.vermagic.ends_with(" aarch64"), "{}", m.vermagic);
}

/// `probeforge build --driver kmod` as a user runs it: the kernel from its target (kbuild's
/// package kept), the compiler chosen from its headers and fetched, the module validated and
/// written under Falco's name, with the same bytes as the library's build of that kernel in
/// another directory; with `--verify`, proven in its kernel's VM.
#[test]
fn build_driver_kmod_from_a_target_writes_the_same_module_under_falcos_name() {
    let b = built_9_1_0();
    let out = tmpdir();
    let src = drivers::scap_dkms_0_23_2();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "build",
            "--target",
            "debian-bookworm",
            "--kernel",
            &b.tree.release,
            "--driver",
            "kmod",
            "--driver-source",
            src.to_str().unwrap(),
            "-o",
            out.path().to_str().unwrap(),
        ];
        a.extend(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let (code, stdout, err) = run(&args(&["--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["file_name"], b.module.file_name.as_str(), "{stdout}");
    assert_eq!(v["driver_version"], "9.1.0+driver", "{stdout}");
    assert!(v["symbols_checked"].as_u64().unwrap() > 1000, "{stdout}");
    let written = out.path().join(&b.module.file_name);
    assert_eq!(
        sha256_file(&written),
        b.module.sha256,
        "same inputs, same bytes"
    );
    assert_eq!(v["sha256"], b.module.sha256.as_str());

    // Proven in its kernel: loaded under QEMU, its devices opened and mapped, capture
    // enabled through its ioctls, the workload's events decoded with the driver's own tables.
    let (code, stdout, err) = run(&args(&["--verify", "--json"]));
    assert_eq!(code, 0, "{err}\n{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let verdict = &v["verdict"];
    assert_eq!(verdict["judgement"]["ok"], true, "{stdout}");
    assert_eq!(
        verdict["booted_release"],
        b.tree.release.as_str(),
        "{stdout}"
    );
    let line = verdict["judgement"]["line"].as_str().unwrap();
    assert!(line.contains("module `falco` loaded"), "{line}");
    assert!(line.contains("workload events decoded"), "{line}");
}

/// A kernel built by a gcc its own distribution's indexes do not give here (RHEL's build of
/// gcc 12, as Red Hat's `gcc-toolset-12` says it): the real bookworm tree under that compiler
/// text gets Debian's build of the same major version (bookworm's 12.2.0, the nearest to
/// 12.2.1 of the Debian releases carrying gcc 12), said and recorded as such; the module is
/// built with it and validated against the kernel's Module.symvers. `--exact-compiler`
/// refuses it.
#[test]
fn a_kernel_built_by_another_vendors_gcc_gets_debians_build_of_its_major_version() {
    let t = tmpdir();
    let root = t.path().join("kernels/rhel-built");
    let (k, debs) = debian_set("bookworm", "6.1.", "amd64");
    dpkg_x(&debs, &root);
    let tree = root.join(format!("usr/src/linux-headers-{}", k.release));
    let rhel = "gcc (GCC) 12.2.1 20221121 (Red Hat 12.2.1-7)";
    let config = std::fs::read_to_string(tree.join(".config")).unwrap();
    let debian = config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_CC_VERSION_TEXT=\""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("the headers name their compiler")
        .to_owned();
    for f in [
        ".config",
        "include/config/auto.conf",
        "include/generated/autoconf.h",
        "include/generated/compile.h",
    ] {
        let p = tree.join(f);
        if let Ok(text) = std::fs::read_to_string(&p) {
            std::fs::write(&p, text.replace(&debian, rhel)).unwrap();
        }
    }
    let files = vec![root.clone()];
    let m = module_compiler(&files, &[]);
    let name = m["name"].as_str().unwrap_or_default();
    assert_eq!(m["source"], "same-major", "{m:#}");
    assert!(
        name.starts_with("gcc-12_12.2.0-") && name.ends_with("@debian-bookworm"),
        "{m:#}"
    );
    let note = m["note"].as_str().unwrap_or_default();
    assert!(note.contains(rhel) && note.contains("another"), "{note}");
    let m = module_compiler(&files, &["--exact-compiler"]);
    assert_eq!(m["source"], "none", "{m:#}");
    assert!(
        m["note"]
            .as_str()
            .unwrap_or_default()
            .contains("exact build required"),
        "{m:#}"
    );

    let out = t.path().join("out");
    let mut args = build_args(&files, &libs_0_20_0(), &out);
    args.extend(["--driver", "kmod", "--json"].map(String::from));
    let (code, stdout, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let said = v.to_string();
    assert!(
        said.contains("gcc-12_12.2.0-") && said.contains("@debian-bookworm"),
        "{stdout}"
    );
    assert!(
        v["symbols_checked"].as_u64().unwrap_or(0) > 1000,
        "{stdout}"
    );
    assert!(
        err.contains(rhel) && err.contains("another distribution's build"),
        "said in a warning: {err}"
    );
}

/// Bottlerocket's kmod kit ships the kernel's own compiler beside its tree
/// (`<kit>/toolchain/usr/bin/...`, `<kit>/kernel-devel`): that toolchain builds the module when
/// it says exactly the kernel's text, ahead of any pinned one. The kit here is a real bookworm
/// kernel made one tree with its kbuild programs, and a toolchain of the real gcc-12 that
/// built it (its pinned packages, unpacked into the kit).
#[test]
fn a_kits_own_toolchain_builds_its_module() {
    let t = tmpdir();
    let (k, debs) = debian_set("bookworm", "6.1.", "amd64");
    let staged = t.path().join("staged");
    dpkg_x(&debs, &staged);
    let kits = t.path().join("kits");
    let kit = kits.join("aws-k8s-1.33-x86_64-kmod-kit-v1.20.0");
    std::fs::create_dir_all(&kit).unwrap();
    common::rpm::one_tree_with_kbuild(&staged, &kit.join("kernel-devel"));
    let l = lister();
    let m = GccManifest::embedded()
        .into_iter()
        .find(|m| m.name == "gcc-12-debian12")
        .unwrap();
    let root = gcc::fetch(&m, l.client, l.catalog, l.mirrors, &|_, _, _| Ok(()))
        .expect("gcc-12's packages");
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", root.display()))
        .arg(kit.join("toolchain"))
        .status()
        .unwrap()
        .success());

    let files = vec![kits.clone()];
    let c = module_compiler(&files, &[]);
    assert_eq!(c["source"], "kit", "{c:#}");
    assert!(
        c["name"]
            .as_str()
            .unwrap_or_default()
            .ends_with("aws-k8s-1.33-x86_64-kmod-kit-v1.20.0/toolchain"),
        "{c:#}"
    );
    let out = t.path().join("out");
    let mut args = build_args(&files, &libs_0_20_0(), &out);
    args.extend(["--driver", "kmod", "--json"].map(String::from));
    let (code, stdout, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        v.to_string()
            .contains("kit toolchain aws-k8s-1.33-x86_64-kmod-kit-v1.20.0"),
        "{stdout}"
    );
    assert!(
        v["symbols_checked"].as_u64().unwrap_or(0) > 1000,
        "{stdout}"
    );
    assert!(
        v.to_string().contains(&k.release),
        "the kit's kernel: {stdout}"
    );
}

/// The packages unpacked into `dir` by dpkg itself, as a user's unpacked headers are.
fn dpkg_x(debs: &[PathBuf], dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for d in debs {
        assert!(std::process::Command::new("dpkg-deb")
            .arg("-x")
            .arg(d)
            .arg(dir)
            .status()
            .unwrap()
            .success());
    }
}
