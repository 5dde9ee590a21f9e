//! A signed APT mirror on loopback that changes while it is watched: real Debian header
//! packages put in a pool, indexed by dpkg-scanpackages, released by apt-ftparchive and
//! clear-signed by a test key, suite by suite (tests/watch.rs, benches/watch.rs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use probeforge::kernel::Arch;
use probeforge::repo::KernelRecord;

use super::gpg::TestKey;
use super::lister;

/// The two newest plain 6.1 amd64 kernels of bookworm whose every package (headers, common,
/// kbuild) the mirror serves, newest first, with their files.
pub fn two_kernels() -> Vec<(KernelRecord, Vec<PathBuf>)> {
    let mut all: Vec<KernelRecord> = lister()
        .list("debian-bookworm", &[Arch::X86_64])
        .expect("listing debian-bookworm")
        .into_iter()
        .filter(|k| {
            k.release.starts_with("6.1.")
                && k.release.ends_with("-amd64")
                && !k.release.contains("-cloud-")
                && !k.release.contains("-rt-")
        })
        .collect();
    all.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
    });
    let mut out = Vec::new();
    for k in all {
        match lister().fetch(&k) {
            Ok(files) => out.push((k, files)),
            Err(probeforge::repo::Error::Unavailable { .. }) => continue,
            Err(e) => panic!("fetch {}: {e:#?}", k.release),
        }
        if out.len() == 2 {
            return out;
        }
    }
    panic!("fewer than two bookworm 6.1 amd64 kernels can be downloaded");
}

/// Puts a kernel's packages in the loopback pool.
pub fn add_to_pool(root: &Path, k: &KernelRecord, files: &[PathBuf]) {
    let pool = root.join("pool/main/l/linux");
    fs::create_dir_all(&pool).unwrap();
    for (p, f) in k.packages.iter().zip(files) {
        let name = p.url.rsplit('/').next().unwrap();
        fs::copy(f, pool.join(name)).unwrap();
    }
}

/// Indexes the pool (dpkg-scanpackages), writes Release (apt-ftparchive) and signs it into
/// InRelease, as a mirror publishes a new index.
pub fn publish_index(root: &Path, suite: &str, key: &TestKey) {
    let dists = root.join("dists").join(suite);
    let bin_dir = dists.join("main/binary-amd64");
    fs::create_dir_all(&bin_dir).unwrap();
    let o = Command::new("dpkg-scanpackages")
        .args(["--multiversion", "pool"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    std::io::Write::write_all(&mut enc, &o.stdout).unwrap();
    fs::write(bin_dir.join("Packages.xz"), enc.finish().unwrap()).unwrap();
    let _ = fs::remove_file(dists.join("Release"));
    let _ = fs::remove_file(dists.join("InRelease"));
    let o = Command::new("apt-ftparchive")
        .args([
            "-o",
            &format!("APT::FTPArchive::Release::Codename={suite}"),
            "release",
            &format!("dists/{suite}"),
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let release = dists.join("Release");
    fs::write(&release, &o.stdout).unwrap();
    key.clearsign(&release, &dists.join("InRelease"));
}

/// A catalog of APT targets on the loopback mirror, each one suite, trusting `key`.
pub fn catalog(t: &Path, key: &TestKey, targets: &[(&str, &str)]) -> PathBuf {
    let targets: Vec<serde_json::Value> = targets
        .iter()
        .map(|(name, suite)| {
            serde_json::json!({"name": name, "kind": "apt", "target_id": "debian", "mirror": "debian",
                "suites": [{"suite": suite}], "components": ["main"], "arches": ["x86_64"],
                "keys": [key.public.display().to_string()]})
        })
        .collect();
    let cat = t.join("catalog.json");
    fs::write(
        &cat,
        serde_json::to_vec(&serde_json::json!({"mirrors": {}, "targets": targets})).unwrap(),
    )
    .unwrap();
    cat
}
