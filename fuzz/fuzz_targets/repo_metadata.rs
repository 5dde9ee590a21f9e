//! Repository metadata parsers: APT Release/Packages, YUM repomd/primary, mirror lists,
//! kernel-crawler lists, APT sources. Any input: a result or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use probeforge::repo::{apt, crawler, sources, yum};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = apt::parse_release(&text);
    let pk = apt::parse_packages(&text, |_| true);
    for p in &pk {
        let _ = apt::closure(p, &pk);
        let _ = apt::is_flavour_headers(p);
    }
    let _ = apt::parse_depends(&text);
    if let Some((a, b)) = text.split_once('\n') {
        let _ = apt::compare_versions(a, b);
    }
    let _ = yum::parse_repomd(data);
    if let Ok(rpms) = yum::parse_primary(data, |_| true) {
        // RHEL's rule and openSUSE's (a srctree package and a `{release_base}` template).
        let suse = yum::HeaderRule {
            packages: [("kernel-default-devel".to_owned(), "-default".to_owned())].into(),
            release: "{version}-{release_base}{flavour}".into(),
            srctree_package: Some("kernel-devel".into()),
        };
        for rule in [yum::HeaderRule::default(), suse] {
            let _ = rule.header_sets(&rpms, "x86_64");
        }
    }
    let _ = yum::parse_mirror_list(&text);
    let _ = yum::mirror_list_base(&text, "x86_64");
    let _ = crawler::read(&text, probeforge::Arch::X86_64);
    let _ = sources::mirrors(&sources::parse(&text));
});
