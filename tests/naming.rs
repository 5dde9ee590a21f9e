//! The table: every kernel is published under the name Falco's loader computes on that
//! kernel's system (`probeforge::loader`, falcoctl's rules: os-release, `uname -r`, `uname -v`),
//! for every target. Debian's rows are real kernels picked from the live index, with the
//! `uname -v` their own headers state.

mod common;

use common::*;
use probeforge::kernel::Arch;
use probeforge::loader::{self, System};

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
