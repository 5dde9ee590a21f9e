//! Repositories: live Debian through the machine's APT mirror; YUM (Amazon Linux layout with
//! mirror.list) built by rpmbuild + createrepo_c on loopback; faults from a loopback server.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
            if suite != "trixie" || arch == Arch::X86_64 {
                assert!(
                    all.iter().any(|k| k.origin == format!("{suite}-security"))
                        || suite == "trixie",
                    "{suite} {arch}: nothing from security"
                );
            }
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

#[test]
fn build_from_a_target_fetches_verifies_and_builds() {
    let (k, _) = debian_kernel("bullseye", Arch::X86_64);
    let t = tmpdir();
    let src = libs_0_20_0();
    let (code, out, err) = run(&[
        "build",
        "--target",
        "debian-bullseye",
        "--kernel",
        &k.release,
        "--driver-source",
        src.to_str().unwrap(),
        "--driver-version",
        "8.0.0+driver",
        "-o",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("falco_debian_{}_1.o", k.release)),
        "{out}"
    );
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
    fs::create_dir_all(repo.join("Packages")).unwrap();
    fs::copy(&rpm, repo.join("Packages").join(rpm.file_name().unwrap())).unwrap();
    let o = Command::new("createrepo_c")
        .arg("--quiet")
        .arg(&repo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let server = Server::start(srv_root.clone());
    fs::write(
        srv_root.join("2/core/2.0/x86_64/mirror.list"),
        format!("{}/2/core/2.0/x86_64/0123abcd/\n", server.base),
    )
    .unwrap();

    let cache = t.path().join("cache");
    let client = loopback_client(&cache);
    let cat = Catalog::embedded();
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
    Catalog::parse(r#"{"mirrors": {}, "targets": [{"name": "bw", "kind": "apt", "target_id": "debian", "mirror": "debian", "suites": [{"suite": "bookworm"}], "components": ["main"], "arches": ["x86_64"]}]}"#).unwrap()
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

    // A Release whose digest does not match the Packages it lists.
    let rel = root.join("debian/dists/bookworm/Release");
    let text = fs::read_to_string(&rel)
        .unwrap()
        .replace(&pk_hash, &"0".repeat(64));
    fs::write(&rel, text).unwrap();
    let fresh = loopback_client(&t.path().join("cache2"));
    let l2 = Lister {
        client: &fresh,
        catalog: &cat,
        mirrors: &m,
    };
    let e = format!(
        "{:#}",
        anyhow::Error::from(l2.list("bw", &[Arch::X86_64]).unwrap_err())
    );
    assert!(
        e.contains("HTTP 404") || e.contains("does not match"),
        "{e}"
    );
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
    assert_eq!(o.status.code(), Some(1));
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
    let root = t.path().join("srv/ubuntu");
    let pool = root.join("pool/main/l/linux");
    fs::create_dir_all(&pool).unwrap();
    for d in [&common_deb, &flavour_deb] {
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
    let server = Server::start(t.path().join("srv"));

    let url = format!("ubuntu={}/ubuntu", server.base);
    let cache = t.path().join("cache");
    let o = Command::new(bin())
        .args([
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
    let e = &v["Ubuntu"][0];
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
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out_dir
        .join(format!("falco_ubuntu-generic_{rel}_{upload}.o"))
        .is_file());
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
