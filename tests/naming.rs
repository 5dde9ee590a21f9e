//! The table: every kernel is published under the name Falco's loader computes on that
//! kernel's system (`probeforge::loader`, falcoctl's rules: os-release, `uname -r`, `uname -v`),
//! for every target. Debian's rows are real kernels picked from the live index, with the
//! `uname -v` their own headers state; the other targets' rows (issue 16) are listed from
//! loopback repositories made by the distros' own tools, and from kernel-crawler lists.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::distros::{arch_package, repo_add, tuf_repo};
use common::gpg::test_key;
use common::rpm::{rename_kernel, rpmbuild, upstream_version, yum_repo, Spec};
use common::server::Server;
use common::*;
use probeforge::kernel::Arch;
use probeforge::loader::{self, System};
use probeforge::repo::KernelRecord;

fn loader_file(n: &loader::Name) -> String {
    format!(
        "falco_{}_{}_{}.o",
        n.target_id, n.kernel_release, n.kernel_version
    )
}

#[test]
fn debian_kernels_are_published_under_the_name_the_loader_asks_for() {
    let t = tmpdir();
    let mut rows = vec![
        debian_kernel("bullseye", Arch::X86_64),
        debian_kernel("bookworm", Arch::X86_64),
        debian_kernel("trixie", Arch::Aarch64),
    ];
    rows.push(debian_7x_kernel(Arch::X86_64));
    for (i, (k, files)) in rows.iter().enumerate() {
        let root = t.path().join(i.to_string());
        probeforge::extract::unpack_all(
            &header_files(k, files),
            &root,
            probeforge::extract::Selection::ProbeBuild,
            Default::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e:#?}", k.release));
        let tree = probeforge::KernelTree::find(&root, Some(&k.release)).unwrap();
        let uname_v = tree
            .uname_v
            .clone()
            .unwrap_or_else(|| panic!("{}: Debian's headers state uname -v", k.release));
        let on_it = loader::name(&System {
            os_id: "debian",
            uname_r: &tree.release,
            uname_v: &uname_v,
            ..System::default()
        });
        let published = falco_file(k, "o");
        let version = &k
            .packages
            .iter()
            .find(|p| p.name == format!("linux-headers-{}", k.release))
            .unwrap()
            .version;
        if version.contains('~') {
            // A backport: Falco's repository (kernel-crawler) names it by its own version; the
            // loader asks for the native kernel's file of that upstream version.
            assert_eq!(
                published,
                format!("falco_debian_{}-{}_1.o", version, flavour(&k.release)),
                "{uname_v}"
            );
            assert!(
                version.starts_with(
                    on_it
                        .kernel_release
                        .rsplit_once(&format!("-{}", flavour(&k.release)))
                        .unwrap()
                        .0
                ),
                "{on_it:?} {version}"
            );
        } else {
            assert_eq!(published, loader_file(&on_it), "{} ({uname_v})", k.release);
        }
        // And the build names its file the same way, from the tree.
        assert_eq!(
            published,
            probeforge::pipeline::probe_file_name(
                "debian",
                &loader::file_release("debian", &tree.release, Some(&uname_v)),
                "1"
            )
        );
    }
}

/// `6.1.0-47-cloud-amd64` -> `cloud-amd64`.
fn flavour(release: &str) -> String {
    let known = [
        "rt-amd64",
        "cloud-amd64",
        "rt-arm64",
        "cloud-arm64",
        "arm64-16k",
        "amd64",
        "arm64",
    ];
    known
        .iter()
        .find(|f| release.ends_with(&format!("-{f}")))
        .unwrap_or_else(|| panic!("no flavour in {release}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The targets of issue 16: each listed through probeforge's own lister (the CLI, as the distros
// tests run it) from a loopback repository laid out as the distro publishes it, made by the
// distro's own tools (rpmbuild, createrepo_c, makepkg's bsdtar and repo-add, a signed TUF
// repository); the kernels built from source from a kernel-crawler list and Flatcar's release
// server. The machine each row is compared with reports what that distro's machines report:
// os-release as shipped, `uname -r` and `uname -v` as the kernel's own headers state them.

/// What a distro's machine reports besides its kernel: `/etc/os-release` (`ID`, `VERSION_ID`,
/// `VARIANT_ID`) and minikube's `/etc/VERSION`.
#[derive(Clone, Copy)]
struct OsRelease {
    id: &'static str,
    version_id: Option<&'static str>,
    variant_id: Option<&'static str>,
    etc_version: Option<&'static str>,
}

const fn os(id: &'static str, version_id: &'static str) -> OsRelease {
    OsRelease {
        id,
        version_id: Some(version_id),
        variant_id: None,
        etc_version: None,
    }
}

/// One row: the kernel as probeforge listed it, and the machine running it.
struct Row {
    label: String,
    record: KernelRecord,
    os: OsRelease,
    uname_r: String,
    uname_v: String,
}

impl Row {
    /// (the file probeforge publishes, the file the loader asks for on the machine).
    fn names(&self) -> (String, String) {
        let asked = loader::name(&System {
            os_id: self.os.id,
            version_id: self.os.version_id,
            variant_id: self.os.variant_id,
            etc_version: self.os.etc_version,
            uname_r: &self.uname_r,
            uname_v: &self.uname_v,
        });
        (falco_file(&self.record, "o"), loader_file(&asked))
    }
}

/// What naming reads of a kernel's headers, copied from a real tree: the objtree's generated
/// headers and `.config`, the srctree's top `Makefile` and `include/linux/kconfig.h` (a whole
/// tree would cost an rpmbuild of 80 MB per package and tell the names nothing more).
const OBJTREE: [&str; 2] = [".config", "include/generated"];
const SRCTREE: [&str; 2] = ["Makefile", "include/linux/kconfig.h"];

fn copy_parts(from: &Path, to: &Path, parts: &[&str]) {
    for part in parts {
        for e in walkdir::WalkDir::new(from.join(part)) {
            let e = e.unwrap();
            let dest = to.join(e.path().strip_prefix(from).unwrap());
            if e.file_type().is_dir() {
                fs::create_dir_all(&dest).unwrap();
            } else {
                fs::create_dir_all(dest.parent().unwrap()).unwrap();
                fs::copy(e.path(), &dest).unwrap();
            }
        }
    }
}

/// The real tree's parts at `to`, as the distro's build of `uname_r` states it.
fn objtree_as(real: &Path, to: &Path, parts: &[&str], uname_r: &str, uname_v: &str) {
    copy_parts(real, to, parts);
    fs::create_dir_all(to.join("include/config")).unwrap();
    rename_kernel(to, uname_r, Some(uname_v), None);
}

/// Runs `probeforge <global> list-kernels TARGET --arch x86_64 --json`; the records.
fn list(global: &[String], target: &str) -> Vec<KernelRecord> {
    let o = Command::new(bin())
        .args(global)
        .args(["list-kernels", target, "--arch", "x86_64", "--json"])
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "list-kernels {target}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{target}: {e}: {out}"))
}

/// `uname -r` and `uname -v` as the headers of a listed kernel state them: its packages (the
/// files the loopback mirror serves at the record's URLs, checked against its digests)
/// unpacked and read as a kernel tree.
fn uname_of(k: &KernelRecord, base: &str, srv: &Path, at: &Path) -> (String, String) {
    let files: Vec<PathBuf> = k
        .packages
        .iter()
        .map(|p| {
            let path = p
                .url
                .strip_prefix(base)
                .unwrap_or_else(|| panic!("{} is not on the loopback mirror", p.url));
            let f = srv.join(path.trim_start_matches('/'));
            assert_eq!(sha256_file(&f), p.sha256, "{}", p.url);
            f
        })
        .collect();
    probeforge::extract::unpack_all(
        &files,
        at,
        probeforge::extract::Selection::Everything,
        Default::default(),
    )
    .unwrap_or_else(|e| panic!("{}: {e:#?}", k.release));
    let tree = probeforge::KernelTree::find(at, None).unwrap_or_else(|e| panic!("{e:#?}"));
    let uname_v = tree
        .uname_v
        .unwrap_or_else(|| panic!("{}: the headers state no uname -v", tree.release));
    (tree.release, uname_v)
}

/// A real `.config` as a distro's build of kernel `version` states it: its header line names
/// `version`, `CONFIG_LOCALVERSION` is the distro's.
fn config_for(real: &str, version: &str, localversion: &str) -> Vec<u8> {
    let (mut header, mut local) = (false, false);
    let text: Vec<String> = real
        .lines()
        .map(|l| {
            if l.starts_with("# Linux/") && l.ends_with(" Kernel Configuration") && !header {
                header = true;
                format!("# Linux/x86 {version} Kernel Configuration")
            } else if l.starts_with("CONFIG_LOCALVERSION=") {
                local = true;
                format!("CONFIG_LOCALVERSION=\"{localversion}\"")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(
        header && local,
        "the real .config has a header and CONFIG_LOCALVERSION"
    );
    (text.join("\n") + "\n").into_bytes()
}

#[test]
fn issue_16_targets_are_published_under_the_name_the_loader_asks_for() {
    let started = std::time::Instant::now();
    let t = tmpdir();
    // One real kernel's headers (the newest bookworm amd64), renamed per distro.
    let real = t.path().join("real");
    let k = single_tree(t.path(), &real);
    let v = upstream_version(&k);
    let srv = t.path().join("srv");
    let server = Server::start(srv.clone());
    let base = server.base.clone();
    let key = test_key(t.path(), "distro-owner");
    let keyring = key.public.display().to_string();
    let stage = t.path().join("stage");
    let global = |mirror: &str, url: &str, extra: &[&str]| {
        let mut g = vec![
            "--mirror".to_owned(),
            format!("{mirror}={url}"),
            "--cache-dir".to_owned(),
            t.path()
                .join(format!("cache-{mirror}"))
                .display()
                .to_string(),
        ];
        g.extend(extra.iter().map(|s| s.to_string()));
        g
    };
    let one = |mut ks: Vec<KernelRecord>, target: &str| {
        assert_eq!(ks.len(), 1, "{target}: {ks:#?}");
        ks.remove(0)
    };
    let unpacked = |name: &str| t.path().join("unpacked").join(name);
    let mut rows: Vec<Row> = Vec::new();

    // openSUSE and SLES: `kernel-default-devel` (objtree `usr/src/linux-V-R-obj/x86_64/default`)
    // and `kernel-devel` (srctree `usr/src/linux-V-R`), as SUSE builds them.
    let suse = |rpm_release: &str, release_base: &str, uname_v: &str| {
        let src_dir = format!("usr/src/linux-{v}-{release_base}");
        let obj = stage.join(format!("suse-obj-{release_base}"));
        let src = stage.join(format!("suse-src-{release_base}"));
        objtree_as(
            &real,
            &obj,
            &OBJTREE,
            &format!("{v}-{release_base}-default"),
            uname_v,
        );
        fs::write(
            obj.join("Makefile"),
            format!(
                "# Automatically generated by /{src_dir}/scripts/mkmakefile: don't edit\ninclude /{src_dir}/Makefile\n"
            ),
        )
        .unwrap();
        copy_parts(&real, &src, &SRCTREE);
        let objpkg = rpmbuild(
            t.path(),
            &Spec {
                name: "kernel-default-devel",
                version: &v,
                release: rpm_release,
                arch: "x86_64",
                trees: vec![(obj, format!("{src_dir}-obj/x86_64/default"))],
                files: vec![],
                links: vec![],
                preamble: vec![format!("Requires: kernel-devel = {v}-{release_base}")],
            },
        );
        let srcpkg = rpmbuild(
            t.path(),
            &Spec {
                name: "kernel-devel",
                version: &v,
                release: rpm_release,
                arch: "noarch",
                trees: vec![(src, src_dir.clone())],
                files: vec![],
                links: vec![],
                preamble: vec![],
            },
        );
        (objpkg, srcpkg)
    };
    let (leap_obj, leap_src) = suse(
        "150600.23.25.1",
        "150600.23.25",
        "#1 SMP PREEMPT_DYNAMIC Tue Oct  8 06:08:59 UTC 2024 (d4aeb9a)",
    );
    yum_repo(
        &srv.join("opensuse/update/leap/15.6/sle"),
        &[(&leap_obj, "x86_64"), (&leap_src, "noarch")],
        &[],
        Some(&key),
    );
    let (tw_obj, tw_src) = suse(
        "1.1",
        "1",
        "#1 SMP PREEMPT_DYNAMIC Fri Nov  8 10:07:07 UTC 2024 (e7d4bb7)",
    );
    yum_repo(
        &srv.join("opensuse/tumbleweed/repo/oss"),
        &[(&tw_obj, "x86_64"), (&tw_src, "noarch")],
        &[],
        Some(&key),
    );
    let opensuse = global(
        "opensuse",
        &format!("{base}/opensuse"),
        &["--keyring", &keyring],
    );
    for (target, os) in [
        ("opensuse-leap-15.6", os("opensuse-leap", "15.6")),
        ("sles-15-sp6", os("sles", "15.6")),
        ("opensuse-tumbleweed", os("opensuse-tumbleweed", "20241112")),
    ] {
        let record = one(list(&opensuse, target), target);
        let (uname_r, uname_v) = uname_of(&record, &base, &srv, &unpacked(target));
        rows.push(Row {
            label: target.into(),
            record,
            os,
            uname_r,
            uname_v,
        });
    }

    // Single-tree RPMs: Photon's `linux-devel` (`usr/src/linux-headers-<uname -r>`; Photon
    // signs no metadata), and `kernel-devel` (`usr/src/kernels/<uname -r>`) of Alibaba Cloud
    // Linux 3, Amazon Linux 1 (a `mirror.list` naming `$basearch`) and Amazon Linux 2022.
    let single_rpm = |name: &str, rpm_release: &str, dir: &str, uname_r: &str, uname_v: &str| {
        let tree = stage.join(uname_r);
        objtree_as(
            &real,
            &tree,
            &[&OBJTREE[..], &SRCTREE[..]].concat(),
            uname_r,
            uname_v,
        );
        rpmbuild(
            t.path(),
            &Spec {
                name,
                version: &v,
                release: rpm_release,
                arch: "x86_64",
                trees: vec![(tree, format!("{dir}/{uname_r}"))],
                files: vec![],
                links: vec![],
                preamble: vec![],
            },
        )
    };
    let photon = single_rpm(
        "linux-devel",
        "1.ph5",
        "usr/src/linux-headers-",
        &format!("{v}-1.ph5"),
        "#1-photon SMP PREEMPT_DYNAMIC Tue Jun  4 04:37:27 UTC 2024",
    );
    yum_repo(
        &srv.join("photon/5.0/photon_updates_5.0_x86_64"),
        &[(&photon, "x86_64")],
        &[],
        None,
    );
    let alinux = single_rpm(
        "kernel-devel",
        "16.3.al8",
        "usr/src/kernels",
        &format!("{v}-16.3.al8.x86_64"),
        "#1 SMP Thu Jun 27 17:12:19 CST 2024",
    );
    yum_repo(
        &srv.join("alinux/3/updates/x86_64"),
        &[(&alinux, "Packages")],
        &[],
        Some(&key),
    );
    let amzn1 = single_rpm(
        "kernel-devel",
        "265.562.amzn1",
        "usr/src/kernels",
        &format!("{v}-265.562.amzn1.x86_64"),
        "#1 SMP Wed Jun 26 21:09:43 UTC 2024",
    );
    let amzn1_repo = "amzn1/2018.03/updates/e0ea2d9a2b8a/x86_64";
    fs::create_dir_all(srv.join("amzn1/latest/updates")).unwrap();
    fs::write(
        srv.join("amzn1/latest/updates/mirror.list"),
        format!("{base}/amzn1/2018.03/updates/e0ea2d9a2b8a/$basearch\n"),
    )
    .unwrap();
    yum_repo(
        &srv.join(amzn1_repo),
        &[(&amzn1, "Packages")],
        &[],
        Some(&key),
    );
    let al2022 = single_rpm(
        "kernel-devel",
        "14.106.amzn2022",
        "usr/src/kernels",
        &format!("{v}-14.106.amzn2022.x86_64"),
        "#1 SMP Wed Mar  2 18:53:09 UTC 2022",
    );
    let al2022_repo = "al2022/core/guids/6d1f0ee4b3b5c8b1/x86_64";
    fs::create_dir_all(srv.join("al2022/core/mirrors/latest/x86_64")).unwrap();
    fs::write(
        srv.join("al2022/core/mirrors/latest/x86_64/mirror.list"),
        format!("{base}/{al2022_repo}/\n"),
    )
    .unwrap();
    yum_repo(
        &srv.join(al2022_repo),
        &[(&al2022, "Packages")],
        &[],
        Some(&key),
    );
    for (target, mirror, url, extra, os) in [
        (
            "photon-5.0",
            "photon",
            format!("{base}/photon"),
            "--allow-unsigned",
            os("photon", "5.0"),
        ),
        (
            "alinux-3",
            "alinux",
            format!("{base}/alinux"),
            "--keyring",
            os("alinux", "3"),
        ),
        (
            "amazonlinux",
            "amazonlinux1",
            format!("{base}/amzn1"),
            "--keyring",
            os("amzn", "2018.03"),
        ),
        (
            "amazonlinux2022",
            "amazonlinux2022",
            format!("{base}/al2022/core/mirrors"),
            "--keyring",
            os("amzn", "2022"),
        ),
    ] {
        let extra: Vec<&str> = match extra {
            "--keyring" => vec!["--keyring", &keyring],
            other => vec![other],
        };
        let record = one(list(&global(mirror, &url, &extra), target), target);
        let (uname_r, uname_v) = uname_of(&record, &base, &srv, &unpacked(target));
        rows.push(Row {
            label: target.into(),
            record,
            os,
            uname_r,
            uname_v,
        });
    }

    // Arch Linux: `linux-headers` (`usr/lib/modules/<uname -r>/build`), a signed package in
    // `core`, indexed by repo-add. Its pkgrel is in `uname -r` (`localversion.10-pkgrel`), not
    // in `uname -v` (a clean build's `#1`).
    let arch_r = format!("{v}-arch1-2");
    let arch_root = stage.join("arch-pkg");
    objtree_as(
        &real,
        &arch_root.join(format!("usr/lib/modules/{arch_r}/build")),
        &[&OBJTREE[..], &SRCTREE[..]].concat(),
        &arch_r,
        "#1 SMP PREEMPT_DYNAMIC Sat, 16 Mar 2024 17:15:35 +0000",
    );
    let core = srv.join("arch/core/os/x86_64");
    fs::create_dir_all(&core).unwrap();
    let pkg = arch_package(
        &core,
        &arch_root,
        "linux-headers",
        "linux",
        &format!("{v}.arch1-2"),
        Some(&key),
    );
    repo_add(&core, "core", "gz", &[pkg]);
    let record = one(
        list(
            &global("arch", &format!("{base}/arch"), &["--keyring", &keyring]),
            "arch",
        ),
        "arch",
    );
    let (uname_r, uname_v) = uname_of(&record, &base, &srv, &unpacked("arch"));
    rows.push(Row {
        label: "arch".into(),
        record,
        os: OsRelease {
            id: "arch",
            version_id: None,
            variant_id: None,
            etc_version: None,
        },
        uname_r,
        uname_v,
    });

    // Bottlerocket: the kmod kit of a variant, listed by its signed TUF repository; `uname -r`
    // is the plain upstream version.
    let (variant, br_version) = ("aws-k8s-1.33", "1.20.0");
    let kit = format!("{variant}-x86_64-kmod-kit-v{br_version}");
    let kit_stage = stage.join("kit");
    objtree_as(
        &real,
        &kit_stage.join(&kit).join("kernel-devel"),
        &[&OBJTREE[..], &SRCTREE[..]].concat(),
        &v,
        "#1 SMP Thu Oct 10 19:21:57 UTC 2024",
    );
    fs::create_dir_all(kit_stage.join(&kit).join("toolchain/usr/bin")).unwrap();
    let kit_file = t.path().join(format!("{kit}.tar.xz"));
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C '{}' -cf - '{kit}' | xz -0 > '{}'",
            kit_stage.display(),
            kit_file.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let root_json = tuf_repo(
        &t.path().join("tuf-keys"),
        &srv.join(format!("bottlerocket/2020-07-07/{variant}/x86_64")),
        &srv.join("bottlerocket/targets"),
        std::slice::from_ref(&kit_file),
    );
    let trusted = t.path().join("bottlerocket-root.json");
    fs::copy(&root_json, &trusted).unwrap();
    let record = one(
        list(
            &global(
                "bottlerocket",
                &format!("{base}/bottlerocket"),
                &["--keyring", trusted.to_str().unwrap()],
            ),
            "bottlerocket",
        ),
        "bottlerocket",
    );
    let (uname_r, uname_v) = uname_of(&record, &base, &srv, &unpacked("bottlerocket"));
    rows.push(Row {
        label: "bottlerocket".into(),
        record,
        os: OsRelease {
            id: "bottlerocket",
            version_id: Some(br_version),
            variant_id: Some(variant),
            etc_version: None,
        },
        uname_r,
        uname_v,
    });

    // Kernels built from source, their `.config` a real one (Debian's) as each distro's build
    // of its kernel states it. `uname -r` is what that build makes: the config's version, then
    // EXTRAVERSION (Flatcar's `-flatcar`), then CONFIG_LOCALVERSION (Talos' `-talos`).
    let real_config = fs::read_to_string(real.join(".config")).unwrap();
    struct Source {
        target: &'static str,
        kernel: &'static str,
        extraversion: &'static str,
        localversion: &'static str,
        /// kernel-crawler's `kernelrelease` and `kernelversion` for it.
        kernelrelease: String,
        kernelversion: &'static str,
        os: OsRelease,
        uname_v: &'static str,
    }
    let sources = [
        // kernel-crawler's talos.py: Pkgfile's `linux_version` + "-talos", "1_v" + the tag.
        Source {
            target: "talos",
            kernel: "6.6.60",
            extraversion: "",
            localversion: "-talos",
            kernelrelease: format!("{}-talos", "6.6.60"),
            kernelversion: "1_v1.8.3",
            os: os("talos", "v1.8.3"),
            uname_v: "#1 SMP Tue Nov 12 12:54:46 UTC 2024",
        },
        // minikube.py: BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE, "1_" + the tag; the ISO is
        // buildroot by os-release and minikube by /etc/VERSION.
        Source {
            target: "minikube",
            kernel: "5.10.207",
            extraversion: "",
            localversion: "",
            kernelrelease: "5.10.207".into(),
            kernelversion: "1_1.34.0",
            os: OsRelease {
                id: "buildroot",
                version_id: Some("2023.02.9"),
                variant_id: None,
                etc_version: Some("v1.34.0\n"),
            },
            uname_v: "#1 SMP Mon Sep 16 18:53:55 UTC 2024",
        },
        // flatcar.py: the release folder's name, "1".
        Source {
            target: "flatcar",
            kernel: "6.6.60",
            extraversion: "-flatcar",
            localversion: "",
            kernelrelease: "3975.2.2".into(),
            kernelversion: "1",
            os: os("flatcar", "3975.2.2"),
            uname_v: "#1 SMP PREEMPT_DYNAMIC Mon Nov 11 17:29:15 -00 2024",
        },
    ];
    let mut list_json = serde_json::Map::new();
    for s in &sources {
        use base64::Engine;
        let config = config_for(&real_config, s.kernel, s.localversion);
        list_json.insert(
            s.target.into(),
            serde_json::json!([{
                "kernelversion": s.kernelversion,
                "kernelrelease": s.kernelrelease,
                "target": s.target,
                "kernelconfigdata": base64::engine::general_purpose::STANDARD.encode(&config),
            }]),
        );
    }
    let crawled = probeforge::repo::crawler::read(
        &serde_json::Value::Object(list_json).to_string(),
        probeforge::Arch::X86_64,
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(crawled.len(), sources.len(), "{crawled:#?}");
    for s in &sources {
        let record = crawled
            .iter()
            .find(|r| r.target == s.target)
            .unwrap_or_else(|| panic!("no {} record: {crawled:#?}", s.target))
            .clone();
        rows.push(Row {
            label: format!("{} (kernel-crawler list)", s.target),
            record,
            os: s.os,
            uname_r: format!("{}{}{}", s.kernel, s.extraversion, s.localversion),
            uname_v: s.uname_v.into(),
        });
    }
    // Flatcar's own release server: a channel's directory index, each release's kernel config.
    let flatcar = &sources[2];
    for channel in ["stable", "beta", "alpha"] {
        let dir = srv.join(format!("flatcar/{channel}/amd64-usr"));
        fs::create_dir_all(&dir).unwrap();
        let mut index =
            String::from(r#"<html><body><a href="../">../</a><a href="./current/">current/</a>"#);
        if channel == "stable" {
            let release = &flatcar.kernelrelease;
            index += &format!(r#"<a href="./{release}/">{release}/</a>"#);
            fs::create_dir_all(dir.join(release)).unwrap();
            fs::write(
                dir.join(release)
                    .join("flatcar_production_image_kernel_config.txt"),
                config_for(&real_config, flatcar.kernel, flatcar.localversion),
            )
            .unwrap();
        }
        fs::write(dir.join("index.xml"), index + "</body></html>\n").unwrap();
    }
    let record = one(
        list(
            &global(
                "flatcar",
                &format!("{base}/flatcar/{{channel}}"),
                &["--allow-unsigned"],
            ),
            "flatcar",
        ),
        "flatcar",
    );
    rows.push(Row {
        label: "flatcar (release server)".into(),
        record,
        os: flatcar.os,
        uname_r: format!(
            "{}{}{}",
            flatcar.kernel, flatcar.extraversion, flatcar.localversion
        ),
        uname_v: flatcar.uname_v.into(),
    });

    // The table.
    let mut report = String::new();
    let mut differ = Vec::new();
    for r in &rows {
        let (published, asked) = r.names();
        let same = published == asked;
        report += &format!(
            "{} {:<30} published {published}\n{:36}loader    {asked}   (uname -r {}, uname -v {:?})\n",
            if same { "ok  " } else { "DIFF" },
            r.label,
            "",
            r.uname_r,
            r.uname_v
        );
        if !same {
            differ.push(r.label.clone());
        }
    }
    eprintln!("{report}({} rows, {:.1?})", rows.len(), started.elapsed());
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "opensuse-leap-15.6",
            "sles-15-sp6",
            "opensuse-tumbleweed",
            "photon-5.0",
            "alinux-3",
            "amazonlinux",
            "amazonlinux2022",
            "arch",
            "bottlerocket",
            "talos (kernel-crawler list)",
            "minikube (kernel-crawler list)",
            "flatcar (kernel-crawler list)",
            "flatcar (release server)",
        ]
    );
    assert!(differ.is_empty(), "names differ for {differ:?}:\n{report}");
}

/// Issue 31 item 1: `validate --kernel-release` takes any name of the kernel the probe is for
/// and says which kernel a name other than `uname -r` resolved to: the header package and its
/// `.deb` file name offline, Falco's file release through a target's listing; Falco's file
/// release without one is a mismatch (the probe states `uname -r`), an unknown name exit 2.
#[test]
fn validate_takes_every_name_of_the_kernel_and_says_which_it_resolved() {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let t = tmpdir();
    let (code, out, err) = run(&build_args(
        &header_files(&k, &files),
        &libs_0_20_0(),
        t.path(),
    ));
    assert_eq!(code, 0, "{err}\n{out}");
    let probe = t.path().join(falco_file(&k, "o"));
    assert!(probe.is_file(), "{}: {err}", probe.display());
    let headers = format!("linux-headers-{}", k.release);
    let deb = k
        .packages
        .iter()
        .find(|p| p.name == headers)
        .and_then(|p| p.url.rsplit('/').next())
        .unwrap()
        .to_owned();
    let file_release = k.file_release();
    assert_ne!(file_release, k.release);
    let resolved = |name: &str, form: &str| format!("`{name}` ({form}) is kernel `{}`", k.release);
    let target = ["--target", "debian-bookworm", "--arch", "x86_64"];
    let rows: Vec<(Vec<&str>, i32, Option<String>)> = vec![
        (vec![&k.release], 0, None),
        (
            vec![&headers],
            0,
            Some(resolved(&headers, "header package")),
        ),
        (vec![&deb], 0, Some(resolved(&deb, "header package"))),
        (
            [&[file_release.as_str()][..], &target[..]].concat(),
            0,
            Some(format!(
                "{} in `debian-bookworm`",
                resolved(&file_release, "Falco's file release")
            )),
        ),
        ([&[k.release.as_str()][..], &target[..]].concat(), 0, None),
        // Without a listing, Falco's file release is not what the probe states.
        (vec![&file_release], 1, Some("FAIL kernel-version".into())),
        (
            [&["6.1.999-1-amd64"][..], &target[..]].concat(),
            2,
            Some("no kernel `6.1.999-1-amd64` in `debian-bookworm`".into()),
        ),
    ];
    for (args, want_code, said) in rows {
        let mut a = vec!["validate", probe.to_str().unwrap(), "--kernel-release"];
        a.extend(&args);
        let (code, out, err) = run(&a);
        assert_eq!(code, want_code, "{args:?}: {out}\n{err}");
        let both = format!("{out}{err}");
        match said {
            Some(s) => assert!(both.contains(&s), "{args:?}: no `{s}` in\n{both}"),
            None => assert!(!both.contains(") is kernel `"), "{args:?}: {both}"),
        }
    }
}
