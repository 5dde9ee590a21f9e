//! Falco's file names as other projects compute them, transcribed by hand from their sources
//! (issue 32 item 3): never from probeforge. Two references:
//!
//! - falcoctl, the loader Falco runs on a node (`falcoctl driver`): its test cases in
//!   `pkg/driver/distro/*_test.go` and the rule `toFilename` in `pkg/driver/distro/distro.go`
//!   (`falco_<distro>_<FixupKernel(kr)>_<kernelversion>.o`), falcosecurity/falcoctl at commit
//!   71a05e34cea07e9b71196e2bb98d43988793667d (the distro tests last changed in 0a7a0c10).
//! - kernel-crawler, which lists what Falco's repository builds (`to_driverkit_config` of each
//!   `kernel_crawler/<distro>.py`), falcosecurity/kernel-crawler at commit
//!   464fcb6ac375244b50fcc33d4a170b5a906cc629.
//!
//! Each row gives what a node tells the loader (os-release `ID`, `VERSION_ID`, `VARIANT_ID`,
//! minikube's `/etc/VERSION`, `uname -r`, `uname -v`) and the file the reference names.
//! Pure and offline.

use probeforge::kernel::Arch;
use probeforge::loader::{self, System};
use probeforge::pipeline::Driver;
use probeforge::repo::{apt, tuf, KernelRecord, PackageRef};

/// One node as falcoctl sees it, and the file falcoctl downloads for it.
struct Node {
    /// `<file>:<test>` in falcoctl (or the rule, where its test leaves a part empty).
    cite: &'static str,
    id: &'static str,
    version_id: Option<&'static str>,
    variant_id: Option<&'static str>,
    etc_version: Option<&'static str>,
    uname_r: &'static str,
    uname_v: &'static str,
    want: &'static str,
}

const fn node(
    cite: &'static str,
    id: &'static str,
    uname_r: &'static str,
    uname_v: &'static str,
    want: &'static str,
) -> Node {
    Node {
        cite,
        id,
        version_id: None,
        variant_id: None,
        etc_version: None,
        uname_r,
        uname_v,
        want,
    }
}

fn falcoctl_rows() -> Vec<Node> {
    const DEB: &str = "debian_test.go:TestDistroDebianFixup";
    const UBU: &str = "ubuntu_test.go:TestDistroUbuntuInitFixup";
    const GEN: &str = "generic_test.go:TestDistroGeneric";
    vec![
        // Debian: the first `X.Y.Z-N` of uname -v, the `(rt-|cloud-|)(amd64|arm64)` of uname -r.
        node(
            DEB,
            "debian",
            "5.10.0-0.deb10.22-rt-amd64",
            "#1 SMP PREEMPT_DYNAMIC Debian 5.10.178-3",
            "falco_debian_5.10.178-3-rt-amd64_1.o",
        ),
        node(
            DEB,
            "debian",
            "6.1.0-13-amd64",
            "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)",
            "falco_debian_6.1.55-1-amd64_1.o",
        ),
        node(
            DEB,
            "debian",
            "5.10.0-0.deb10.22-amd64",
            "#1 SMP PREEMPT_DYNAMIC",
            "falco_debian_5.10.0-0.deb10.22-amd64_1.o",
        ),
        node(
            DEB,
            "debian",
            "5.10.0-0",
            "#39 SMP PREEMPT_DYNAMIC",
            "falco_debian_5.10.0-0_39.o",
        ),
        node(
            DEB,
            "debian",
            "6.5.3-1~bpo12+1-rt-amd64",
            "#1 SMP PREEMPT_DYNAMIC",
            "falco_debian_6.5.3-1~bpo12+1-rt-amd64_1.o",
        ),
        // No `#N`: the generic rule leaves uname -v as it is.
        node(
            DEB,
            "debian",
            "6.5.3-1~bpo12+1-rt-amd64",
            "malformed",
            "falco_debian_6.5.3-1~bpo12+1-rt-amd64_malformed.o",
        ),
        // Ubuntu: the flavour of uname -r's extraversion, uname -v's first word without
        // `#` and `-Ubuntu`.
        node(
            UBU,
            "ubuntu",
            "5.0.0-1028-aws-5.0",
            "#26~22.04.1-Ubuntu SMP Mon Apr 24 01:58:15 UTC 2023",
            "falco_ubuntu-aws_5.0.0-1028-aws-5.0_26~22.04.1.o",
        ),
        node(
            UBU,
            "ubuntu",
            "5.0.0-1028-aws-5.0",
            "#26",
            "falco_ubuntu-aws_5.0.0-1028-aws-5.0_26.o",
        ),
        node(
            UBU,
            "ubuntu",
            "5.0.0-1028-aws-5.0",
            "#26-Ubuntu",
            "falco_ubuntu-aws_5.0.0-1028-aws-5.0_26.o",
        ),
        node(
            UBU,
            "ubuntu",
            "5.0.0",
            "#26",
            "falco_ubuntu-generic_5.0.0_26.o",
        ),
        node(
            UBU,
            "ubuntu",
            "6.5.0-9-lowlatency",
            "#9.1",
            "falco_ubuntu-lowlatency_6.5.0-9-lowlatency_9.1.o",
        ),
        node(
            UBU,
            "ubuntu",
            "6.5.0-1008-gcp",
            "#8",
            "falco_ubuntu-gcp_6.5.0-1008-gcp_8.o",
        ),
        node(
            UBU,
            "ubuntu",
            "6.5.0-1008-aws",
            "#8~22.04.1",
            "falco_ubuntu-aws_6.5.0-1008-aws_8~22.04.1.o",
        ),
        // Every other ID: itself, uname -r, the first number after `#` in uname -v.
        node(
            GEN,
            "photon",
            "4.19.283-3.ph3",
            "#1-photon SMP Fri Jun 16 02:25:27 UTC 2023",
            "falco_photon_4.19.283-3.ph3_1.o",
        ),
        node(
            GEN,
            "arch",
            "6.7.2-arch1-2",
            "#1 SMP PREEMPT_DYNAMIC Wed, 31 Jan 2024 09:22:15 +0000",
            "falco_arch_6.7.2-arch1-2_1.o",
        ),
        node(
            GEN,
            "arch",
            "6.7.2-arch1-2",
            "#231asfa #rf3f",
            "falco_arch_6.7.2-arch1-2_231.o",
        ),
        node(
            GEN,
            "arch",
            "6.7.2-arch1-2",
            "#231asfa234",
            "falco_arch_6.7.2-arch1-2_231.o",
        ),
        // distro_test.go:TestDiscoverDistro maps `centos`, `ol` and an unknown `foo` to the
        // generic rule under their own ID (uname -r from its `krInput`).
        node(
            "distro_test.go:TestDiscoverDistro",
            "centos",
            "5.10.0",
            "#1 SMP",
            "falco_centos_5.10.0_1.o",
        ),
        node(
            "distro_test.go:TestDiscoverDistro",
            "ol",
            "5.10.0-2047.510.5.5.el7uek.x86_64",
            "#2 SMP",
            "falco_ol_5.10.0-2047.510.5.5.el7uek.x86_64_2.o",
        ),
        node(
            "distro_test.go:TestDiscoverDistro",
            "foo",
            "5.10.0",
            "#1 SMP",
            "falco_foo_5.10.0_1.o",
        ),
        // The ID is lower-cased (distro.go:getOSReleaseDistro).
        node(
            "distro.go:getOSReleaseDistro",
            "RHEL",
            "5.14.0-427.13.1.el9_4.x86_64",
            "#1 SMP PREEMPT_DYNAMIC",
            "falco_rhel_5.14.0-427.13.1.el9_4.x86_64_1.o",
        ),
        // cos.go keeps the generic name (BUILD_ID only picks the build's sources).
        node(
            "cos_test.go:TestDistroCosInit, cos.go",
            "cos",
            "6.1.100+",
            "#1 SMP PREEMPT_DYNAMIC Sat Aug 17 2024",
            "falco_cos_6.1.100+_1.o",
        ),
        // Amazon Linux: the target by VERSION_ID, otherwise generic.
        Node {
            version_id: Some(""),
            ..node(
                "amzn_test.go:TestDistroAmznInit",
                "amzn",
                "4.14.355-275.570.amzn1.x86_64",
                "#1 SMP",
                "falco_amazonlinux_4.14.355-275.570.amzn1.x86_64_1.o",
            )
        },
        Node {
            version_id: Some("2"),
            ..node(
                "amzn_test.go:TestDistroAmznInit",
                "amzn",
                "5.10.184-175.731.amzn2.x86_64",
                "#1 SMP",
                "falco_amazonlinux2_5.10.184-175.731.amzn2.x86_64_1.o",
            )
        },
        Node {
            version_id: Some("2022"),
            ..node(
                "amzn_test.go:TestDistroAmznInit",
                "amzn",
                "5.15.43-20.123.amzn2022.x86_64",
                "#1 SMP",
                "falco_amazonlinux2022_5.15.43-20.123.amzn2022.x86_64_1.o",
            )
        },
        Node {
            version_id: Some("2023"),
            ..node(
                "amzn_test.go:TestDistroAmznInit",
                "amzn",
                "6.1.97-104.177.amzn2023.x86_64",
                "#1 SMP PREEMPT_DYNAMIC",
                "falco_amazonlinux2023_6.1.97-104.177.amzn2023.x86_64_1.o",
            )
        },
        // Flatcar: the release is VERSION_ID, the kernel version the generic `#N`.
        Node {
            version_id: Some("3794.0.0"),
            ..node(
                "flatcar_test.go:TestDistroFlatcarFixup",
                "flatcar",
                "6.1.62-flatcar",
                "#1 SMP PREEMPT_DYNAMIC Mon Nov 20 22:57:52 -00 2023",
                "falco_flatcar_3794.0.0_1.o",
            )
        },
        Node {
            version_id: Some("3794.0.0"),
            ..node(
                "flatcar_test.go:TestDistroFlatcarFixup",
                "flatcar",
                "6.1.62-flatcar",
                "#27 SMP PREEMPT_DYNAMIC Mon Nov 20 22:57:52 -00 2023",
                "falco_flatcar_3794.0.0_27.o",
            )
        },
        // Talos: kernel version `1_<VERSION_ID>`.
        Node {
            version_id: Some("1.11.0"),
            ..node(
                "talos_test.go:TestDistroTalosInitFixup",
                "talos",
                "6.12.48-talos",
                "#1 SMP",
                "falco_talos_6.12.48-talos_1_1.11.0.o",
            )
        },
        Node {
            version_id: Some("1.17.0"),
            ..node(
                "talos_test.go:TestDistroTalosInitFixup",
                "talos",
                "6.18.1-talos",
                "#1 SMP",
                "falco_talos_6.18.1-talos_1_1.17.0.o",
            )
        },
        // Bottlerocket: `1_<VERSION_ID>-<first word of VARIANT_ID>`.
        Node {
            version_id: Some("1.11.0"),
            variant_id: Some("aws-k8s-1.15"),
            ..node(
                "bottlerocket_test.go:TestDistroBottlerocketFixup",
                "bottlerocket",
                "5.10.199",
                "#1 SMP",
                "falco_bottlerocket_5.10.199_1_1.11.0-aws.o",
            )
        },
        Node {
            version_id: Some("1.17.0"),
            variant_id: Some("aws"),
            ..node(
                "bottlerocket_test.go:TestDistroBottlerocketFixup",
                "bottlerocket",
                "6.1.61",
                "#1 SMP",
                "falco_bottlerocket_6.1.61_1_1.17.0-aws.o",
            )
        },
        // minikube: `/etc/VERSION` wins over os-release (its ISO says `buildroot`); kernel
        // version `1_<x.y.z of /etc/VERSION>`.
        Node {
            etc_version: Some("v1.26.0-1655407986-14197"),
            ..node(
                "minikube_test.go:TestDistroMinikubeInitFixup",
                "buildroot",
                "5.10.57",
                "#1 SMP",
                "falco_minikube_5.10.57_1_1.26.0.o",
            )
        },
    ]
}

fn loader_file(n: &Node) -> String {
    let name = loader::name(&System {
        os_id: n.id,
        version_id: n.version_id,
        variant_id: n.variant_id,
        etc_version: n.etc_version,
        uname_r: n.uname_r,
        uname_v: n.uname_v,
    });
    Driver::Ebpf.file_name(&name.target_id, &name.kernel_release, &name.kernel_version)
}

#[test]
fn the_loader_asks_for_what_falcoctl_downloads() {
    let wrong: Vec<String> = falcoctl_rows()
        .iter()
        .filter_map(|n| {
            let got = loader_file(n);
            (got != n.want).then(|| {
                format!(
                    "{} ({} / {} / {}): probeforge says `{got}`, falcoctl `{}`",
                    n.cite, n.id, n.uname_r, n.uname_v, n.want
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A kernel as probeforge lists it: its header package (Debian's carries the version Falco's
/// repository names the file by).
fn listed(
    target_id: &str,
    release: &str,
    kernel_version: &str,
    pkg: Option<(&str, &str)>,
) -> KernelRecord {
    KernelRecord {
        target: target_id.into(),
        target_id: target_id.into(),
        release: release.into(),
        kernel_version: kernel_version.into(),
        arch: Arch::X86_64,
        origin: "test".into(),
        packages: pkg
            .map(|(name, version)| PackageRef {
                name: name.into(),
                version: version.into(),
                url: format!("pool/{name}_{version}.deb"),
                size: 1,
                sha256: String::new(),
            })
            .into_iter()
            .collect(),
        unsigned_metadata: false,
    }
}

fn published(k: &KernelRecord) -> String {
    Driver::Ebpf.file_name(&k.target_id, &k.file_release(), &k.kernel_version)
}

/// kernel-crawler's `kernelrelease` and `kernelversion` for a kernel, against the file
/// probeforge publishes for it; then the loader's name on that kernel's node.
#[test]
fn published_names_are_kernel_crawlers_and_the_loader_finds_them() {
    // debian.py:to_driverkit_config: `<package version>-<flavour>` (`release + "-" + arch`,
    // `-rt-`, `-cloud-`), target `debian`, kernelversion 1 (repo.DriverKitConfig's default).
    let native = listed(
        "debian",
        "6.1.0-13-amd64",
        "1",
        Some(("linux-headers-6.1.0-13-amd64", "6.1.55-1")),
    );
    assert_eq!(published(&native), "falco_debian_6.1.55-1-amd64_1.o");
    let cloud = listed(
        "debian",
        "6.1.0-13-cloud-amd64",
        "1",
        Some(("linux-headers-6.1.0-13-cloud-amd64", "6.1.55-1")),
    );
    assert_eq!(published(&cloud), "falco_debian_6.1.55-1-cloud-amd64_1.o");
    // On a node running it, falcoctl asks for exactly that (debian_test.go's second case).
    let on_node = node(
        "debian_test.go",
        "debian",
        "6.1.0-13-amd64",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)",
        "",
    );
    assert_eq!(loader_file(&on_node), published(&native));

    // A backport: kernel-crawler names it by its whole version; falcoctl asks for the first
    // `X.Y.Z-N` only. The two references disagree: probeforge publishes kernel-crawler's
    // name and, where no other kernel claims it, the loader's as an alias (issue 31 item 5).
    let bpo = listed(
        "debian",
        "7.3.4+deb13-amd64",
        "1",
        Some(("linux-headers-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1")),
    );
    assert_eq!(published(&bpo), "falco_debian_7.3.4-1~bpo13+1-amd64_1.o");
    let on_bpo = node(
        "debian.go:FixupKernel",
        "debian",
        "7.3.4+deb13-amd64",
        "#1 SMP PREEMPT_DYNAMIC Debian 7.3.4-1~bpo13+1 (2026-11-15)",
        "",
    );
    let asked = loader_file(&on_bpo);
    assert_eq!(asked, "falco_debian_7.3.4-1-amd64_1.o");
    assert_eq!(
        Driver::Ebpf.file_name(
            "debian",
            &loader::debian_alias(&bpo.file_release()).expect("a backport has an alias"),
            "1"
        ),
        asked
    );

    // ubuntu.py: target `ubuntu-<flavour>`, kernelrelease `<krel>-<flavour>`, kernelversion
    // the package version's update number (`6.8.0-45.45` -> `45`); falcoctl on that node
    // (`#45-Ubuntu SMP ...`) asks for the same.
    assert_eq!(
        apt::ubuntu_kernel_version("6.8.0-45.45").as_deref(),
        Some("45")
    );
    assert_eq!(
        apt::ubuntu_kernel_version("5.19.0-1028.29~22.04.1").as_deref(),
        Some("29~22.04.1")
    );
    let ubuntu = listed("ubuntu-aws", "5.19.0-1028-aws", "29~22.04.1", None);
    assert_eq!(
        published(&ubuntu),
        "falco_ubuntu-aws_5.19.0-1028-aws_29~22.04.1.o"
    );
    assert_eq!(
        loader_file(&node(
            "ubuntu.go",
            "ubuntu",
            "5.19.0-1028-aws",
            "#29~22.04.1-Ubuntu SMP Fri Jun 2 2023",
            ""
        )),
        published(&ubuntu)
    );

    // flatcar.py: kernelrelease the Flatcar release, kernelversion 1.
    let mut flatcar = listed("flatcar", "6.1.62-flatcar", "1", None);
    flatcar.packages.push(PackageRef {
        name: probeforge::repo::kernel_org::CONFIG.into(),
        version: "3794.0.0".into(),
        url: String::new(),
        size: 0,
        sha256: String::new(),
    });
    assert_eq!(published(&flatcar), "falco_flatcar_3794.0.0_1.o");
    let on_flatcar = Node {
        version_id: Some("3794.0.0"),
        ..node(
            "flatcar.go",
            "flatcar",
            "6.1.62-flatcar",
            "#1 SMP PREEMPT_DYNAMIC",
            "",
        )
    };
    assert_eq!(loader_file(&on_flatcar), published(&flatcar));
    // photon.py strips the `.<arch>` its packages carry: kernelrelease is uname -r.
    let photon = listed("photon", "4.19.283-3.ph3", "1", None);
    assert_eq!(published(&photon), "falco_photon_4.19.283-3.ph3_1.o");
    // amazonlinux.py: target `amazonlinux2` / `2022` / `2023`, kernelrelease uname -r.
    let al2023 = listed(
        "amazonlinux2023",
        "6.1.97-104.177.amzn2023.x86_64",
        "1",
        None,
    );
    assert_eq!(
        published(&al2023),
        "falco_amazonlinux2023_6.1.97-104.177.amzn2023.x86_64_1.o"
    );
    // Bottlerocket (driverkit's and falcoctl's `1_<version>-<variant family>`).
    assert_eq!(
        tuf::falco_kernel_version("aws-k8s-1.15", "1.11.0"),
        "1_1.11.0-aws"
    );
    assert_eq!(tuf::falco_kernel_version("aws", "1.17.0"), "1_1.17.0-aws");
}

/// Where the two references disagree with each other, probeforge follows the loader: a file
/// only helps if the loader asks for it. Recorded here so a change on either side is seen.
#[test]
fn where_kernel_crawler_and_falcoctl_disagree_probeforge_follows_the_loader() {
    // opensuse.py names every openSUSE kernel `target = 'opensuse'`; falcoctl uses os-release's
    // ID verbatim (`opensuse-leap`, `opensuse-tumbleweed`, `sles`: distro.go maps no such ID),
    // so `falco_opensuse_*` files are never asked for.
    let leap = node(
        "generic.go",
        "opensuse-leap",
        "5.14.21-150500.55.39-default",
        "#1 SMP PREEMPT_DYNAMIC Wed Nov 15 2023 (a1b2c3d)",
        "",
    );
    assert_eq!(
        loader_file(&leap),
        "falco_opensuse-leap_5.14.21-150500.55.39-default_1.o"
    );
    let listed_leap = listed("opensuse-leap", "5.14.21-150500.55.39-default", "1", None);
    assert_eq!(published(&listed_leap), loader_file(&leap));
    // redhat.py names RHEL `redhat`; falcoctl's rhel.go registers `rhel` (os-release's ID).
    let rhel = node("rhel.go", "rhel", "5.14.0-427.el9.x86_64", "#1 SMP", "");
    assert_eq!(loader_file(&rhel), "falco_rhel_5.14.0-427.el9.x86_64_1.o");
}
