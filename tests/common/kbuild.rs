//! The kbuild reference, staged without probeforge's library: headers unpacked by dpkg-deb, the
//! driver laid out as its own install lays it out, patches applied by patch(1), then
//! `make -C <objtree> M=<driver>/bpf` exactly as falco-driver-loader runs it.
//!
//! - A falcosecurity/libs tarball is unpacked by tar(1) and staged as `driver/bpf/CMakeLists.txt`
//!   says: `driver_config.h` configured from `driver_config.h.in` (CMake `configure_file`:
//!   `${VAR}` and `@VAR@`) with the values Falco's build passes (driver name and device `falco`,
//!   the driver version as `GIT_COMMIT`, API and schema versions from `driver/API_VERSION` and
//!   `driver/SCHEMA_VERSION`), then every file of the `BPF_SOURCES` list and every `driver/*.h`
//!   installed into `usr/src/falco-<version>/bpf`, and each configure module with its
//!   `Makefile`, `build.sh` and `Makefile.inc` (from `Makefile.inc.in`).
//! - A dkms package (`falcosecurity-scap-dkms`) is unpacked by dpkg-deb as shipped:
//!   `usr/src/scap-<version>/` with `bpf/` inside.
//!
//! The driver sits in the same root as the headers, at the path it has on a target, so one
//! `-ffile-prefix-map=<root>=` gives debug info the paths of a build on the target itself.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use probeforge::kernel::Arch;

pub struct KbuildTree {
    /// Where the packages were unpacked (what `/` is on the target).
    pub root: PathBuf,
    pub objtree: PathBuf,
    pub srctree: PathBuf,
    /// The installed driver tree (`<root>/usr/src/<name>-<version>`).
    pub driver_tree: PathBuf,
    /// `<driver_tree>/bpf`, where `make M=` points.
    pub bpf_dir: PathBuf,
    /// VERSION.PATCHLEVEL.SUBLEVEL from the srctree's Makefile.
    pub kernel: (u64, u64, u64),
    /// The driver version the patches were selected for.
    pub driver_version: String,
    /// Names of the `driver-patches/` applied by patch(1), in index order.
    pub patches: Vec<String>,
}

fn ok(c: &mut Command) -> Output {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// x.y.z from the leading numbers of a version (`8.0.0+driver`, `0.1.1dev+git...`).
pub fn semver3(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|p| {
        let d: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
        d.parse::<u64>().ok()
    });
    let a = it.next()??;
    let b = it.next().flatten().unwrap_or(0);
    let c = it.next().flatten().unwrap_or(0);
    Some((a, b, c))
}

/// `name = value` from a Makefile (the srctree's `VERSION = 6`).
fn make_var(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_owned())
    })
}

/// What CMake's `configure_file` does to a template: every `${VAR}` and `@VAR@` replaced.
/// A variable the template uses that is not given is a test failure (CMake would write it
/// empty, which is never what the driver's install wants).
fn configure_file(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v);
        out = out.replace(&format!("@{k}@"), v);
    }
    let left = regex::Regex::new(r"\$\{[A-Za-z_]+\}|@[A-Za-z_]+@").unwrap();
    assert!(
        !left.is_match(&out),
        "template variable not provided: {:?}",
        left.find(&out).map(|m| m.as_str())
    );
    out
}

fn three(path: &Path) -> String {
    let t = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = t.trim().to_owned();
    assert!(semver3(&t).is_some(), "{}: {t}", path.display());
    t
}

/// Installs a libs tree's bpf driver as its CMake install does, under
/// `<root>/usr/src/falco-<version>`. Returns the installed tree.
fn install_libs(tarball: &Path, version: &str, root: &Path, work: &Path) -> PathBuf {
    let src = work.join("libs-src");
    fs::create_dir_all(&src).unwrap();
    ok(Command::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("-C")
        .arg(&src));
    let top = fs::read_dir(&src)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("driver/bpf/probe.c").is_file())
        .expect("a libs tree with driver/bpf/probe.c");
    let driver = top.join("driver");
    let bpf_cmake = fs::read_to_string(driver.join("bpf/CMakeLists.txt")).unwrap();
    // What this install does (checked, so a different driver layout fails here, not later).
    for needle in [
        "configure_file(../driver_config.h.in ${CMAKE_CURRENT_SOURCE_DIR}/../driver_config.h)",
        "file(GLOB DRIVER_HEADERS ${CMAKE_CURRENT_SOURCE_DIR}/../*.h)",
        "DESTINATION \"src/${DRIVER_PACKAGE_NAME}-${DRIVER_VERSION}/bpf\"",
        "configure_file(configure/Makefile.inc.in src/configure/${CONFIGURE_MODULE}/Makefile.inc)",
    ] {
        assert!(
            bpf_cmake.contains(needle),
            "driver/bpf/CMakeLists.txt lacks `{needle}`"
        );
    }
    // driver_config.h, written into the source's driver/ (so the *.h glob takes it).
    let (api, schema) = (
        three(&driver.join("API_VERSION")),
        three(&driver.join("SCHEMA_VERSION")),
    );
    let parts = |v: &str| -> Vec<String> { v.split('.').map(str::to_owned).collect() };
    let (a, s) = (parts(&api), parts(&schema));
    let vars = [
        ("PPM_API_CURRENT_VERSION_MAJOR", a[0].clone()),
        ("PPM_API_CURRENT_VERSION_MINOR", a[1].clone()),
        ("PPM_API_CURRENT_VERSION_PATCH", a[2].clone()),
        ("PPM_SCHEMA_CURRENT_VERSION_MAJOR", s[0].clone()),
        ("PPM_SCHEMA_CURRENT_VERSION_MINOR", s[1].clone()),
        ("PPM_SCHEMA_CURRENT_VERSION_PATCH", s[2].clone()),
        ("DRIVER_VERSION", version.to_owned()),
        ("DRIVER_NAME", "falco".to_owned()),
        ("DRIVER_DEVICE_NAME", "falco".to_owned()),
        ("GIT_COMMIT", version.to_owned()),
    ];
    let tpl = fs::read_to_string(driver.join("driver_config.h.in")).unwrap();
    fs::write(driver.join("driver_config.h"), configure_file(&tpl, &vars)).unwrap();
    // set(BPF_SOURCES ...): the files the install copies from driver/bpf.
    let list = bpf_cmake
        .split("set(BPF_SOURCES")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("set(BPF_SOURCES ...) in driver/bpf/CMakeLists.txt");
    let sources: Vec<&str> = list.split_whitespace().collect();
    assert!(sources.contains(&"probe.c"), "{sources:?}");
    let inst = root.join(format!("usr/src/falco-{version}"));
    let bpf = inst.join("bpf");
    fs::create_dir_all(&bpf).unwrap();
    for f in &sources {
        fs::copy(driver.join("bpf").join(f), bpf.join(f)).unwrap();
    }
    let mut headers = 0;
    for e in fs::read_dir(&driver).unwrap().flatten() {
        let p = e.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "h") {
            fs::copy(&p, bpf.join(e.file_name())).unwrap();
            headers += 1;
        }
    }
    assert!(headers > 10 && bpf.join("driver_config.h").is_file());
    // Configure modules: test.c, Makefile, build.sh, Makefile.inc each.
    let cfg = driver.join("bpf/configure");
    if cfg.is_dir() {
        for e in fs::read_dir(&cfg).unwrap().flatten() {
            if !e.path().is_dir() {
                continue;
            }
            let m = e.file_name().into_string().unwrap();
            let d = bpf.join("configure").join(&m);
            fs::create_dir_all(&d).unwrap();
            fs::copy(e.path().join("test.c"), d.join("test.c")).unwrap();
            fs::copy(cfg.join("Makefile"), d.join("Makefile")).unwrap();
            fs::copy(cfg.join("build.sh"), d.join("build.sh")).unwrap();
            let inc = fs::read_to_string(cfg.join("Makefile.inc.in")).unwrap();
            let inc = configure_file(&inc, &[("CONFIGURE_MODULE", m.clone())]);
            fs::write(d.join("Makefile.inc"), inc).unwrap();
        }
    }
    inst
}

/// The falcosecurity-scap-dkms package as shipped: `usr/src/scap-<version>/`.
fn install_dkms(deb: &Path, root: &Path) -> (PathBuf, String) {
    ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root));
    let dirs: Vec<PathBuf> = fs::read_dir(root.join("usr/src"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("bpf/probe.c").is_file())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "one driver tree in the dkms package: {dirs:?}"
    );
    let inst = dirs[0].clone();
    // dkms.conf names the version the tree is installed as.
    let conf = fs::read_to_string(inst.join("dkms.conf")).unwrap();
    let version = make_var(&conf, "PACKAGE_VERSION")
        .expect("PACKAGE_VERSION in dkms.conf")
        .trim_matches('"')
        .to_owned();
    (inst, version)
}

/// `driver-patches/index.json` read here, the selection made here: inclusive driver range,
/// `kernel_min` inclusive, `kernel_below` exclusive, all on x.y.z.
pub fn select_patches(driver: &str, kernel: (u64, u64, u64)) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("driver-patches");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let d = semver3(driver).expect("driver version x.y.z");
    let bound = |p: &serde_json::Value, k: &str| p[k].as_str().map(|s| semver3(s).unwrap());
    index
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            bound(p, "driver_min").is_none_or(|b| d >= b)
                && bound(p, "driver_max").is_none_or(|b| d <= b)
                && bound(p, "kernel_min").is_none_or(|b| kernel >= b)
                && bound(p, "kernel_below").is_none_or(|b| kernel < b)
        })
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Unpacks `debs` (headers and the host's linux-kbuild) into `<work>/kroot`, installs the
/// driver (`driver`: a libs tarball with `version`, or a dkms `.deb` with `None`) into the
/// same root and patches it. Nothing here calls probeforge.
pub fn kbuild_setup(
    debs: &[PathBuf],
    driver: &Path,
    version: Option<&str>,
    work: &Path,
) -> KbuildTree {
    let root = work.join("kroot");
    fs::create_dir_all(&root).unwrap();
    for d in debs {
        ok(Command::new("dpkg-deb").arg("-x").arg(d).arg(&root));
    }
    let trees: Vec<PathBuf> = fs::read_dir(root.join("usr/src"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let objtree = trees
        .iter()
        .find(|p| p.join(".config").is_file())
        .expect("objtree")
        .clone();
    // Debian: the `-common` tree. Ubuntu: the objtree is a srctree through relative links
    // into its shared headers (its Makefile is one), and kbuild runs there as it is.
    let srctree = trees
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-common"))
        .unwrap_or(&objtree)
        .clone();
    // driverkit's fix of Debian's objtree Makefile: its include of the srctree is absolute (and
    // from 7.x so is its KBUILD_OUTPUT): point them into the root.
    let mk = objtree.join("Makefile");
    let text = fs::read_to_string(&mk).unwrap();
    let ubuntu = srctree == objtree;
    assert!(
        ubuntu || text.contains("include /usr/src/"),
        "{}",
        mk.display()
    );
    let inside = format!("{}/usr/src/", root.display());
    let text = text
        .replace("include /usr/src/", &format!("include {inside}"))
        .replace(
            "KBUILD_OUTPUT=/usr/src/",
            &format!("KBUILD_OUTPUT={inside}"),
        );
    if !ubuntu {
        fs::write(&mk, text).unwrap();
    }
    let top = fs::read_to_string(srctree.join("Makefile")).unwrap();
    let num = |k: &str| -> u64 { make_var(&top, k).unwrap().parse().unwrap() };
    let kernel = (num("VERSION"), num("PATCHLEVEL"), num("SUBLEVEL"));
    // A .deb is an ar archive (cached downloads are named by digest, not by extension).
    let mut magic = [0u8; 8];
    use std::io::Read;
    let _ = fs::File::open(driver).unwrap().read(&mut magic).unwrap();
    let is_deb = &magic == b"!<arch>\n";
    let (driver_tree, driver_version) = if is_deb {
        install_dkms(driver, &root)
    } else {
        let v = version.expect("a libs tree needs its driver version");
        (install_libs(driver, v, &root, work), v.to_owned())
    };
    let names = select_patches(&driver_version, kernel);
    let pdir = Path::new(env!("CARGO_MANIFEST_DIR")).join("driver-patches");
    for n in &names {
        ok(Command::new("patch")
            .args([
                "-p1",
                "--batch",
                "--forward",
                "--no-backup-if-mismatch",
                "-d",
            ])
            .arg(&driver_tree)
            .arg("-i")
            .arg(pdir.join(n)));
    }
    KbuildTree {
        bpf_dir: driver_tree.join("bpf"),
        root,
        objtree,
        srctree,
        driver_tree,
        driver_version,
        kernel,
        patches: names,
    }
}

impl KbuildTree {
    /// `make -C <objtree> M=<bpf> KERNELDIR=<objtree>` with clang for `arch` (cross:
    /// `--target=<triple>`), debug paths mapped to what they are on the target
    /// (`-ffile-prefix-map=<root>=` through the driver Makefile's KBUILD_EXTRA_CPPFLAGS).
    ///
    /// From 6.13 kbuild builds an external module from inside its directory, so the driver's
    /// `KERNELDIR ?= $(CURDIR)` would name the driver itself and its configure tests recurse
    /// forever: KERNELDIR is given, as a driver loader gives it. Kernels whose Makefile sets a C
    /// dialect in `CC_FLAGS_DIALECT` (7.x: `-fms-extensions`) need it for their headers, and
    /// kbuild gives it only to `KBUILD_CFLAGS`, which neither the probe's rule nor its configure
    /// tests use: kbuild's own `$(CC_FLAGS_DIALECT)` and the `-DCC_USING_*` of its
    /// `KBUILD_CFLAGS` (the fentry define `asm/ftrace.h` insists on) ride in `CLANG` (expanded by
    /// make), the one variable the configure tests are handed too. kbuild only finds fentry
    /// support by running the kernel's compiler (Debian's `gcc-14`, not on this host), so `CC` is
    /// the host's gcc there. Returns the probe's path.
    pub fn make(&self, arch: Arch) -> PathBuf {
        let mut clang = if arch == Arch::host().unwrap() {
            "clang".to_owned()
        } else {
            format!("clang --target={}", arch.triple())
        };
        let top = fs::read_to_string(self.srctree.join("Makefile")).unwrap();
        let dialect = top.lines().any(|l| l.starts_with("CC_FLAGS_DIALECT"));
        if dialect {
            clang.push_str(" $(CC_FLAGS_DIALECT) $(filter -DCC_USING_%,$(KBUILD_CFLAGS))");
        }
        let mut make = Command::new("make");
        if dialect {
            make.arg("CC=gcc");
        }
        let out = make
            .arg("-C")
            .arg(&self.objtree)
            .arg(format!("M={}", self.bpf_dir.display()))
            .arg(format!("KERNELDIR={}", self.objtree.display()))
            .arg(format!("CLANG={clang}"))
            .arg("LLC=llc")
            .arg(format!(
                "KBUILD_EXTRA_CPPFLAGS=-ffile-prefix-map={}=",
                self.root.display()
            ))
            .output()
            .unwrap();
        let probe = self.bpf_dir.join("probe.o");
        assert!(
            out.status.success() && probe.is_file(),
            "kbuild failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        probe
    }
}
