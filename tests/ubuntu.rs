//! Ubuntu as Falco runs it, live against Ubuntu's main archive (the catalog's `ubuntu` mirror):
//! every kernel its signed indexes ship is listed under the name falcoctl computes on that
//! machine; kernel modules are built with Ubuntu's own compiler, resolved from the same indexes,
//! for the newest generic (6.8 and the newest HWE line), `aws`, `azure` and `gcp` kernels of
//! noble and the newest 5.15 generic of jammy (built by plain `gcc`); two of them are loaded in
//! their own kernels under QEMU (one read by Debian's real sysdig); and a jammy probe is
//! byte-identical to kbuild's.
//!
//! References made outside probeforge: the indexes are fetched by curl(1) and read by this
//! file's own parser; the compiler a kernel names is read from its `.config` as dpkg-deb(1)
//! unpacks it; the names are falcoctl's rule as its source states it (below); the probe is
//! kbuild's (`tests/common/kbuild.rs`).

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use probeforge::kernel::Arch;
use probeforge::repo::KernelRecord;

const SUITES: [(&str, [&str; 3]); 2] = [
    ("ubuntu-noble", ["noble", "noble-updates", "noble-security"]),
    ("ubuntu-jammy", ["jammy", "jammy-updates", "jammy-security"]),
];

fn ubuntu_mirror() -> String {
    let n = net();
    n.mirrors.resolve(&n.catalog, "ubuntu").unwrap()
}

/// One paragraph of a `Packages` index, as this file reads it (independently of probeforge's
/// parser): name, version, `Depends`.
#[derive(Debug, Clone)]
struct Para {
    name: String,
    version: String,
    depends: String,
}

/// A suite's main/amd64 `Packages`, fetched by curl and decompressed by xz(1).
fn packages(suite: &str) -> Vec<Para> {
    let url = format!(
        "{}/dists/{suite}/main/binary-amd64/Packages.xz",
        ubuntu_mirror()
    );
    let xz = Command::new("curl")
        .args(["-sSf", "--retry", "3", &url])
        .output()
        .unwrap();
    assert!(
        xz.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&xz.stderr)
    );
    let mut child = Command::new("xz")
        .args(["-dc"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = xz.stdout;
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split("\n\n")
        .filter_map(|p| {
            let field = |k: &str| {
                p.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}: ")[..]))
                    .map(str::to_owned)
            };
            Some(Para {
                name: field("Package")?,
                version: field("Version")?,
                depends: field("Depends").unwrap_or_default(),
            })
        })
        .collect()
}

/// `linux-headers-X.Y.Z-ABI-<flavour>`: one kernel's flavour headers, by the shape Ubuntu
/// names them (kernel-crawler's test of a kernel package).
fn kernel_shaped(name: &str) -> Option<&str> {
    let r = name.strip_prefix("linux-headers-")?;
    let re = regex::Regex::new(r"^\d+\.\d+\.\d+-\d+-[a-z][a-z0-9-]*$").unwrap();
    re.is_match(r).then_some(r)
}

/// falcoctl's Ubuntu rule (falcosecurity/falcoctl `pkg/driver/distro/ubuntu.go`, as quoted in
/// its comments: "5.0.0-1028-aws-5.0 -> ubuntu-aws", "5.15.0-1009-aws -> ubuntu-aws"; the kernel
/// version is `uname -v` after `#` up to `-Ubuntu`): the flavour is the first run of letters
/// after the ABI number; `uname -v` carries the package version's part after the ABI
/// (`6.14.0-37.37~24.04.1` -> `#37~24.04.1-Ubuntu`).
fn falcoctl_name(release: &str, package_version: &str) -> (String, String) {
    let flavour = regex::Regex::new(r"^\d+\.\d+\.\d+-\d+-([a-z]+)")
        .unwrap()
        .captures(release)
        .map(|c| c[1].to_owned())
        .unwrap();
    let kv = regex::Regex::new(r"^\d+\.\d+\.\d+-\d+\.(.+)$")
        .unwrap()
        .captures(package_version)
        .map(|c| c[1].to_owned())
        .unwrap();
    (format!("ubuntu-{flavour}"), kv)
}

/// Every kernel-shaped header package of noble and jammy (main, amd64, all three pockets) is
/// listed, each once, at its newest version, paired with the shared headers its own `Depends`
/// names (Ubuntu's HWE and cloud kernels name `linux-<source>-headers-<abi>`), under falcoctl's
/// target id and kernel version; nothing else is listed.
#[test]
fn every_kernel_shaped_header_package_of_noble_and_jammy_is_listed() {
    for (target, suites) in SUITES {
        let mut want: BTreeMap<String, Para> = BTreeMap::new();
        for s in suites {
            for p in packages(s) {
                if kernel_shaped(&p.name).is_none() {
                    continue;
                }
                let newer = want.get(&p.name).is_none_or(|o| {
                    probeforge::repo::apt::compare_versions(&p.version, &o.version).is_gt()
                });
                if newer {
                    want.insert(p.name.clone(), p);
                }
            }
        }
        assert!(
            want.len() > 300,
            "{target}: only {} kernels in the index",
            want.len()
        );
        let (code, out, err) = run(&["list-kernels", target, "--arch", "x86_64", "--json"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            !err.contains("Trust packet"),
            "the keyring's trust packets are logged: {err}"
        );
        let listed: Vec<KernelRecord> = serde_json::from_str(&out).unwrap();
        let names: BTreeSet<String> = listed
            .iter()
            .map(|k| format!("linux-headers-{}", k.release))
            .collect();
        let missing: Vec<&String> = want.keys().filter(|n| !names.contains(*n)).collect();
        let extra: Vec<&String> = names.iter().filter(|n| !want.contains_key(*n)).collect();
        assert!(missing.is_empty(), "{target}: not listed: {missing:?}");
        assert!(
            extra.is_empty(),
            "{target}: listed, not a kernel: {extra:?}"
        );
        assert_eq!(listed.len(), want.len(), "{target}: a kernel listed twice");
        let mut flavours = BTreeSet::new();
        for k in &listed {
            let p = &want[&format!("linux-headers-{}", k.release)];
            let (id, kv) = falcoctl_name(&k.release, &p.version);
            assert_eq!(
                (k.target_id.as_str(), k.kernel_version.as_str()),
                (id.as_str(), kv.as_str()),
                "{}",
                k.release
            );
            flavours.insert(id);
            // Its set: the flavour package at the listed version and the shared headers its
            // Depends names, nothing guessed.
            let shared = p
                .depends
                .split(',')
                .map(|d| d.trim().split(' ').next().unwrap())
                .find(|d| d.contains("-headers-"))
                .unwrap_or_else(|| panic!("{}: no shared headers in {}", p.name, p.depends));
            let set: Vec<(&str, &str)> = k
                .packages
                .iter()
                .map(|q| (q.name.as_str(), q.version.as_str()))
                .collect();
            assert_eq!(
                set[0],
                (p.name.as_str(), p.version.as_str()),
                "{}",
                k.release
            );
            assert!(
                set.iter().any(|(n, _)| *n == shared),
                "{}: {shared} not in {set:?}",
                k.release
            );
            assert_eq!(set.len(), 2, "{}: {set:?}", k.release);
        }
        for f in ["ubuntu-generic", "ubuntu-aws", "ubuntu-azure", "ubuntu-gcp"] {
            assert!(
                flavours.contains(f),
                "{target}: no {f} kernel among {flavours:?}"
            );
        }
        // A flavour filter keeps only those flavours (`azure` also keeps `azure-fde`, whose
        // Falco target id is ubuntu-azure).
        let (code, out, err) = run(&[
            "list-kernels",
            target,
            "--arch",
            "x86_64",
            "--flavour",
            "aws,azure",
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let some: Vec<KernelRecord> = serde_json::from_str(&out).unwrap();
        let expect = listed
            .iter()
            .filter(|k| ["ubuntu-aws", "ubuntu-azure"].contains(&k.target_id.as_str()))
            .count();
        assert_eq!(some.len(), expect, "{target}");
        assert!(some
            .iter()
            .all(|k| k.release.ends_with("-aws") || k.release.contains("-azure")));
    }
}

/// The kernels the module tests build: noble's newest 6.8 generic, newest HWE generic, newest
/// aws, azure and gcp; jammy's newest 5.15 generic (its text names plain `gcc`).
fn chosen() -> &'static Vec<KernelRecord> {
    static K: OnceLock<Vec<KernelRecord>> = OnceLock::new();
    K.get_or_init(|| {
        let newest = |target: &str, pick: &dyn Fn(&KernelRecord) -> bool| {
            let all = lister().list(target, &[Arch::X86_64]).unwrap();
            probeforge::repo::newest_first(all.into_iter().filter(|k| pick(k)).collect())
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("{target}: no such kernel"))
        };
        let flavour =
            |f: &'static str| move |k: &KernelRecord| k.release.ends_with(&format!("-{f}"));
        vec![
            newest("ubuntu-noble", &|k| {
                k.release.starts_with("6.8.0-") && k.release.ends_with("-generic")
            }),
            newest("ubuntu-noble", &|k| {
                !k.release.starts_with("6.8.0-") && k.release.ends_with("-generic")
            }),
            newest("ubuntu-noble", &flavour("aws")),
            newest("ubuntu-noble", &flavour("azure")),
            newest("ubuntu-noble", &flavour("gcp")),
            newest("ubuntu-jammy", &|k| {
                k.release.starts_with("5.15.0-") && k.release.ends_with("-generic")
            }),
        ]
    })
}

/// `CONFIG_CC_VERSION_TEXT` of a kernel, read from its flavour package by dpkg-deb and tar.
fn compiler_text(k: &KernelRecord) -> String {
    let p = &k.packages[0];
    let deb = net()
        .client
        .fetch_verified(&p.url, &p.sha256, Some(p.size))
        .unwrap()
        .0;
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -xOf - ./usr/src/linux-headers-{}/.config",
            deb.display(),
            k.release
        ))
        .output()
        .unwrap();
    let config = String::from_utf8_lossy(&out.stdout);
    config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_CC_VERSION_TEXT="))
        .unwrap_or_else(|| panic!("{}: no CONFIG_CC_VERSION_TEXT", k.release))
        .trim_matches('"')
        .to_owned()
}

/// A module's `.modinfo` field, read with the object crate.
fn modinfo(ko: &Path, key: &str) -> String {
    use object::{Object, ObjectSection};
    let data = std::fs::read(ko).unwrap();
    let f = object::File::parse(&*data).unwrap();
    let s = f.section_by_name(".modinfo").unwrap();
    s.data()
        .unwrap()
        .split(|b| *b == 0)
        .filter_map(|e| std::str::from_utf8(e).ok())
        .find_map(|e| e.strip_prefix(&format!("{key}=")[..]).map(str::to_owned))
        .unwrap_or_default()
}

/// The six kernels' modules, built in one `build-all` run with 9.1.0+driver (Debian's
/// `falcosecurity-scap-dkms` 0.23.2): each with the compiler its headers name, exactly, from
/// Ubuntu's indexes; named as falcoctl asks for them; vermagic the kernel's.
#[test]
fn modules_are_built_with_ubuntus_own_compiler_for_every_line_and_flavour() {
    let ks = chosen();
    let repo = tmpdir();
    let only = format!(
        "^({})$",
        ks.iter()
            .map(|k| regex::escape(&k.release))
            .collect::<Vec<_>>()
            .join("|")
    );
    let src = drivers::scap_dkms_0_23_2();
    let (code, out, err) = run(&[
        "build-all",
        "ubuntu-noble",
        "ubuntu-jammy",
        "--arch",
        "x86_64",
        "--driver",
        "kmod",
        "--driver-source",
        src.to_str().unwrap(),
        "--driver-version",
        "9.1.0+driver",
        "--only",
        &only,
        "--repo",
        repo.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}\n{out}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.path().join("index.json")).unwrap()).unwrap();
    let text = index.to_string();
    for k in ks {
        let (id, kv) = falcoctl_name(&k.release, &k.packages[0].version);
        let file = format!("falco_{id}_{}_{kv}.ko", k.release);
        let ko = repo.path().join("9.1.0+driver/x86_64").join(&file);
        assert!(ko.is_file(), "{file} not published:\n{out}");
        assert_eq!(
            modinfo(&ko, "vermagic").split(' ').next(),
            Some(k.release.as_str()),
            "{file}"
        );
        // The compiler the kernel names, exactly, resolved from Ubuntu's own indexes.
        let cc = compiler_text(k);
        assert!(cc.contains("(Ubuntu "), "{}: {cc}", k.release);
        assert!(
            text.contains(&format!("({cc})")) && text.contains("resolved gcc-"),
            "{}: index.json does not record `{cc}` resolved from Ubuntu's indexes",
            k.release
        );
    }
    // Jammy's 5.15 names plain `gcc`: the module was built by a program of that very name.
    let jammy = &ks[5];
    assert!(
        compiler_text(jammy).starts_with("gcc (Ubuntu 11."),
        "{}",
        compiler_text(jammy)
    );
}

/// `probeforge build --driver kmod` of 9.1.0+driver (Debian's scap-dkms 0.23.2) for `kernel`
/// of `target`, with `extra` arguments: its directory (kept while the caller holds it) and the
/// `--json` it printed.
fn module_of(target: &str, kernel: &str, extra: &[&str]) -> (tempfile::TempDir, serde_json::Value) {
    let dir = tmpdir();
    let src = drivers::scap_dkms_0_23_2();
    let mut a = vec![
        "build",
        "--target",
        target,
        "--kernel",
        kernel,
        "--driver",
        "kmod",
        "--driver-source",
        src.to_str().unwrap(),
        "--driver-version",
        "9.1.0+driver",
        "-o",
        dir.path().to_str().unwrap(),
        "--json",
    ];
    a.extend_from_slice(extra);
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "{target} {kernel}: {err}");
    (dir, serde_json::from_str(&out).unwrap())
}

/// Ubuntu's `linux-image-<release>` (signed; its `vmlinuz` boots under QEMU).
fn image(k: &KernelRecord) -> PathBuf {
    debian_package(&k.target, k.arch, &format!("linux-image-{}", k.release))
}

/// The newest noble `aws` kernel's module loads in that kernel and its events are decoded with
/// the driver's own schema.
#[test]
fn an_aws_module_loads_and_captures_in_its_kernel() {
    let k = &chosen()[2];
    let src = drivers::scap_dkms_0_23_2();
    let (_dir, v) = module_of(&k.target, &k.release, &[]);
    let ko = v["path"].as_str().unwrap().to_owned();
    let (code, out, err) = run(&[
        "verify",
        "--json",
        "--kernel-image",
        image(k).to_str().unwrap(),
        "--driver-source",
        src.to_str().unwrap(),
        &ko,
    ]);
    assert_eq!(code, 0, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["booted_release"], k.release.as_str(), "{v}");
    let r = &v["reports"][0];
    let j = probeforge::verify::judge(r);
    assert!(j.ok, "{}: {}", k.release, j.line);
    assert_eq!(r["kind"], "kmod", "{r}");
    assert_eq!(r["module"], "falco", "{r}");
    assert_eq!(r["events"]["ok"], true, "{:#}", r["events"]);
    assert!(
        r["events"]["decoded"].as_u64().unwrap() >= 10,
        "{}",
        r["events"]
    );
}

/// Falco's real userspace on an Ubuntu module: Debian's sysdig 0.41.4 (libscap of libs 0.23.2)
/// reads the newest noble 6.8 generic kernel's module, built under the name sysdig opens
/// (`scap`), in that kernel.
#[test]
fn debians_sysdig_reads_a_noble_generic_module_in_its_kernel() {
    let k = &chosen()[0];
    let (_dir, v) = module_of(&k.target, &k.release, &["--module-name", "scap"]);
    let ko = v["path"].as_str().unwrap().to_owned();
    assert_eq!(modinfo(Path::new(&ko), "name"), "scap");
    let image = image(k);
    let verify = || {
        run(&[
            "verify",
            "--json",
            "--kernel-image",
            image.to_str().unwrap(),
            "--userspace",
            "sysdig",
            &ko,
        ])
    };
    let (mut code, mut out, mut err) = verify();
    // A finding, kept visible rather than fixed here: on 2026-12-06 one boot in three of
    // 6.8.0-155-generic under TCG panicked in `__schedule` ("Fatal exception in interrupt")
    // seconds after this module loaded, and the same module ran clean in the next boot. One
    // more boot is allowed for that panic only; two panics fail the test.
    if code != 0 && err.contains("Kernel panic") {
        eprintln!(
            "finding: {} panicked with the scap module loaded; booting once more:\n{err}",
            k.release
        );
        (code, out, err) = verify();
    }
    assert_eq!(code, 0, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["booted_release"], k.release.as_str(), "{v}");
    let sysdig = v["userspace"]["sysdig_version"].as_str().unwrap_or("");
    assert!(sysdig.starts_with("0.41.4"), "{v}");
    let r = &v["reports"][0];
    assert_eq!(r["kind"], "kmod", "{r}");
    assert_eq!(r["module"], "scap", "{r}");
    assert_eq!(r["sysdig"]["ok"], true, "{r:#}");
}

/// A jammy probe (5.15, whose kbuild tools run on this host) is byte-identical to the one kbuild
/// builds from the same Ubuntu headers (`make -C <objtree> M=<driver>/bpf`, as
/// falco-driver-loader runs it) with the same driver and clang/llc.
#[test]
fn a_jammy_probe_is_byte_identical_to_kbuilds() {
    let k = &chosen()[5];
    let files: Vec<PathBuf> = k
        .packages
        .iter()
        .map(|p| {
            net()
                .client
                .fetch_verified(&p.url, &p.sha256, Some(p.size))
                .unwrap()
                .0
        })
        .collect();
    let t = tmpdir();
    let src = libs_0_20_0();
    let tree = kbuild_setup(&files, &src, Some("8.0.0+driver"), t.path());
    let reference = sha256_file(&tree.make(Arch::X86_64));
    let out = t.path().join("out");
    let (code, stdout, err) = run(&build_args(&files, &src, &out));
    assert_eq!(code, 0, "{err}");
    let built = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "o"))
        .unwrap_or_else(|| panic!("no probe: {stdout}"));
    assert_eq!(sha256_file(&built), reference, "{}", k.release);
}

/// The ports archive (arm64), which this machine cannot reach, in its real layout on loopback:
/// `ubuntu-ports/dists/noble-updates/main/binary-arm64/Packages.xz` in a clear-signed
/// `InRelease` (apt-ftparchive, gpg), packages made by dpkg-deb and indexed by
/// dpkg-scanpackages: an HWE flavour paired through its `Depends` with
/// `linux-hwe-6.14-headers-<abi>`, an `aws` flavour with `linux-aws-headers-<abi>`, and the
/// metas that point at them. arm64 is listed from the ports mirror only (the main archive's
/// mirror is a dead address here), every kernel under falcoctl's name, no meta.
#[test]
fn the_ports_archive_is_listed_for_arm64_in_its_layout() {
    let t = tmpdir();
    let root = t.path().join("srv/ubuntu-ports");
    let pool = root.join("pool/main/l");
    std::fs::create_dir_all(&pool).unwrap();
    let deb = |name: &str, version: &str, arch: &str, depends: &str| {
        let d = t.path().join("pkg").join(name);
        std::fs::create_dir_all(d.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(d.join("usr/share/doc").join(name)).unwrap();
        std::fs::write(
            d.join("DEBIAN/control"),
            format!(
                "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: t <t@t>\n{depends}Description: Linux kernel headers\n"
            ),
        )
        .unwrap();
        let out = pool.join(format!("{name}_{version}_{arch}.deb"));
        let o = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "-b"])
            .arg(&d)
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (hwe, hwe_v) = ("6.14.0-37", "6.14.0-37.37~24.04.1");
    let (aws, aws_v) = ("6.8.0-1040", "6.8.0-1040.42");
    deb(&format!("linux-hwe-6.14-headers-{hwe}"), hwe_v, "all", "");
    deb(
        &format!("linux-headers-{hwe}-generic"),
        hwe_v,
        "arm64",
        &format!("Depends: linux-hwe-6.14-headers-{hwe}, libc6 (>= 2.38), libelf1t64\n"),
    );
    deb(&format!("linux-aws-headers-{aws}"), aws_v, "all", "");
    deb(
        &format!("linux-headers-{aws}-aws"),
        aws_v,
        "arm64",
        &format!("Depends: linux-aws-headers-{aws}, libc6 (>= 2.38)\n"),
    );
    deb(
        "linux-headers-generic-hwe-24.04",
        hwe_v,
        "arm64",
        &format!("Depends: linux-headers-{hwe}-generic\n"),
    );
    deb(
        "linux-headers-aws",
        aws_v,
        "arm64",
        &format!("Depends: linux-headers-{aws}-aws\n"),
    );
    let dists = root.join("dists/noble-updates");
    let bin_dir = dists.join("main/binary-arm64");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let o = Command::new("dpkg-scanpackages")
        .args(["--multiversion", "pool"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut xz = Command::new("xz")
        .args(["-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut xz.stdin.take().unwrap(), &o.stdout).unwrap();
    let packed = xz.wait_with_output().unwrap();
    std::fs::write(bin_dir.join("Packages.xz"), packed.stdout).unwrap();
    let o = Command::new("apt-ftparchive")
        .args([
            "-o",
            "APT::FTPArchive::Release::Codename=noble",
            "-o",
            "APT::FTPArchive::Release::Suite=noble-updates",
            "release",
            "dists/noble-updates",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::write(dists.join("Release"), &o.stdout).unwrap();
    let key = common::gpg::test_key(t.path(), "ports");
    key.clearsign(&dists.join("Release"), &dists.join("InRelease"));
    let server = common::server::Server::start(t.path().join("srv"));
    let cache = t.path().join("cache");
    let ports = format!("ubuntu-ports={}/ubuntu-ports", server.base);
    let (code, out, err) = cli(
        &[
            "--keyring",
            key.public.to_str().unwrap(),
            "--mirror",
            &ports,
            // arm64 never reads the main archive: a dead address proves it.
            "--mirror",
            "ubuntu=http://127.0.0.1:9/ubuntu",
            "list-kernels",
            "ubuntu-noble",
            "--arch",
            "aarch64",
            "--json",
        ],
        &cache,
    );
    assert_eq!(code, 0, "{err}");
    let listed: Vec<KernelRecord> = serde_json::from_str(&out).unwrap();
    let got: Vec<(String, String, String, Vec<String>)> = listed
        .iter()
        .map(|k| {
            (
                k.release.clone(),
                k.target_id.clone(),
                k.kernel_version.clone(),
                k.packages.iter().map(|p| p.name.clone()).collect(),
            )
        })
        .collect();
    let want = |r: &str, id: &str, kv: &str, shared: &str| {
        (
            r.to_owned(),
            id.to_owned(),
            kv.to_owned(),
            vec![format!("linux-headers-{r}"), shared.to_owned()],
        )
    };
    assert_eq!(
        got,
        [
            want(
                &format!("{hwe}-generic"),
                "ubuntu-generic",
                "37~24.04.1",
                &format!("linux-hwe-6.14-headers-{hwe}")
            ),
            want(
                &format!("{aws}-aws"),
                "ubuntu-aws",
                "42",
                &format!("linux-aws-headers-{aws}")
            ),
        ],
        "{out}"
    );
    assert!(listed.iter().all(|k| k.arch == Arch::Aarch64));
    assert!(listed.iter().all(|k| k
        .packages
        .iter()
        .all(|p| p.url.contains("/ubuntu-ports/pool/"))));
}

/// Pre-release pockets are targets (`ubuntu-noble-proposed`, `debian-bookworm-proposed-updates`):
/// they list what the pocket carries and nothing else, and a kernel of noble-proposed gets its
/// module with the compiler from noble's own indexes (a pocket carries kernels, not compilers).
#[test]
fn a_pre_release_pocket_is_listed_and_its_newest_kernel_gets_a_module() {
    let (code, out, err) = run(&[
        "list-kernels",
        "ubuntu-noble-proposed",
        "--arch",
        "x86_64",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<KernelRecord> = serde_json::from_str(&out).unwrap();
    assert!(!listed.is_empty(), "noble-proposed carries no kernel now");
    assert!(listed.iter().all(|k| k.origin == "noble-proposed"), "{out}");
    let proposed: BTreeSet<String> = packages("noble-proposed")
        .into_iter()
        .filter_map(|p| kernel_shaped(&p.name).map(str::to_owned))
        .collect();
    let got: BTreeSet<String> = listed.iter().map(|k| k.release.clone()).collect();
    assert_eq!(got, proposed);
    // Debian's pocket lists whatever it carries (between point releases: nothing), signed.
    let (code, _, err) = run(&[
        "list-kernels",
        "debian-bookworm-proposed-updates",
        "--arch",
        "x86_64",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_dir, v) = module_of("ubuntu-noble-proposed", "latest", &[]);
    let compiler = v.to_string();
    assert!(compiler.contains("@ubuntu-noble"), "{v}");
    let ko = PathBuf::from(v["path"].as_str().unwrap());
    assert!(ko.is_file());
}
