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

/// A binary OpenPGP packet stream without its Trust packets (tag 12, RFC 4880 5.10: "only
/// used within keyrings and not normally exported"). A stream whose framing this does not
/// follow to the end (partial lengths: never in a keyring) is returned as it is.
fn without_trust_packets(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b & 0x80 == 0 {
            return bytes.into();
        }
        let (tag, header, len) = if b & 0x40 == 0 {
            // Old format: length type in the low two bits.
            let n = match b & 3 {
                0 => 1,
                1 => 2,
                2 => 4,
                _ => return bytes.into(),
            };
            let Some(l) = bytes.get(i + 1..i + 1 + n) else {
                return bytes.into();
            };
            let len = l.iter().fold(0usize, |a, &x| (a << 8) | x as usize);
            ((b >> 2) & 0xf, 1 + n, len)
        } else {
            let Some(&o1) = bytes.get(i + 1) else {
                return bytes.into();
            };
            let (n, len) = match o1 {
                0..=191 => (1, o1 as usize),
                192..=223 => match bytes.get(i + 2) {
                    Some(&o2) => (2, ((o1 as usize - 192) << 8) + o2 as usize + 192),
                    None => return bytes.into(),
                },
                255 => match bytes.get(i + 2..i + 6) {
                    Some(l) => (5, l.iter().fold(0usize, |a, &x| (a << 8) | x as usize)),
                    None => return bytes.into(),
                },
                _ => return bytes.into(),
            };
            (b & 0x3f, 1 + n, len)
        };
        let end = i + header + len;
        if end > bytes.len() {
            return bytes.into();
        }
        if tag != 12 {
            out.extend_from_slice(&bytes[i..end]);
        }
        i = end;
    }
    out.into()
}

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
            // A keyring exported by gpg (Ubuntu's) carries its owner's trust packets: local
            // to that owner's trust database, meaningless here, and each one logged by the
            // parser. They are dropped unread.
            let bytes = without_trust_packets(bytes);
            let keys: Result<Vec<SignedPublicKey>, _> =
                SignedPublicKey::from_bytes_many(&bytes[..])
                    .map_err(|e| err(e.to_string()))?
                    .collect();
            keys
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

    /// Ubuntu's keyring carries gpg's trust packets (the pgp crate logged a warning for
    /// each on every Ubuntu command): they are dropped, every key and fingerprint kept.
    #[test]
    fn trust_packets_are_dropped_and_nothing_else() {
        let (_, bytes) = EMBEDDED
            .iter()
            .find(|(n, _)| *n == "ubuntu-archive-keyring.gpg")
            .unwrap();
        let stripped = without_trust_packets(bytes);
        assert!(
            stripped.len() < bytes.len(),
            "the keyring has trust packets"
        );
        // Stripping again finds none: every packet boundary was followed.
        assert_eq!(without_trust_packets(&stripped).len(), stripped.len());
        let kept: Vec<SignedPublicKey> = SignedPublicKey::from_bytes_many(&stripped[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let all: Vec<SignedPublicKey> = SignedPublicKey::from_bytes_many(&bytes[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // The same primary keys; and read without the trust packets, each key keeps its user
        // ids and their signatures, which the parser lost after each trust packet.
        assert_eq!(kept.len(), all.len());
        for (k, a) in kept.iter().zip(&all) {
            assert!(k.primary_key == a.primary_key, "another key");
            assert!(!k.details.users.is_empty(), "a key lost its user ids");
        }
        // Debian's has none: unchanged bytes.
        let (_, deb) = EMBEDDED
            .iter()
            .find(|(n, _)| *n == "debian-archive-keyring.gpg")
            .unwrap();
        assert_eq!(&without_trust_packets(deb)[..], &deb[..]);
    }
}
