//! Values computed once: a build of a listed kernel hashes each header package exactly once
//! (when its cache entry is checked on fetch, against the digest the signed listing gives);
//! staging and the compile-cache key take that digest instead of reading the package again.
//! Alone in its binary: the count is per process.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use probeforge::kernel::Arch;
use probeforge::session::{KernelSpec, Options, Session};

#[test]
fn each_header_package_is_hashed_once_per_build() {
    // Warm the cache, so the build below finds every package there (a cache hit is read and
    // checked; a download is hashed while it streams and never read again).
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    let before = probeforge::base::files_hashed();

    let session = Session::open(&Options {
        cache_dir: Some(cache_dir()),
        ..Options::default()
    })
    .unwrap();
    let got = session
        .kernel(&KernelSpec {
            target: Some("debian-bookworm".into()),
            from: None,
            kernel: k.release.clone(),
            arch: Some(Arch::X86_64),
            with_kbuild: false,
        })
        .unwrap();
    assert_eq!(got.headers.len(), got.header_digests().len());
    assert!(
        got.header_digests().iter().all(Option::is_some),
        "a signed listing gives every digest"
    );
    let (driver, _) = session
        .driver(Some(&libs_0_20_0()), Some("8.0.0+driver"), None)
        .unwrap();
    let tc = probeforge::toolchain::Toolchain::find(None, None).expect("clang and llc");
    let t = tmpdir();
    let req = probeforge::pipeline::Request {
        headers: got.headers.clone(),
        kernel_release: Some(got.record.release.clone()),
        driver_source: driver,
        driver_version: Some("8.0.0+driver".into()),
        target_id: Some(got.record.target_id.clone()),
        kernel_version: Some(got.record.kernel_version.clone()),
        arch: Some(Arch::X86_64),
        out_dir: t.path().join("out"),
        scratch: Some(t.path().to_owned()),
        driver_digest: None,
        header_digests: got.header_digests(),
        file_release: None,
    };
    let prepared =
        probeforge::pipeline::prepare(&req, &tc, &probeforge::patch::Catalog::embedded()).unwrap();
    let key = prepared.cache_key(&tc);
    assert_eq!(key.len(), 64);

    let after = probeforge::base::files_hashed();
    let delta =
        |p: &PathBuf| after.get(p).copied().unwrap_or(0) - before.get(p).copied().unwrap_or(0);
    let per_header: BTreeMap<&PathBuf, u32> = got.headers.iter().map(|h| (h, delta(h))).collect();
    assert!(!per_header.is_empty());
    assert!(
        per_header.values().all(|&n| n == 1),
        "each header package hashed once in a build: {per_header:#?}"
    );

    // The same build without the listing's digests hashes each package a second time: the
    // count above is the one the known digests save, not a counter that never moves.
    let before = probeforge::base::files_hashed();
    let unknown = probeforge::pipeline::Request {
        header_digests: Vec::new(),
        ..req
    };
    let again =
        probeforge::pipeline::prepare(&unknown, &tc, &probeforge::patch::Catalog::embedded())
            .unwrap();
    assert_eq!(again.cache_key(&tc), key, "a known digest is the digest");
    let after = probeforge::base::files_hashed();
    for h in &got.headers {
        assert_eq!(
            after[h] - before.get(h).copied().unwrap_or(0),
            1,
            "{}",
            h.display()
        );
    }
}
