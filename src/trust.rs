//! Trust in repository metadata: OpenPGP signatures of APT `InRelease` / `Release.gpg` and YUM
//! `repomd.xml.asc`, checked against the target's keyring before anything they list is used.
//!
//! This is the one module that decides whether metadata is signed by a key we trust. It only
//! verifies bytes it is given (no IO, no network); keyrings are data (`catalog/keys/`,
//! embedded, or a user's file). It never decides policy: whether unsigned metadata may be used
//! (`--allow-unsigned`) is the caller's choice, and the caller records it.
//!
//! It also makes the one kind of signature probeforge writes: a detached, ASCII-armored
//! signature of a repository's `SHA256SUMS` (`SHA256SUMS.asc`), checked by the same
//! [`verify_detached`] as anyone else's.

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey,
    SignedSecretKey,
};
use pgp::types::{KeyDetails, Password};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("keyring `{source_name}`: {what}")]
    Keyring { source_name: String, what: String },
    #[error("`{file}` of `{repo}` is not signed{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Unsigned {
        repo: String,
        file: String,
        detail: Option<String>,
    },
    #[error("`{file}` of `{repo}`: no valid signature by a trusted key (signed by {signers}; trusted: {trusted})")]
    BadSignature {
        repo: String,
        file: String,
        signers: String,
        trusted: String,
    },
    #[error("signing key `{source_name}`: {what}")]
    SigningKey { source_name: String, what: String },
}

/// A secret key that signs what probeforge publishes (`build-all --sign-key`). Its primary
/// key signs (what `gpg --quick-gen-key NAME ed25519 sign` makes); a passphrase, if the key
/// has one, comes from the caller.
#[derive(Debug, Clone)]
pub struct SigningKey {
    key: SignedSecretKey,
    password: String,
    source_name: String,
}

impl SigningKey {
    /// One secret key, binary or ASCII-armored (`gpg --export-secret-keys [--armor]`). The
    /// passphrase is tried at once, so a wrong one fails here rather than at the first write.
    pub fn parse(bytes: &[u8], source_name: &str, passphrase: &str) -> Result<SigningKey, Error> {
        let err = |what: String| Error::SigningKey {
            source_name: source_name.to_owned(),
            what,
        };
        let key = if bytes.starts_with(b"-----BEGIN") {
            SignedSecretKey::from_armor_single(bytes).map(|(k, _)| k)
        } else {
            SignedSecretKey::from_bytes(bytes)
        }
        .map_err(|e| err(format!("not an OpenPGP secret key: {e}")))?;
        let k = SigningKey {
            key,
            password: passphrase.to_owned(),
            source_name: source_name.to_owned(),
        };
        k.sign_detached(b"probe").map_err(|e| match e {
            Error::SigningKey { what, .. } => err(format!(
                "{what} (a protected key takes its passphrase from PROBEFORGE_SIGN_PASSPHRASE)"
            )),
            other => other,
        })?;
        Ok(k)
    }

    /// The public half, as a keyring (for checking what this key signed).
    pub fn public(&self) -> Keyring {
        Keyring {
            keys: vec![self.key.to_public_key()],
            sources: vec![self.source_name.clone()],
        }
    }

    /// Upper-case hex fingerprint of the signing key.
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.key.primary_key.fingerprint())
    }

    /// A detached binary-mode signature over `data`, ASCII-armored (what
    /// `gpg --armor --detach-sign` writes, and `gpg --verify FILE.asc` checks).
    pub fn sign_detached(&self, data: &[u8]) -> Result<String, Error> {
        let err = |what: String| Error::SigningKey {
            source_name: self.source_name.clone(),
            what,
        };
        let pw = Password::from(self.password.as_str());
        let sig = DetachedSignature::sign_binary_data(
            rand::rngs::OsRng,
            &self.key.primary_key,
            &pw,
            pgp::crypto::hash::HashAlgorithm::Sha256,
            data,
        )
        .map_err(|e| err(format!("cannot sign: {e}")))?;
        sig.to_armored_string(ArmorOptions::default())
            .map_err(|e| err(format!("cannot armor the signature: {e}")))
    }
}

/// Public keys trusted for one target, with where they came from.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    sources: Vec<String>,
}

/// The archive keys shipped with probeforge (`catalog/keys/`), by file name.
const EMBEDDED: &[(&str, &[u8])] = &[
    (
        "debian-archive-keyring.gpg",
        include_bytes!("../catalog/keys/debian-archive-keyring.gpg"),
    ),
    (
        "ubuntu-archive-keyring.gpg",
        include_bytes!("../catalog/keys/ubuntu-archive-keyring.gpg"),
    ),
    (
        "RPM-GPG-KEY-amazon-linux-2",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-amazon-linux-2"),
    ),
    (
        "RPM-GPG-KEY-amazon-linux-2023",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-amazon-linux-2023"),
    ),
    (
        "RPM-GPG-KEY-CentOS-Official-SHA256",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-CentOS-Official-SHA256"),
    ),
    (
        "RPM-GPG-KEY-Rocky-9",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-Rocky-9"),
    ),
    (
        "RPM-GPG-KEY-AlmaLinux-9",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-AlmaLinux-9"),
    ),
    (
        "RPM-GPG-KEY-oracle-ol9",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-oracle-ol9"),
    ),
    (
        "archlinux.gpg",
        include_bytes!("../catalog/keys/archlinux.gpg"),
    ),
    (
        "RPM-GPG-KEY-fedora-41-primary",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-fedora-41-primary"),
    ),
    (
        "RPM-GPG-KEY-openSUSE-2022",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-openSUSE-2022"),
    ),
    (
        "RPM-GPG-KEY-SuSE-SLE-15",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-SuSE-SLE-15"),
    ),
    (
        "RPM-GPG-KEY-SuSE-SLE-Main-2023",
        include_bytes!("../catalog/keys/RPM-GPG-KEY-SuSE-SLE-Main-2023"),
    ),
];

impl Keyring {
    /// Every key in `bytes`: a binary keyring (`.gpg`, as Debian ships) or ASCII-armored keys.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Keyring, Error> {
        let err = |what: String| Error::Keyring {
            source_name: source_name.to_owned(),
            what,
        };
        let armored = bytes.starts_with(b"-----BEGIN");
        let keys: Vec<SignedPublicKey> = if armored {
            SignedPublicKey::from_armor_many(bytes)
                .map_err(|e| err(e.to_string()))?
                .0
                .collect::<Result<_, _>>()
        } else {
            SignedPublicKey::from_bytes_many(bytes)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<_, _>>()
        }
        .map_err(|e| err(e.to_string()))?;
        if keys.is_empty() {
            return Err(err("holds no public key".into()));
        }
        Ok(Keyring {
            keys,
            sources: vec![source_name.to_owned()],
        })
    }

    /// A keyring shipped with probeforge, by its file name in `catalog/keys/`.
    pub fn embedded(name: &str) -> Result<Keyring, Error> {
        let (_, bytes) =
            EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| Error::Keyring {
                    source_name: name.to_owned(),
                    what: format!(
                        "not shipped with probeforge (shipped: {})",
                        EMBEDDED
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
        Keyring::parse(bytes, name)
    }

    pub fn extend(&mut self, other: Keyring) {
        self.keys.extend(other.keys);
        self.sources.extend(other.sources);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Where the keys came from, for messages and provenance.
    pub fn describe(&self) -> String {
        if self.sources.is_empty() {
            "none".into()
        } else {
            self.sources.join(", ")
        }
    }

    /// Does any key (primary or subkey) verify this signature over `data`?
    fn verifies(&self, sig: &pgp::packet::Signature, data: &[u8]) -> bool {
        self.keys.iter().any(|k| {
            sig.verify(&k.primary_key, data).is_ok()
                || k.public_subkeys
                    .iter()
                    .any(|s| sig.verify(&s.key, data).is_ok())
        })
    }
}

fn signers(sigs: &[&pgp::packet::Signature]) -> String {
    let ids: Vec<String> = sigs
        .iter()
        .flat_map(|s| {
            let fp: Vec<String> = s
                .issuer_fingerprint()
                .iter()
                .map(|f| format!("{f:X}"))
                .collect();
            if fp.is_empty() {
                s.issuer_key_id()
                    .iter()
                    .map(|k| hex::encode_upper(k.as_ref()))
                    .collect()
            } else {
                fp
            }
        })
        .collect();
    if ids.is_empty() {
        "an unnamed key".into()
    } else {
        ids.join(", ")
    }
}

/// Checks a clear-signed file (APT `InRelease`) and returns the text that was signed, with
/// `\n` line ends: only that text may be parsed, never what surrounds the signature block.
pub fn verify_cleartext(
    bytes: &[u8],
    keyring: &Keyring,
    repo: &str,
    file: &str,
) -> Result<String, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::Unsigned {
        repo: repo.to_owned(),
        file: file.to_owned(),
        detail: Some("not text".into()),
    })?;
    let (msg, _) = CleartextSignedMessage::from_string(text).map_err(|e| Error::Unsigned {
        repo: repo.to_owned(),
        file: file.to_owned(),
        detail: Some(e.to_string()),
    })?;
    let signed = msg.signed_text();
    let sigs: Vec<&pgp::packet::Signature> = msg.signatures().iter().collect();
    if !sigs.iter().any(|s| keyring.verifies(s, signed.as_bytes())) {
        return Err(Error::BadSignature {
            repo: repo.to_owned(),
            file: file.to_owned(),
            signers: signers(&sigs),
            trusted: keyring.describe(),
        });
    }
    Ok(signed.replace("\r\n", "\n"))
}

/// Checks a detached signature (APT `Release.gpg`, YUM `repomd.xml.asc`) over `data`.
pub fn verify_detached(
    data: &[u8],
    signature: &[u8],
    keyring: &Keyring,
    repo: &str,
    file: &str,
) -> Result<(), Error> {
    let unsigned = |d: String| Error::Unsigned {
        repo: repo.to_owned(),
        file: file.to_owned(),
        detail: Some(d),
    };
    let sigs: Vec<DetachedSignature> = if signature.starts_with(b"-----BEGIN") {
        DetachedSignature::from_armor_many(signature)
            .map_err(|e| unsigned(e.to_string()))?
            .0
            .collect::<Result<_, _>>()
    } else {
        DetachedSignature::from_bytes_many(signature)
            .map_err(|e| unsigned(e.to_string()))?
            .collect::<Result<_, _>>()
    }
    .map_err(|e| unsigned(e.to_string()))?;
    let inner: Vec<&pgp::packet::Signature> = sigs.iter().map(|s| &s.signature).collect();
    if inner.is_empty() {
        return Err(unsigned("no signature in the signature file".into()));
    }
    if !inner.iter().any(|s| keyring.verifies(s, data)) {
        return Err(Error::BadSignature {
            repo: repo.to_owned(),
            file: file.to_owned(),
            signers: signers(&inner),
            trusted: keyring.describe(),
        });
    }
    Ok(())
}

/// Key fingerprints of a keyring, upper-case hex (for tests and `--json`).
pub fn fingerprints(k: &Keyring) -> Vec<String> {
    k.keys
        .iter()
        .map(|k| format!("{:X}", k.fingerprint()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_keyring_parses() {
        for (name, _) in EMBEDDED {
            let k = Keyring::embedded(name).unwrap_or_else(|e| panic!("{e}"));
            assert!(!k.is_empty(), "{name}");
        }
        assert!(Keyring::embedded("nope.gpg").is_err());
    }
}
