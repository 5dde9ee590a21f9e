//! Repositories: live Debian through the machine's APT mirror; YUM (Amazon Linux layout with
//! mirror.list) built by rpmbuild + createrepo_c on loopback; faults from a loopback server.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::gpg::test_key;
use common::server::{Fault, Server};
use common::*;
use probeforge::http::{Client, Config};
use probeforge::kernel::Arch;
use probeforge::repo::{Catalog, Lister, Mirrors};

#[test]
fn every_debian_suite_lists_complete_verified_header_sets() {
    for suite in ["bullseye", "bookworm", "trixie"] {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let all = lister().list(&format!("debian-{suite}"), &[arch]).unwrap();
            assert!(all.len() >= 3, "{suite} {arch}: {} kernels", all.len());
            assert!(
                all.iter().any(|k| k.origin == suite),
                "{suite} {arch}: nothing from the release itself"
            );
            // Every release's security suite carries kernels for both arches.
            assert!(
                all.iter().any(|k| k.origin == format!("{suite}-security")),
                "{suite} {arch}: nothing from security"
            );
            for k in &all {
                assert_eq!(k.arch, arch);
                assert_eq!(k.target_id, "debian");
                assert_eq!(k.kernel_version, "1");
                let names: Vec<&str> = k.packages.iter().map(|p| p.name.as_str()).collect();
                assert_eq!(names[0], format!("linux-headers-{}", k.release));
                assert!(
                    names.iter().any(|n| n.contains("-common")),
                    "{}: {names:?}",
                    k.release
                );
                assert!(
                    names.iter().any(|n| n.starts_with("linux-kbuild-")),
                    "{}: {names:?}",
                    k.release
                );
                for p in &k.packages {
                    assert_eq!(p.sha256.len(), 64);
                    assert!(p.size > 0 && p.url.ends_with(".deb"));
                }
            }
        }
    }
}

/// The Debian release targets of the catalog (`debian-*` one release each; `debian` every
/// supported release). Pre-release pockets (`debian-bookworm-proposed-updates`, whose compilers
/// come from their release) are not releases: between point releases they carry no kernel.
fn debian_targets() -> Vec<String> {
    let v: Vec<String> = Catalog::embedded()
        .targets
        .iter()
        .filter(|t| t.kind == "apt" && t.target_id == "debian" && t.compilers_from.is_none())
        .map(|t| t.name.clone())
        .collect();
    assert!(v.len() >= 5, "{v:?}");
    v
}

/// A Debian release's flavour: what follows its version and ABI (`6.1.0-57-cloud-amd64` ->
/// `cloud-amd64`, `6.12.117+deb12-arm64-16k` -> `arm64-16k`).
fn flavour(release: &str) -> String {
    let parts: Vec<&str> = release.split('-').collect();
    let first = parts
        .iter()
        .position(|p| p.starts_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or_else(|| panic!("no flavour in `{release}`"));
    parts[first..].join("-")
}

/// Every kernel listed for every Debian release target, both arches, is a real kernel: its
/// release has a full version (no meta-package such as `linux-headers-6.12-amd64`), its set
/// has its shared part and kbuild, and for the newest kernel of every (target, arch, series,
/// flavour) the flavour package really installs that kernel's tree: `dpkg-deb` and `tar`
/// (not probeforge) read `UTS_RELEASE` from its `utsrelease.h`. A kernel the mirror lists but
/// does not serve is reported as unavailable, naming the URL.
#[test]
fn every_listed_debian_kernel_installs_its_kernel_tree() {
    let full = regex::Regex::new(r"^\d+\.\d+\.\d+[-+]").unwrap();
    let t = tmpdir();
    let (mut checked, mut unavailable) = (Vec::new(), Vec::new());
    let mut seen = std::collections::BTreeSet::new();
    for target in debian_targets() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let all = lister()
                .list(&target, &[arch])
                .unwrap_or_else(|e| panic!("{target} {arch}: {e}"));
            assert!(!all.is_empty(), "{target} {arch}: no kernels");
            let mut newest = std::collections::BTreeMap::new();
            for k in probeforge::repo::newest_first(all) {
                assert!(
                    full.is_match(&k.release),
                    "{target} {arch}: `{}` is not a kernel release",
                    k.release
                );
                let names: Vec<&str> = k.packages.iter().map(|p| p.name.as_str()).collect();
                assert_eq!(names[0], format!("linux-headers-{}", k.release));
                assert!(
                    names.iter().any(|n| n.contains("-common")),
                    "{}: {names:?}",
                    k.release
                );
                assert!(
                    names.iter().any(|n| n.starts_with("linux-kbuild-")),
                    "{}: {names:?}",
                    k.release
                );
                let series: String = k.release.split('.').take(2).collect::<Vec<_>>().join(".");
                newest.entry((series, flavour(&k.release))).or_insert(k);
            }
            for ((series, flavour), k) in newest {
                if !seen.insert((k.arch, k.release.clone())) {
                    continue; // the same kernel from another target (`debian` is trixie)
                }
                let one = probeforge::repo::KernelRecord {
                    packages: vec![k.packages[0].clone()],
                    ..k.clone()
                };
                match lister().fetch(&one) {
                    Ok(files) => {
                        let o = Command::new("sh")
                            .arg("-c")
                            .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -xO --wildcards '*/include/generated/utsrelease.h'")
                            .arg("sh")
                            .arg(&files[0])
                            .current_dir(t.path())
                            .output()
                            .unwrap();
                        let text = String::from_utf8_lossy(&o.stdout);
                        assert!(
                            text.contains(&format!("\"{}\"", k.release)),
                            "{target} {arch} {series} {flavour}: `{}` holds no tree of `{}`: {text} {}",
                            k.packages[0].name,
                            k.release,
                            String::from_utf8_lossy(&o.stderr)
                        );
                        checked.push(format!("{arch} {}", k.release));
                    }
                    Err(e @ probeforge::repo::Error::Unavailable { .. }) => {
                        let msg = e.to_string();
                        assert!(msg.contains(&k.release) && msg.contains("http"), "{msg}");
                        unavailable.push(msg);
                    }
                    Err(e) => panic!("{target} {arch} {}: {e}", k.release),
                }
            }
        }
    }
    eprintln!(
        "checked {} kernels' trees:\n  {}",
        checked.len(),
        checked.join("\n  ")
    );
    eprintln!(
        "unavailable from this mirror: {}\n  {}",
        unavailable.len(),
        unavailable.join("\n  ")
    );
    // Every flavour Debian ships on both arches was seen and checked.
    for f in [
        "amd64",
        "cloud-amd64",
        "rt-amd64",
        "arm64",
        "arm64-16k",
        "cloud-arm64",
        "rt-arm64",
    ] {
        assert!(
            checked.iter().any(
                |c| c.ends_with(&format!("-{f}")) && flavour(c.split(' ').nth(1).unwrap()) == f
            ),
            "no {f} kernel checked: {checked:?}"
        );
    }
    assert!(
        checked.len() > 2 * unavailable.len(),
        "{checked:?} {unavailable:?}"
    );
}

/// `latest` builds for every Debian release target (amd64): the newest real kernel the
/// mirror serves, with the newer ones it does not serve named and passed over.
#[test]
fn build_latest_for_every_debian_release_target() {
    for target in debian_targets() {
        let t = tmpdir();
        let (code, out, err) = run(&build_target_args(&target, "latest", t.path()));
        assert_eq!(code, 0, "{target}: {err}");
        let newest =
            probeforge::repo::newest_first(lister().list(&target, &[Arch::X86_64]).unwrap());
        let built = err
            .lines()
            .find_map(|l| l.strip_prefix("kernel "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("{target}: {err}"))
            .to_owned();
        // The kernels newer than the one built were passed over, counted, the newest named
        // with the URL the mirror does not serve.
        let newer: Vec<_> = newest.iter().take_while(|k| k.release != built).collect();
        if let Some(first) = newer.first() {
            assert!(
                err.contains(&format!(
                    "passed over {}",
                    probeforge::report::count(newer.len(), "newer kernel")
                )) && err.contains(&format!(
                    "kernel `{}` is unavailable from this mirror",
                    first.release
                )) && err.contains("answers HTTP 404"),
                "{target}: {} newer than {built}: {err}",
                newer.len()
            );
        } else {
            assert!(!err.contains("passed over"), "{target}: {err}");
        }
        let listed = newest
            .iter()
            .find(|k| k.release == built)
            .expect("built is listed");
        let o = t.path().join(falco_file(listed, "o"));
        assert!(out.contains(o.to_str().unwrap()), "{target}: {out}");
        let (code, vout, verr) =
            run(&["validate", o.to_str().unwrap(), "--kernel-release", &built]);
        assert_eq!(code, 0, "{target}: {vout} {verr}");
    }
}

#[test]
fn build_from_a_target_fetches_verifies_and_builds() {
    let (k, _) = debian_kernel("bullseye", Arch::X86_64);
    let t = tmpdir();
    let (code, out, err) = run(&build_target_args("debian-bullseye", &k.release, t.path()));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&falco_file(&k, "o")), "{out}");
}

/// A catalog whose targets trust only `keyring` (as `--keyring` does).
fn catalog_trusting(keyring: &Path) -> Catalog {
    let mut c = Catalog::embedded();
    for t in &mut c.targets {
        t.keys = vec![keyring.display().to_string()];
    }
    c
}

/// A client and lister against a loopback mirror, with short timeouts.
fn loopback_client(cache: &Path) -> Client {
    let mut cfg = Config::new(cache.to_owned());
    cfg.read_timeout = Duration::from_secs(2);
    cfg.backoff = Duration::from_millis(50);
    Client::new(cfg)
}

fn mirrors(name: &str, url: &str) -> Mirrors {
    let mut m = Mirrors::default();
    m.overrides.insert(name.to_owned(), url.to_owned());
    m
}

#[test]
fn amazon_linux_style_yum_repo_lists_fetches_and_builds() {
    let t = tmpdir();
    let srv_root = t.path().join("srv");
    let (rpm, uts) = build_kernel_devel_rpm_as(t.path(), Some(("6.1.176", "50.amzn2")));
    let repo = srv_root.join("2/core/2.0/x86_64/0123abcd");
    // Signed as the repository's owner signs it, with a key made here.
    let key = test_key(t.path(), "yum-owner");
    common::rpm::yum_repo(&repo, &[(&rpm, "Packages")], &[], Some(&key));
    let repomd = repo.join("repodata/repomd.xml");
    let server = Server::start(srv_root.clone());
    fs::write(
        srv_root.join("2/core/2.0/x86_64/mirror.list"),
        format!("{}/2/core/2.0/x86_64/0123abcd/\n", server.base),
    )
    .unwrap();

    let cache = t.path().join("cache");
    let client = loopback_client(&cache);
    let cat = catalog_trusting(&key.public);
    let m = mirrors("amazonlinux2", &format!("{}/2", server.base));
    let l = Lister {
        client: &client,
        catalog: &cat,
        mirrors: &m,
    };
    let ks = l.list("amazonlinux2", &[Arch::X86_64]).unwrap();
    assert_eq!(ks.len(), 1, "{ks:?}");
    assert_eq!(ks[0].release, uts);
    assert_eq!(ks[0].target_id, "amazonlinux2");
    assert_eq!(ks[0].packages[0].sha256, sha256_file(&rpm));
    // The same package through createrepo_c's primary.sqlite, as repositories offering only
    // the database (primary_db) are read.
    let db = fs::read_dir(repo.join("repodata"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("primary.sqlite")
        })
        .expect("createrepo_c wrote primary.sqlite");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut probeforge::extract::decompress(fs::File::open(&db).unwrap(), "db").unwrap(),
        &mut plain,
    )
    .unwrap();
    let db_file = t.path().join("primary.sqlite");
    fs::write(&db_file, plain).unwrap();
    let from_db =
        probeforge::repo::yum::parse_primary_sqlite(&db_file, |n| n == "kernel-devel").unwrap();
    assert_eq!(from_db.len(), 1);
    assert_eq!(from_db[0].kernel_release(), uts);
    assert_eq!(from_db[0].checksum, ks[0].packages[0].sha256);
    // extras/kernel-* repos are absent on this mirror: skipped, not fatal.
    assert!(server
        .hits("/2/extras/kernel-5.10/latest/x86_64/mirror.list")
        .contains(&404));

    // The CLI, end to end: list, then build from the target.
    let url = format!("amazonlinux2={}/2", server.base);
    let out_dir = t.path().join("out");
    let src = libs_0_20_0();
    let o = Command::new(bin())
        .args([
            "--keyring",
            key.public.to_str().unwrap(),
            "--mirror",
            &url,
            "--cache-dir",
            cache.to_str().unwrap(),
            "build",
            "--target",
            "amazonlinux2",
            "--kernel",
            "latest",
            "--driver-source",
            src.to_str().unwrap(),
            "--driver-version",
            "8.0.0+driver",
            "-o",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out_dir
        .join(format!("falco_amazonlinux2_{uts}_1.o"))
        .is_file());

    // Without the owner's key (the catalog's Amazon key), and with a repomd.xml changed after
    // signing, the metadata is refused naming the repository and the file.
    let list = |extra: &[&str], cache: &Path| {
        let mut c = Command::new(bin());
        c.args(extra).args([
            "--mirror",
            &url,
            "--cache-dir",
            cache.to_str().unwrap(),
            "list-kernels",
            "amazonlinux2",
            "--arch",
            "x86_64",
        ]);
        let o = c.output().unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, _, err) = list(&[], &t.path().join("c1"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`repomd.xml`")
            && err.contains("no valid signature by a trusted key")
            && err.contains("RPM-GPG-KEY-amazon-linux-2"),
        "{err}"
    );
    let md = fs::read_to_string(&repomd).unwrap();
    fs::write(&repomd, md.replacen("<revision>", "<revision>1", 1)).unwrap();
    let (code, _, err) = list(
        &["--keyring", key.public.to_str().unwrap()],
        &t.path().join("c2"),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`repomd.xml`") && err.contains("no valid signature by a trusted key"),
        "{err}"
    );
    fs::remove_file(repo.join("repodata/repomd.xml.asc")).unwrap();
    let (code, _, err) = list(
        &["--keyring", key.public.to_str().unwrap()],
        &t.path().join("c3"),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is not signed (no repomd.xml.asc)") && err.contains("--allow-unsigned"),
        "{err}"
    );
    let (code, out, err) = list(&["--allow-unsigned"], &t.path().join("c4"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&uts) && err.contains("used anyway (--allow-unsigned)"),
        "{out} {err}"
    );
}

/// Mirrors one real Debian suite's Release, its amd64 Packages (by hash) and one kernel's
/// packages onto a loopback server root.
fn mirror_bookworm_onto(root: &Path) -> (String, probeforge::repo::KernelRecord) {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let n = net();
    let mirror = n.mirrors.resolve(&n.catalog, "debian").unwrap();
    let (release, _) = n
        .client
        .fetch_metadata(&format!("{mirror}/dists/bookworm/Release"))
        .unwrap();
    let rel = probeforge::repo::apt::parse_release(&String::from_utf8_lossy(&release));
    let dists = root.join("debian/dists/bookworm");
    fs::create_dir_all(&dists).unwrap();
    fs::write(dists.join("Release"), &release).unwrap();
    // Its detached signature by Debian's archive keys (the loopback serves no InRelease).
    let (sig, _) = n
        .client
        .fetch_metadata(&format!("{mirror}/dists/bookworm/Release.gpg"))
        .unwrap();
    fs::write(dists.join("Release.gpg"), &sig).unwrap();
    let listed = &rel.sha256["main/binary-amd64/Packages.xz"];
    let url = format!(
        "{mirror}/dists/bookworm/main/binary-amd64/by-hash/SHA256/{}",
        listed.sha256
    );
    let (pk, _) = n
        .client
        .fetch_verified(&url, &listed.sha256, Some(listed.size))
        .unwrap();
    let by_hash = dists.join("main/binary-amd64/by-hash/SHA256");
    fs::create_dir_all(&by_hash).unwrap();
    fs::copy(&pk, by_hash.join(&listed.sha256)).unwrap();
    // The kernel picked may come from -security; serve the one from bookworm proper.
    let ks = lister().list("debian-bookworm", &[Arch::X86_64]).unwrap();
    let kr = ks
        .into_iter()
        .rfind(|x| {
            x.origin == "bookworm"
                && x.release.ends_with("-amd64")
                && !x.release.contains("-cloud-")
                && !x.release.contains("-rt-")
        })
        .unwrap();
    let files: Vec<_> = if kr.release == k.release {
        files
    } else {
        lister().fetch(&kr).unwrap()
    };
    for (p, f) in kr.packages.iter().zip(&files) {
        let rel_path = p.url.split("/pool/").nth(1).unwrap();
        let d = root.join("debian/pool").join(rel_path);
        fs::create_dir_all(d.parent().unwrap()).unwrap();
        fs::copy(f, &d).unwrap();
    }
    (listed.sha256.clone(), kr)
}

fn bookworm_only_catalog() -> Catalog {
    Catalog::parse(r#"{"mirrors": {}, "targets": [{"name": "bw", "kind": "apt", "target_id": "debian", "mirror": "debian", "suites": [{"suite": "bookworm"}], "components": ["main"], "arches": ["x86_64"], "keys": ["debian-archive-keyring.gpg"]}]}"#).unwrap()
}

#[test]
fn faults_get_retries_or_clear_errors_and_never_a_bad_cache_entry() {
    let t = tmpdir();
    let root = t.path().join("srv");
    let (pk_hash, k) = mirror_bookworm_onto(&root);
    let server = Server::start(root.clone());
    let cat = bookworm_only_catalog();
    let m = mirrors("debian", &format!("{}/debian", server.base));
    let cache = t.path().join("cache");
    let client = loopback_client(&cache);
    let l = Lister {
        client: &client,
        catalog: &cat,
        mirrors: &m,
    };
    let pk_path = format!("/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/{pk_hash}");

    // Transient 500s and a reset on the index: retried, then it works.
    server.fault("/debian/dists/bookworm/Release", Fault::Status(500, 2));
    server.fault(&pk_path, Fault::Reset(1));
    let ks = l.list("bw", &[Arch::X86_64]).unwrap();
    assert!(ks.iter().any(|x| x.release == k.release));
    assert_eq!(
        server.hits("/debian/dists/bookworm/Release"),
        [500, 500, 200]
    );
    assert_eq!(server.hits(&pk_path)[0], 0);

    // Warm: the Release revalidates with a 304.
    l.list("bw", &[Arch::X86_64]).unwrap();
    assert_eq!(
        server.hits("/debian/dists/bookworm/Release").last(),
        Some(&304)
    );

    let deb = &k.packages[1];
    let deb_path = format!("/debian/pool/{}", deb.url.split("/pool/").nth(1).unwrap());
    let cached = cache
        .join("sha256")
        .join(&deb.sha256[..2])
        .join(&deb.sha256);
    let rec = probeforge::repo::KernelRecord {
        packages: k
            .packages
            .iter()
            .map(|p| probeforge::repo::PackageRef {
                url: format!(
                    "{}/debian/pool/{}",
                    server.base,
                    p.url.split("/pool/").nth(1).unwrap()
                ),
                ..p.clone()
            })
            .collect(),
        ..k.clone()
    };
    // A body cut short once: retried.
    server.fault(&deb_path, Fault::Truncate(1));
    l.fetch(&rec).unwrap();
    assert!(cached.is_file());
    fs::remove_file(&cached).unwrap();

    // Wrong bytes every time: a clear digest error, and nothing in the cache.
    server.fault(&deb_path, Fault::Corrupt);
    let e = format!("{:#}", anyhow::Error::from(l.fetch(&rec).unwrap_err()));
    assert!(
        e.contains(&deb.name) && e.contains("sha256 is") && e.contains(&deb.sha256),
        "{e}"
    );
    assert!(!cached.exists());
    let leftovers: Vec<_> = walkdir::WalkDir::new(&cache)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A persistent 404 and a server too slow to answer: errors naming the URL.
    server.fault(&deb_path, Fault::Status(404, 10));
    let e = format!("{:#}", anyhow::Error::from(l.fetch(&rec).unwrap_err()));
    assert!(e.contains("HTTP 404") && e.contains(&deb_path), "{e}");
    server.fault(&deb_path, Fault::Slow(Duration::from_secs(4)));
    let e = format!("{:#}", anyhow::Error::from(l.fetch(&rec).unwrap_err()));
    assert!(e.contains(&deb_path), "{e}");
    server.clear_faults();

    // A Release whose digest does not match the Packages it lists: the by-hash file it names
    // exists (the real index under the wrong name), so the check itself must refuse it.
    let rel = root.join("debian/dists/bookworm/Release");
    let zeros = "0".repeat(64);
    let text = fs::read_to_string(&rel).unwrap().replace(&pk_hash, &zeros);
    fs::write(&rel, text).unwrap();
    let by_hash = root.join("debian/dists/bookworm/main/binary-amd64/by-hash/SHA256");
    fs::copy(by_hash.join(&pk_hash), by_hash.join(&zeros)).unwrap();
    // Signed again, by a key this catalog trusts, so that the digest check is what refuses.
    let key = test_key(t.path(), "mirror-owner");
    key.detach(&rel, &root.join("debian/dists/bookworm/Release.gpg"), false);
    let mut cat2 = bookworm_only_catalog();
    cat2.targets[0].keys = vec![key.public.display().to_string()];
    let fresh = loopback_client(&t.path().join("cache2"));
    let l2 = Lister {
        client: &fresh,
        catalog: &cat2,
        mirrors: &m,
    };
    let e = format!(
        "{:#}",
        anyhow::Error::from(l2.list("bw", &[Arch::X86_64]).unwrap_err())
    );
    assert!(
        e.contains(&format!("by-hash/SHA256/{zeros}"))
            && e.contains("does not match the digest its Release lists"),
        "{e}"
    );
    assert!(!e.contains("HTTP 404"), "{e}");
}

#[test]
fn a_dead_mirror_fails_the_command_with_its_address() {
    let t = tmpdir();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = Command::new(bin())
        .args([
            "--mirror",
            &format!("debian=http://127.0.0.1:{port}/debian"),
            "--cache-dir",
            t.path().to_str().unwrap(),
            "list-kernels",
            "debian-bookworm",
            "--arch",
            "x86_64",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    // Offline with an empty cache names what is missing.
    let o = Command::new(bin())
        .args([
            "--offline",
            "--cache-dir",
            t.path().to_str().unwrap(),
            "list-kernels",
            "debian-bookworm",
        ])
        .output()
        .unwrap();
    // A request the cache cannot meet (README, exit codes): 2.
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("offline") && err.contains("Release"), "{err}");
}

/// Ubuntu's split: `linux-headers-V` (srctree, Architecture: all) and
/// `linux-headers-V-generic` (objtree) built with dpkg-deb from real Debian headers, indexed by
/// dpkg-scanpackages and apt-ftparchive into Ubuntu's dists/ layout.
#[test]
fn ubuntu_layout_apt_repo_on_loopback() {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let t = tmpdir();
    let x = t.path().join("x");
    for f in header_files(&k, &files) {
        assert!(Command::new("dpkg-deb")
            .arg("-x")
            .arg(&f)
            .arg(&x)
            .status()
            .unwrap()
            .success());
    }
    let (v, abi, upload) = ("5.15.0", "91", "101");
    let base = format!("{v}-{abi}");
    let rel = format!("{base}-generic");
    let src = fs::read_dir(x.join("usr/src"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-common"))
        .unwrap();
    let obj = x
        .join("usr/src")
        .join(format!("linux-headers-{}", k.release));
    let mk = |name: &str, arch: &str, deps: &str, fill: &dyn Fn(&Path)| -> std::path::PathBuf {
        let d = t.path().join(name);
        fs::create_dir_all(d.join("DEBIAN")).unwrap();
        fill(&d);
        fs::write(d.join("DEBIAN/control"), format!("Package: {name}\nVersion: {v}-{abi}.{upload}\nArchitecture: {arch}\nMaintainer: t <t@t>\n{deps}Description: test\n")).unwrap();
        let out = t.path().join(format!("{name}.deb"));
        let o = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "-b"])
            .arg(&d)
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let common_deb = mk(&format!("linux-headers-{base}"), "all", "", &|d| {
        let to = d.join(format!("usr/src/linux-headers-{base}"));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        assert!(Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(&to)
            .status()
            .unwrap()
            .success());
    });
    let flavour_deb = mk(
        &format!("linux-headers-{rel}"),
        "amd64",
        &format!("Depends: linux-headers-{base}, libc6\n"),
        &|d| {
            let to = d.join(format!("usr/src/linux-headers-{rel}"));
            fs::create_dir_all(&to).unwrap();
            for e in fs::read_dir(&obj).unwrap().flatten() {
                if !e.file_type().unwrap().is_symlink() {
                    assert!(Command::new("cp")
                        .arg("-a")
                        .arg(e.path())
                        .arg(&to)
                        .status()
                        .unwrap()
                        .success());
                }
            }
            fs::write(
                to.join("Makefile"),
                format!("include /usr/src/linux-headers-{base}/Makefile\n"),
            )
            .unwrap();
            fs::write(
                to.join("include/generated/utsrelease.h"),
                format!("#define UTS_RELEASE \"{rel}\"\n"),
            )
            .unwrap();
        },
    );
    // Ubuntu's metas point to the kernel and install nothing: the versionless ones
    // (`linux-headers-generic`, `-hwe-22.04`) and one shaped like a kernel's name (as Debian's
    // `linux-headers-6.12-amd64`), given away only by depending on a kernel's package.
    let metas: Vec<_> = [
        "linux-headers-generic",
        "linux-headers-generic-hwe-22.04",
        "linux-headers-5.15-generic",
    ]
    .iter()
    .map(|name| {
        mk(
            name,
            "amd64",
            &format!("Depends: linux-headers-{rel}\n"),
            &|_| {},
        )
    })
    .collect();
    let root = t.path().join("srv/ubuntu");
    let pool = root.join("pool/main/l/linux");
    fs::create_dir_all(&pool).unwrap();
    for d in metas.iter().chain([&common_deb, &flavour_deb]) {
        fs::copy(d, pool.join(d.file_name().unwrap())).unwrap();
    }
    let bin_dir = root.join("dists/jammy/main/binary-amd64");
    fs::create_dir_all(&bin_dir).unwrap();
    let o = Command::new("dpkg-scanpackages")
        .args(["--multiversion", "pool"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    std::io::Write::write_all(&mut enc, &o.stdout).unwrap();
    fs::write(bin_dir.join("Packages.xz"), enc.finish().unwrap()).unwrap();
    let o = Command::new("apt-ftparchive")
        .args([
            "-o",
            "APT::FTPArchive::Release::Codename=jammy",
            "release",
            "dists/jammy",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(o.status.success());
    fs::write(root.join("dists/jammy/Release"), &o.stdout).unwrap();
    // Clear-signed into InRelease, as Ubuntu publishes it, by a key made here (`--keyring`).
    let key = test_key(t.path(), "ubuntu-mirror");
    key.clearsign(
        &root.join("dists/jammy/Release"),
        &root.join("dists/jammy/InRelease"),
    );
    let server = Server::start(t.path().join("srv"));

    let url = format!("ubuntu={}/ubuntu", server.base);
    let cache = t.path().join("cache");
    let o = Command::new(bin())
        .args([
            "--keyring",
            key.public.to_str().unwrap(),
            "--mirror",
            &url,
            "--cache-dir",
            cache.to_str().unwrap(),
            "list-kernels",
            "ubuntu-jammy",
            "--arch",
            "x86_64",
            "--format",
            "crawler",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["ubuntu"].as_array().unwrap().len(),
        1,
        "metas listed as kernels: {v}"
    );
    let e = &v["ubuntu"][0];
    assert_eq!(e["kernelrelease"], rel.as_str());
    assert_eq!(e["kernelversion"], upload);
    assert_eq!(e["target"], "ubuntu-generic");
    assert_eq!(e["headers"].as_array().unwrap().len(), 2);
    // The crawler list feeds a build (digests unknown there: fetched and recorded).
    let list = t.path().join("list.json");
    fs::write(&list, &o.stdout).unwrap();
    let out_dir = t.path().join("out");
    let srcs = libs_0_20_0();
    let o = Command::new(bin())
        .args([
            "--cache-dir",
            cache.to_str().unwrap(),
            "build",
            "--from",
            list.to_str().unwrap(),
            "--kernel",
            &rel,
            "--driver-source",
            srcs.to_str().unwrap(),
            "--driver-version",
            "8.0.0+driver",
            "-o",
            out_dir.to_str().unwrap(),
            "--provenance",
            t.path().join("prov.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out_dir
        .join(format!("falco_ubuntu-generic_{rel}_{upload}.o"))
        .is_file());
    // A kernel-crawler list carries no signatures: the provenance says so.
    let prov: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("prov.json")).unwrap()).unwrap();
    assert_eq!(
        prov["predicate"]["repository_metadata"]["signed"], false,
        "{prov}"
    );
}

/// COS from a recorded layout: the `cos-tools` bucket's XML listing, and one build's
/// `kernel-headers.tgz` (real Debian headers as one tree, renamed COS-style), on loopback.
#[test]
fn cos_builds_from_a_recorded_bucket_layout() {
    let t = tmpdir();
    let rel = "6.1.85+";
    let tree = t
        .path()
        .join("h/usr/src")
        .join(format!("linux-headers-{rel}"));
    single_tree(t.path(), &tree);
    fs::write(
        tree.join("include/generated/utsrelease.h"),
        format!("#define UTS_RELEASE \"{rel}\"\n"),
    )
    .unwrap();
    fs::write(
        tree.join("include/generated/utsversion.h"),
        "#define UTS_VERSION \"#1 SMP PREEMPT_DYNAMIC Sat Apr 27 12:26:31 UTC 2024\"\n",
    )
    .unwrap();
    let srv = t.path().join("srv/cos-tools");
    fs::create_dir_all(srv.join("17800.147.54")).unwrap();
    let o = Command::new("tar")
        .arg("czf")
        .arg(srv.join("17800.147.54/kernel-headers.tgz"))
        .arg("-C")
        .arg(t.path().join("h"))
        .arg("usr")
        .output()
        .unwrap();
    assert!(o.status.success());
    // A build without headers, and a folder that is not a build: both passed over.
    fs::create_dir_all(srv.join("16919.404.26")).unwrap();
    fs::write(srv.join("index.xml"), r#"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult xmlns="http://doc.s3.amazonaws.com/2006-03-01"><Name>cos-tools</Name><Prefix></Prefix><Marker></Marker><IsTruncated>false</IsTruncated><Delimiter>/</Delimiter><CommonPrefixes><Prefix>16919.404.26/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>17800.147.54/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>scripts/</Prefix></CommonPrefixes></ListBucketResult>"#).unwrap();
    let server = Server::start(t.path().join("srv"));
    let url = format!("cos={}/cos-tools", server.base);
    let cache = t.path().join("cache");
    let o = Command::new(bin())
        .args([
            "--mirror",
            &url,
            "--cache-dir",
            cache.to_str().unwrap(),
            "list-kernels",
            "cos",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["release"], rel);
    assert_eq!(v[0]["origin"], "17800.147.54");
    assert_eq!(v[0]["target_id"], "cos");
    assert_eq!(v[0]["kernel_version"], "1");
    let out_dir = t.path().join("out");
    let src = libs_0_20_0();
    let o = Command::new(bin())
        .args([
            "--mirror",
            &url,
            "--cache-dir",
            cache.to_str().unwrap(),
            "build",
            "--target",
            "cos",
            "--kernel",
            rel,
            "--driver-source",
            src.to_str().unwrap(),
            "--driver-version",
            "8.0.0+driver",
            "-o",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out_dir.join(format!("falco_cos_{rel}_1.o")).is_file());
}

/// A kernel the index lists but the mirror does not serve is `unavailable` in `build-all`
/// (its own status, count and URL; not a failed build, exit 0); `latest` passes over it.
#[test]
fn a_listed_kernel_the_mirror_does_not_serve_is_unavailable_not_failed() {
    let t = tmpdir();
    let root = t.path().join("srv");
    let (_, k) = mirror_bookworm_onto(&root);
    let server = Server::start(root.clone());
    let cat = t.path().join("catalog.json");
    fs::write(
        &cat,
        r#"{"mirrors": {}, "targets": [{"name": "bw", "kind": "apt", "target_id": "debian", "mirror": "debian", "suites": [{"suite": "bookworm"}], "components": ["main"], "arches": ["x86_64"], "keys": ["debian-archive-keyring.gpg"]}]}"#,
    )
    .unwrap();
    // Serve `k`'s whole set as the loopback's own index resolves it (bookworm alone: its
    // kbuild may be another version than with -security).
    let (lb_cat, lb_mirrors) = (
        bookworm_only_catalog(),
        mirrors("debian", &format!("{}/debian", server.base)),
    );
    let lb_client = loopback_client(&t.path().join("lb-cache"));
    let lb = Lister {
        client: &lb_client,
        catalog: &lb_cat,
        mirrors: &lb_mirrors,
    };
    let kl = lb
        .list("bw", &[Arch::X86_64])
        .unwrap()
        .into_iter()
        .find(|x| x.release == k.release)
        .unwrap();
    let n = net();
    let real = n.mirrors.resolve(&n.catalog, "debian").unwrap();
    for p in &kl.packages {
        let rel_path = p.url.split("/pool/").nth(1).unwrap();
        let d = root.join("debian/pool").join(rel_path);
        if !d.exists() {
            let (f, _) = n
                .client
                .fetch_verified(&format!("{real}/pool/{rel_path}"), &p.sha256, Some(p.size))
                .unwrap();
            fs::create_dir_all(d.parent().unwrap()).unwrap();
            fs::copy(f, &d).unwrap();
        }
    }
    let mirror = format!("debian={}/debian", server.base);
    let cache = t.path().join("cache");
    let net = [
        "--catalog",
        cat.to_str().unwrap(),
        "--mirror",
        &mirror,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    // Every other kernel of bookworm is listed, and only `k`'s files are served.
    let all =
        probeforge::repo::newest_first(lister().list("debian-bookworm", &[Arch::X86_64]).unwrap());
    let other = all
        .iter()
        .find(|x| x.origin == "bookworm" && x.release != k.release)
        .expect("a second kernel in bookworm");
    let repo = t.path().join("repo");
    let only = format!("^{}$", regex::escape(&other.release));
    let mut args: Vec<String> = net.iter().map(|a| a.to_string()).collect();
    args.extend(build_all_args(&["bw", "--arch", "x86_64"], &only, &repo));
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["unavailable"].as_u64(),
            v["failed"].as_u64(),
            v["built"].as_u64()
        ),
        (Some(1), Some(0), Some(0)),
        "{out}"
    );
    let r = &v["kernels"][0];
    assert_eq!(r["status"], "unavailable", "{out}");
    assert_eq!(r["release"], other.release.as_str());
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains(&server.base) && e.contains("HTTP 404") && e.contains(&other.packages[0].name),
        "{e}"
    );
    // In text, the summary counts it apart from failures.
    args.pop();
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("1 unavailable from this mirror, 0 failed"),
        "{out}"
    );
    assert!(
        err.contains(&format!("unavailable: x86_64 {}", other.release)),
        "{err}"
    );
    assert!(!err.contains("\x1b["), "colour codes in a pipe: {err}");

    // `fetch` of that kernel by name: a clear error naming the URL, exit 1.
    let h = t.path().join("h");
    let h = h.to_str().unwrap();
    let mut args = net.to_vec();
    args.extend(["fetch", "bw", &other.release, "-o", h]);
    let (code, _, err) = run(&args);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is unavailable from this mirror") && err.contains(&server.base),
        "{err}"
    );
    // `latest` takes the newest kernel that is served, naming the newer ones passed over.
    let mut args = net.to_vec();
    args.extend(["fetch", "bw", "latest", "-o", h]);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("linux-headers-{}_", k.release)),
        "{out}"
    );
    let newer = all
        .iter()
        .filter(|x| x.origin == "bookworm")
        .take_while(|x| x.release != k.release)
        .count();
    if newer > 0 {
        assert!(
            err.contains(&format!("passed over {newer} newer kernel(s)")),
            "{err}"
        );
    }
}

/// Filters and names that match nothing are usage errors (exit 2) naming the filter, the
/// target and the closest releases; missing input files too.
#[test]
fn filters_that_match_nothing_and_missing_files_are_usage_errors() {
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    let t = tmpdir();
    let src = libs_0_20_0();
    // A typo in the ABI number: the closest real releases are named.
    let wrong = k.release.replacen("6.1.0-", "6.1.0-9", 1);
    let (code, _, err) = run(&[
        "build-all",
        "debian-bookworm",
        "--arch",
        "x86_64",
        "--only",
        &format!("^{}$", regex::escape(&wrong)),
        "--repo",
        t.path().to_str().unwrap(),
        "--driver-source",
        src.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--only")
            && err.contains("debian-bookworm")
            && err.contains("closest: 6.1.0-"),
        "{err}"
    );
    assert!(!err.contains("0 kernels to build"), "{err}");
    for cmd in [
        vec![
            "build",
            "--target",
            "debian-bookworm",
            "--kernel",
            &wrong,
            "-o",
            t.path().to_str().unwrap(),
            "--driver-source",
            src.to_str().unwrap(),
        ],
        vec!["fetch", "debian-bookworm", &wrong],
    ] {
        let (code, _, err) = run(&cmd);
        assert_eq!(code, 2, "{cmd:?}: {err}");
        assert!(
            err.contains(&format!("no kernel `{wrong}`")) && err.contains("closest: 6.1.0-"),
            "{cmd:?}: {err}"
        );
    }
    let missing = t.path().join("nope.deb");
    let m = missing.to_str().unwrap();
    for cmd in [
        vec![
            "build",
            "--headers",
            m,
            "--driver-source",
            src.to_str().unwrap(),
            "-o",
            t.path().to_str().unwrap(),
        ],
        vec![
            "build",
            "--headers",
            src.to_str().unwrap(),
            "--driver-source",
            m,
            "-o",
            t.path().to_str().unwrap(),
        ],
        vec!["inspect", m],
        vec!["validate", m],
    ] {
        let (code, _, err) = run(&cmd);
        assert_eq!(code, 2, "{cmd:?}: {err}");
        assert!(
            err.contains(&format!("`{m}` does not exist")),
            "{cmd:?}: {err}"
        );
    }
}

/// Log lines carry colour only on a terminal, and never under NO_COLOR.
#[test]
fn logs_are_coloured_only_on_a_terminal() {
    let bin = bin();
    let cmd = format!(
        "{} -vv list-kernels debian-bookworm --arch x86_64 >/dev/null",
        bin.display()
    );
    // A pipe: plain text.
    let o = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("DEBUG"), "{err}");
    assert!(!err.contains("\x1b["), "{err}");
    // A terminal (script(1) gives the command a pty): coloured, unless NO_COLOR is set.
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]);
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        } else {
            c.env_remove("NO_COLOR");
        }
        let o = c.output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && text.contains("DEBUG"), "{text}");
        assert_eq!(
            text.contains("\x1b["),
            coloured,
            "NO_COLOR={no_color:?}: {text}"
        );
    }
}

/// Nothing to install: with no clang or llc on PATH and an empty cache, `build --target debian
/// --kernel latest` fetches the pinned toolchain, says so, and builds the same bytes as the
/// host's clang-14/llc-14 (this machine's, Debian 12's); `--toolchain host` then fails
/// naming what is missing (exit 2).
#[test]
fn with_no_clang_on_path_the_pinned_toolchain_builds_the_same_probe() {
    let t = tmpdir();
    let empty_path = t.path().join("bin");
    fs::create_dir_all(&empty_path).unwrap();
    let cache = t.path().join("cache");
    let bare = |args: &[&str]| {
        let o = Command::new(bin())
            .env_clear()
            .env("PATH", &empty_path)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (bare_out, host_out) = (t.path().join("bare"), t.path().join("host"));
    let (code, out, err) = bare(&[
        "build",
        "--target",
        "debian",
        "--kernel",
        "latest",
        "-o",
        bare_out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("no usable clang/llc on this host")
            && err.contains("building with the pinned toolchain `llvm-14-debian12`")
            && err.contains("fetching it into the cache once"),
        "{err}"
    );
    assert!(cache.join("toolchains").is_dir());
    let probe = out
        .split_whitespace()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("{out}"));
    // The host's clang-14, same command otherwise.
    let (code, out, err) = run(&[
        "build",
        "--target",
        "debian",
        "--kernel",
        "latest",
        "--toolchain",
        "host",
        "-o",
        host_out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("pinned toolchain"), "{err}");
    let host_probe = out
        .split_whitespace()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(probe.file_name(), host_probe.file_name());
    assert_eq!(
        sha256_file(&probe),
        sha256_file(&host_probe),
        "pinned and host clang-14 differ"
    );
    // A second bare run does not fetch again (a kernel that does not exist: it stops right
    // after choosing the toolchain).
    let (code, _, err) = bare(&[
        "build",
        "--target",
        "debian",
        "--kernel",
        "0.0.0-none",
        "-o",
        bare_out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("pinned toolchain") && !err.contains("fetching"),
        "{err}"
    );
    // `--toolchain host` insists on the host's.
    let (code, _, err) = bare(&[
        "build",
        "--target",
        "debian",
        "--kernel",
        "latest",
        "--toolchain",
        "host",
        "-o",
        bare_out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no clang found"), "{err}");
}

/// `debian` means Debian: the short name lists the kernels of every supported release (as the
/// release-named targets do, together), not only the current stable one.
#[test]
fn the_short_name_debian_covers_every_supported_release() {
    let all = lister().list("debian", &[Arch::X86_64]).unwrap();
    let mut each = std::collections::BTreeSet::new();
    for r in ["bullseye", "bookworm", "trixie"] {
        let one = lister()
            .list(&format!("debian-{r}"), &[Arch::X86_64])
            .unwrap();
        assert!(!one.is_empty(), "{r}");
        each.extend(one.into_iter().map(|k| k.release));
        assert!(
            all.iter().any(|k| k.origin.starts_with(r)),
            "`debian` lacks {r}"
        );
    }
    let listed: std::collections::BTreeSet<String> = all.into_iter().map(|k| k.release).collect();
    assert_eq!(listed, each);
    let (code, out, _) = run(&["list-kernels", "--targets-only"]);
    assert_eq!(code, 0);
    let line = out.lines().find(|l| l.starts_with("debian ")).unwrap();
    assert!(
        line.contains("bullseye-security") && line.contains("trixie-backports"),
        "{line}"
    );
    let (_, help, _) = run(&["list-kernels", "--help"]);
    assert!(help.contains("every supported release"), "{help}");
}

/// Signed metadata: Debian's live `InRelease` files verify with the keys shipped; on loopback,
/// a tampered `InRelease`, an unsigned suite and one re-signed by a key nobody trusts are each
/// refused naming the repository, the file and the keys; `--keyring` trusts the new key and
/// `--allow-unsigned` goes on, recording it in index.json.
#[test]
fn signed_metadata_is_checked_before_anything_it_lists_is_used() {
    // Live: every Debian target lists (each suite's InRelease verified with the shipped keys).
    for target in debian_targets() {
        lister()
            .list(&target, &[Arch::X86_64])
            .unwrap_or_else(|e| panic!("{target}: {e}"));
    }
    let t = tmpdir();
    let root = t.path().join("srv");
    let (_, k) = mirror_bookworm_onto(&root);
    let dists = root.join("debian/dists/bookworm");
    let server = Server::start(root.clone());
    let cat = t.path().join("catalog.json");
    fs::write(
        &cat,
        r#"{"mirrors": {}, "targets": [{"name": "bw", "kind": "apt", "target_id": "debian", "mirror": "debian", "suites": [{"suite": "bookworm"}], "components": ["main"], "arches": ["x86_64"], "keys": ["debian-archive-keyring.gpg"]}]}"#,
    )
    .unwrap();
    let mirror = format!("debian={}/debian", server.base);
    let n = std::cell::Cell::new(0);
    let list = |extra: &[&str]| {
        n.set(n.get() + 1);
        let cache = t.path().join(format!("cache{}", n.get()));
        let o = Command::new(bin())
            .args([
                "--catalog",
                cat.to_str().unwrap(),
                "--mirror",
                &mirror,
                "--cache-dir",
                cache.to_str().unwrap(),
            ])
            .args(extra)
            .args(["list-kernels", "bw", "--arch", "x86_64", "--json"])
            .output()
            .unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Release + Release.gpg, as Debian signs them: listed.
    let (code, out, err) = list(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&k.release) && !out.contains("unsigned_metadata"),
        "{out}"
    );

    // The real InRelease with one digest changed inside the signed text.
    let n0 = net();
    let real = n0.mirrors.resolve(&n0.catalog, "debian").unwrap();
    let (inrelease, _) = n0
        .client
        .fetch_metadata(&format!("{real}/dists/bookworm/InRelease"))
        .unwrap();
    let text = String::from_utf8(inrelease).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("main/binary-amd64/Packages.xz"))
        .unwrap();
    let digest = line.split_whitespace().next().unwrap();
    let flipped = format!(
        "{}{}",
        if digest.starts_with('0') { "1" } else { "0" },
        &digest[1..]
    );
    fs::write(dists.join("InRelease"), text.replacen(digest, &flipped, 1)).unwrap();
    let (code, _, err) = list(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`InRelease`")
            && err.contains(&server.base)
            && err.contains("no valid signature by a trusted key")
            && err.contains("trusted: debian-archive-keyring.gpg"),
        "{err}"
    );
    fs::remove_file(dists.join("InRelease")).unwrap();

    // Unsigned: no InRelease, no Release.gpg.
    fs::rename(dists.join("Release.gpg"), t.path().join("Release.gpg")).unwrap();
    let (code, _, err) = list(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`Release`")
            && err.contains("is not signed (no InRelease and no Release.gpg)"),
        "{err}"
    );
    // --allow-unsigned goes on, warns, and marks what it lists.
    let (code, out, err) = list(&["--allow-unsigned"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("used anyway (--allow-unsigned)"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listed = v.as_array().unwrap();
    assert!(
        !listed.is_empty() && listed.iter().all(|r| r["unsigned_metadata"] == true),
        "{out}"
    );
    // ... and index.json says so for what is published from it.
    let repo = t.path().join("repo");
    let src = libs_0_20_0();
    let o = Command::new(bin())
        .env("PROBEFORGE_CACHE", cache_dir())
        .args([
            "--catalog",
            cat.to_str().unwrap(),
            "--mirror",
            &mirror,
            "--allow-unsigned",
        ])
        .args([
            "build-all",
            "bw",
            "--arch",
            "x86_64",
            "--only",
            &format!("^{}$", regex::escape(&k.release)),
        ])
        .args([
            "--repo",
            repo.to_str().unwrap(),
            "--driver-source",
            src.to_str().unwrap(),
            "--driver-version",
            "8.0.0+driver",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("index.json")).unwrap()).unwrap();
    assert!(
        index.to_string().contains("\"unsigned_metadata\":true"),
        "{index}"
    );

    // Re-signed by a key nobody trusts: refused naming the signer; trusted with --keyring.
    let key = test_key(t.path(), "someone-else");
    key.clearsign(&dists.join("Release"), &dists.join("InRelease"));
    let (code, _, err) = list(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`InRelease`")
            && err.contains("no valid signature by a trusted key (signed by "),
        "{err}"
    );
    let (code, out, err) = list(&["--keyring", key.public.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&k.release) && !out.contains("unsigned_metadata"),
        "{out}"
    );
    // A keyring file that is not one: a usage error naming it.
    let bogus = t.path().join("bogus.gpg");
    fs::write(&bogus, b"not a key").unwrap();
    let (code, _, err) = list(&["--keyring", bogus.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bogus.gpg"), "{err}");
}

/// `build-all --from` a kernel-crawler list (as `list-kernels --format crawler` writes it):
/// the listed kernel is built and published, marked as listed without signatures.
#[test]
fn build_all_from_a_kernel_crawler_list() {
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    let t = tmpdir();
    let (code, list, err) = run(&[
        "list-kernels",
        "debian-bookworm",
        "--arch",
        "x86_64",
        "--format",
        "crawler",
    ]);
    assert_eq!(code, 0, "{err}");
    let file = t.path().join("crawler.json");
    fs::write(&file, &list).unwrap();
    let repo = t.path().join("repo");
    let src = libs_0_20_0();
    let only = format!("^{}$", regex::escape(&k.release));
    let (code, out, err) = run(&build_all_args(
        &["--from", file.to_str().unwrap(), "--arch", "x86_64"],
        &only,
        &repo,
    ));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ks = v["kernels"].as_array().unwrap();
    assert_eq!(ks.len(), 1, "{out}");
    assert_eq!(ks[0]["release"], k.release.as_str());
    assert!(
        ["built", "cached"].contains(&ks[0]["status"].as_str().unwrap()),
        "{out}"
    );
    let probe = repo.join("8.0.0+driver/x86_64").join(falco_file(&k, "o"));
    assert_eq!(Some(sha256_file(&probe).as_str()), ks[0]["sha256"].as_str());
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["probes"][0]["unsigned_metadata"], true, "{index}");
    // A filter that matches nothing of the list names the list.
    let (code, _, err) = run(&[
        "build-all",
        "--from",
        file.to_str().unwrap(),
        "--arch",
        "x86_64",
        "--only",
        "^9\\.99\\.",
        "--repo",
        repo.to_str().unwrap(),
        "--driver-source",
        src.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("crawler.json") && err.contains("closest"),
        "{err}"
    );
}
