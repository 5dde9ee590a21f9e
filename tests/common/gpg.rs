//! A throwaway OpenPGP key made by gpg(1), as a repository's owner makes one: its gpg home, its
//! exported public keyring (what `--keyring` takes) and its armored secret key (what
//! `--sign-key` takes); signing with it is the outside reference for probeforge's checks.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestKey {
    pub home: PathBuf,
    pub public: PathBuf,
    pub secret: PathBuf,
}

pub fn test_key(dir: &Path, name: &str) -> TestKey {
    let home = dir.join(format!("gnupg-{name}"));
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let k = TestKey {
        public: dir.join(format!("{name}.gpg")),
        secret: dir.join(format!("{name}.sec.asc")),
        home,
    };
    k.gpg(&[
        "--quick-gen-key",
        &format!("{name} <{name}@example.invalid>"),
        "ed25519",
        "sign",
        "never",
    ]);
    let public = k.gpg(&["--export"]);
    assert!(!public.is_empty(), "gpg exported no public key");
    fs::write(&k.public, public).unwrap();
    fs::write(&k.secret, k.gpg(&["--armor", "--export-secret-keys"])).unwrap();
    k
}

impl TestKey {
    /// Runs gpg in this key's home; fails the test naming the arguments when gpg fails.
    pub fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let o = self.gpg_status(args);
        assert!(
            o.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    }

    pub fn gpg_status(&self, args: &[&str]) -> std::process::Output {
        Command::new("gpg")
            .env("GNUPGHOME", &self.home)
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .unwrap()
    }

    /// `InRelease` from `Release`.
    pub fn clearsign(&self, input: &Path, output: &Path) {
        self.gpg(&[
            "--clearsign",
            "-o",
            output.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
    }
    /// A detached signature (`Release.gpg`, `repomd.xml.asc`).
    pub fn detach(&self, input: &Path, output: &Path, armor: bool) {
        let mut a = vec!["--detach-sign", "-o", output.to_str().unwrap()];
        if armor {
            a.push("--armor");
        }
        a.push(input.to_str().unwrap());
        self.gpg(&a);
    }
}
