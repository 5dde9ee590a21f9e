//! Module signatures for Secure Boot: what the kernel's `scripts/sign-file` appends, made and
//! checked here without shelling out.
//!
//! A signed module is the module's bytes, a detached PKCS#7/CMS `SignedData` over them (no
//! signed attributes, no certificates, the signer named by issuer and serial number, RSA
//! PKCS#1 v1.5), the kernel's `struct module_signature` (all zero but `id_type` 2,
//! `PKEY_ID_PKCS7`, and the big-endian signature length) and the marker
//! `~Module signature appended~\n`. RSA PKCS#1 v1.5 is deterministic, so the bytes equal
//! sign-file's for the same key, certificate and hash.
//!
//! Pure over bytes: callers read the key and certificate. The private key never leaves
//! [`Signer`]: it is not `Debug`, not serialized, and no error quotes it.

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::Digest;
use x509_cert::der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use x509_cert::der::{Decode, DecodePem, Encode, Tag};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::kernel::Config;

/// The marker the kernel looks for at a module's end (`include/linux/module_signature.h`).
pub const MAGIC: &[u8] = b"~Module signature appended~\n";
/// `sizeof(struct module_signature)`.
const INFO_LEN: usize = 12;
/// `PKEY_ID_PKCS7`: the one signature type the kernel accepts for modules.
const PKEY_ID_PKCS7: u8 = 2;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(
        "the signing key is not an unencrypted RSA private key (PEM or DER, PKCS#8 or PKCS#1)"
    )]
    Key,
    #[error("the certificate is not an X.509 certificate (PEM or DER): {0}")]
    Cert(String),
    #[error("the certificate's key is not RSA: only RSA module signatures are made and checked")]
    CertNotRsa,
    #[error("the signing key does not belong to the certificate `{subject}`")]
    KeyCertMismatch { subject: String },
    #[error("kernel `{release}` does not sign modules (no CONFIG_MODULE_SIG_HASH)")]
    NoHash { release: String },
    #[error("module signature hash `{0}` is not supported (sha256, sha384, sha512 are)")]
    Hash(String),
    #[error("the module is already signed")]
    AlreadySigned,
    #[error("cannot read `{}`", .path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rsa: {0}")]
    Rsa(String),
    #[error("encoding the signature: {0}")]
    Encode(String),
    #[error("the module is not signed (no `~Module signature appended~` marker)")]
    Unsigned,
    #[error("the module's signature block is malformed: {0}")]
    Malformed(String),
    #[error("the module is signed by issuer `{signer_issuer}` serial {signer_serial}, not by the certificate `{cert_subject}` (issuer `{cert_issuer}` serial {cert_serial})")]
    OtherSigner {
        signer_issuer: String,
        signer_serial: String,
        cert_subject: String,
        cert_issuer: String,
        cert_serial: String,
    },
    #[error("the module's signature does not verify against the certificate `{subject}` (the module was altered after signing, or signed by another key)")]
    BadSignature { subject: String },
}

/// A module signature's hash (`CONFIG_MODULE_SIG_HASH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn parse(name: &str) -> Result<Hash, SignError> {
        match name.trim().trim_matches('"') {
            "sha256" => Ok(Hash::Sha256),
            "sha384" => Ok(Hash::Sha384),
            "sha512" => Ok(Hash::Sha512),
            other => Err(SignError::Hash(other.to_owned())),
        }
    }

    /// The kernel's own choice, from its configuration.
    pub fn of_kernel(config: &Config, release: &str) -> Result<Hash, SignError> {
        let v = config
            .get("MODULE_SIG_HASH")
            .ok_or_else(|| SignError::NoHash {
                release: release.to_owned(),
            })?;
        Hash::parse(v)
    }

    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Hash::Sha256 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
            Hash::Sha384 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2"),
            Hash::Sha512 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3"),
        }
    }

    fn from_oid(oid: &ObjectIdentifier) -> Option<Hash> {
        [Hash::Sha256, Hash::Sha384, Hash::Sha512]
            .into_iter()
            .find(|h| h.oid() == *oid)
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn scheme(self) -> Pkcs1v15Sign {
        match self {
            Hash::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            Hash::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            Hash::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }
}

/// Who a certificate names: what provenance and reports record of a signer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertIdentity {
    pub subject: String,
    pub issuer: String,
    /// Hex, as the certificate encodes it.
    pub serial: String,
    /// The subject key identifier (hex), the id the kernel prints when it loads the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// An X.509 certificate, parsed.
#[derive(Debug, Clone)]
pub struct Cert {
    cert: Certificate,
    key: RsaPublicKey,
    pub identity: CertIdentity,
}

impl Cert {
    /// A certificate file (`--sign-cert`).
    pub fn from_file(path: &std::path::Path) -> Result<Cert, SignError> {
        let bytes = std::fs::read(path).map_err(|source| SignError::Read {
            path: path.to_owned(),
            source,
        })?;
        Cert::parse(&bytes)
    }

    /// A PEM or DER certificate.
    pub fn parse(bytes: &[u8]) -> Result<Cert, SignError> {
        let cert = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            Certificate::from_pem(bytes)
        } else {
            Certificate::from_der(bytes)
        }
        .map_err(|e| SignError::Cert(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let spki = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| SignError::Cert(e.to_string()))?;
        let key = RsaPublicKey::from_public_key_der(&spki).map_err(|_| SignError::CertNotRsa)?;
        let key_id = tbs.extensions.iter().flatten().find_map(|e| {
            (e.extn_id == SUBJECT_KEY_ID)
                .then(|| OctetString::from_der(e.extn_value.as_bytes()).ok())
                .flatten()
                .map(|o| hex::encode(o.as_bytes()))
        });
        let identity = CertIdentity {
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            serial: hex::encode(tbs.serial_number.as_bytes()),
            key_id,
        };
        Ok(Cert {
            cert,
            key,
            identity,
        })
    }

    /// The certificate in DER, as firmware databases (`db`, shim's `MokList`) hold it.
    pub fn der(&self) -> Vec<u8> {
        self.cert.to_der().expect("a parsed certificate encodes")
    }
}

/// A private key and its certificate: what signs modules.
pub struct Signer {
    key: RsaPrivateKey,
    cert: Cert,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert", &self.cert.identity)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// An unencrypted RSA key (PEM or DER; PKCS#8 or PKCS#1) and its certificate (PEM or DER).
    /// A key that is not the certificate's is refused here, not at the first module.
    pub fn new(key: &[u8], cert: &[u8]) -> Result<Signer, SignError> {
        let key = parse_key(key)?;
        let cert = Cert::parse(cert)?;
        if RsaPublicKey::from(&key) != cert.key {
            return Err(SignError::KeyCertMismatch {
                subject: cert.identity.subject.clone(),
            });
        }
        Ok(Signer { key, cert })
    }

    /// [`Signer::new`] from files (`--sign-key`, `--sign-cert`).
    pub fn from_files(key: &std::path::Path, cert: &std::path::Path) -> Result<Signer, SignError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| SignError::Read {
                path: p.to_owned(),
                source,
            })
        };
        Signer::new(&read(key)?, &read(cert)?)
    }

    pub fn identity(&self) -> &CertIdentity {
        &self.cert.identity
    }

    pub fn cert(&self) -> &Cert {
        &self.cert
    }

    /// The module with its signature appended, as `sign-file <hash> key cert module` writes it.
    pub fn sign(&self, module: &[u8], hash: Hash) -> Result<Vec<u8>, SignError> {
        if module.ends_with(MAGIC) {
            return Err(SignError::AlreadySigned);
        }
        let mut rng = rand::rngs::OsRng;
        let signature = self
            .key
            .sign_with_rng(&mut rng, hash.scheme(), &hash.digest(module))
            .map_err(|e| SignError::Rsa(e.to_string()))?;
        let pkcs7 = signed_data(&self.cert.cert, hash, signature)?;
        let mut out = Vec::with_capacity(module.len() + pkcs7.len() + INFO_LEN + MAGIC.len());
        out.extend_from_slice(module);
        out.extend_from_slice(&pkcs7);
        out.extend_from_slice(&[0, 0, PKEY_ID_PKCS7, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&(pkcs7.len() as u32).to_be_bytes());
        out.extend_from_slice(MAGIC);
        Ok(out)
    }
}

impl Signer {
    /// [`Signer::sign`], then the result verified against the certificate, so a module that
    /// leaves here carries a signature the certificate's key checks.
    pub fn sign_checked(&self, module: &[u8], hash: Hash) -> Result<Vec<u8>, SignError> {
        let signed = self.sign(module, hash)?;
        verify(&signed, &self.cert)?;
        Ok(signed)
    }
}

fn parse_key(bytes: &[u8]) -> Result<RsaPrivateKey, SignError> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if text.contains("-----BEGIN") {
            return RsaPrivateKey::from_pkcs8_pem(text)
                .or_else(|_| RsaPrivateKey::from_pkcs1_pem(text))
                .map_err(|_| SignError::Key);
        }
    }
    RsaPrivateKey::from_pkcs8_der(bytes)
        .or_else(|_| RsaPrivateKey::from_pkcs1_der(bytes))
        .map_err(|_| SignError::Key)
}

/// The detached `ContentInfo { signedData }` OpenSSL's CMS writes for sign-file: version 1, the
/// digest algorithm without parameters, `id-data` without content, no certificates, one
/// signer named by issuer and serial, `rsaEncryption` with NULL parameters.
fn signed_data(cert: &Certificate, hash: Hash, signature: Vec<u8>) -> Result<Vec<u8>, SignError> {
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{
        EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
    };
    let enc = |e: x509_cert::der::Error| SignError::Encode(e.to_string());
    let digest_alg = AlgorithmIdentifierOwned {
        oid: hash.oid(),
        parameters: None,
    };
    let info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(cms::cert::IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: None,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::new(Tag::Null, Vec::<u8>::new()).map_err(enc)?),
        },
        signature: OctetString::new(signature).map_err(enc)?,
        unsigned_attrs: None,
    };
    let mut digests = SetOfVec::new();
    digests.insert(digest_alg).map_err(enc)?;
    let mut infos = SetOfVec::new();
    infos.insert(info).map_err(enc)?;
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: digests,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(infos),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)
}

/// What signing a module recorded: the hash and the signer's certificate (never the key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signed {
    pub hash: Hash,
    #[serde(flatten)]
    pub signer: CertIdentity,
}

/// Signs a freshly built module for `tree`'s kernel (its `CONFIG_MODULE_SIG_HASH`), updating
/// its bytes and digest, and checks the signature against the certificate before handing it on.
pub fn sign_module(
    signer: &Signer,
    module: &mut super::Module,
    tree: &crate::kernel::KernelTree,
) -> Result<(), SignError> {
    let hash = Hash::of_kernel(&tree.config, &tree.release)?;
    let signed = signer.sign_checked(&module.bytes, hash)?;
    module.sha256 = crate::base::sha256(&signed);
    module.bytes = signed;
    module.signed_by = Some(Signed {
        hash,
        signer: signer.identity().clone(),
    });
    Ok(())
}

/// What a module's signature says, read without a certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signature {
    pub hash: Hash,
    /// The signer as the signature names it: its certificate's issuer and serial (hex), or a
    /// subject key identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Bytes of the PKCS#7 block.
    pub length: usize,
}

/// A module split at its signature.
struct Parsed<'a> {
    content: &'a [u8],
    signature: Signature,
    sid: cms::signed_data::SignerIdentifier,
    value: Vec<u8>,
}

/// The module without its signature (the bytes the signature covers); the whole module when
/// it is unsigned.
pub fn unsigned_part(module: &[u8]) -> &[u8] {
    parse(module).map(|p| p.content).unwrap_or(module)
}

/// The module's signature: `Ok(None)` when it has none, an error when the block is malformed.
pub fn read(module: &[u8]) -> Result<Option<Signature>, SignError> {
    match parse(module) {
        Ok(p) => Ok(Some(p.signature)),
        Err(SignError::Unsigned) => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse(module: &[u8]) -> Result<Parsed<'_>, SignError> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::{SignedData, SignerIdentifier};
    let bad = |m: String| SignError::Malformed(m);
    let body = module.strip_suffix(MAGIC).ok_or(SignError::Unsigned)?;
    let info_at = body
        .len()
        .checked_sub(INFO_LEN)
        .ok_or_else(|| bad("shorter than its signature information".into()))?;
    let info = &body[info_at..];
    if info[2] != PKEY_ID_PKCS7 {
        return Err(bad(format!(
            "id type {} is not PKCS#7 ({PKEY_ID_PKCS7})",
            info[2]
        )));
    }
    let sig_len = u32::from_be_bytes(info[8..12].try_into().expect("4 bytes")) as usize;
    let start = info_at
        .checked_sub(sig_len)
        .ok_or_else(|| bad(format!("signature length {sig_len} exceeds the module")))?;
    let der = &body[start..info_at];
    let ci = ContentInfo::from_der(der).map_err(|e| bad(format!("PKCS#7: {e}")))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(bad(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| bad(format!("SignedData: {e}")))?;
    let mut signers = sd.signer_infos.0.into_vec();
    if signers.len() != 1 {
        return Err(bad(format!(
            "{} signers, the kernel wants one",
            signers.len()
        )));
    }
    let si = signers.remove(0);
    if si.signed_attrs.is_some() {
        return Err(bad("signed attributes are not supported".into()));
    }
    let hash = Hash::from_oid(&si.digest_alg.oid)
        .ok_or_else(|| bad(format!("digest algorithm {}", si.digest_alg.oid)))?;
    let (issuer, serial, key_id) = match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(i) => (
            Some(i.issuer.to_string()),
            Some(hex::encode(i.serial_number.as_bytes())),
            None,
        ),
        SignerIdentifier::SubjectKeyIdentifier(k) => {
            (None, None, Some(hex::encode(k.0.as_bytes())))
        }
    };
    Ok(Parsed {
        content: &module[..start],
        signature: Signature {
            hash,
            issuer,
            serial,
            key_id,
            length: sig_len,
        },
        value: si.signature.as_bytes().to_vec(),
        sid: si.sid,
    })
}

/// Checks the module's signature against `cert` as the kernel would: the signer is the
/// certificate (issuer and serial, or key id), and its RSA PKCS#1 v1.5 signature verifies over
/// the module's bytes before the signature.
pub fn verify(module: &[u8], cert: &Cert) -> Result<Signature, SignError> {
    use cms::signed_data::SignerIdentifier;
    let p = parse(module)?;
    let tbs = &cert.cert.tbs_certificate;
    let same = match &p.sid {
        SignerIdentifier::IssuerAndSerialNumber(i) => {
            i.issuer == tbs.issuer && i.serial_number == tbs.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(k) => {
            cert.identity.key_id.as_deref() == Some(hex::encode(k.0.as_bytes()).as_str())
        }
    };
    if !same {
        let s = &p.signature;
        return Err(SignError::OtherSigner {
            signer_issuer: s.issuer.clone().unwrap_or_else(|| "-".into()),
            signer_serial: s
                .serial
                .clone()
                .or_else(|| s.key_id.as_ref().map(|k| format!("(key id {k})")))
                .unwrap_or_default(),
            cert_subject: cert.identity.subject.clone(),
            cert_issuer: cert.identity.issuer.clone(),
            cert_serial: cert.identity.serial.clone(),
        });
    }
    let h = p.signature.hash;
    cert.key
        .verify(h.scheme(), &h.digest(p.content), &p.value)
        .map_err(|_| SignError::BadSignature {
            subject: cert.identity.subject.clone(),
        })?;
    Ok(p.signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_from_the_kernel_config() {
        let c = Config::parse_dotconfig("CONFIG_MODULE_SIG_HASH=\"sha512\"\n");
        assert_eq!(Hash::of_kernel(&c, "r").unwrap(), Hash::Sha512);
        let none = Config::parse_dotconfig("CONFIG_X=y\n");
        assert!(matches!(
            Hash::of_kernel(&none, "r"),
            Err(SignError::NoHash { .. })
        ));
        assert!(matches!(Hash::parse("\"md5\""), Err(SignError::Hash(_))));
    }

    #[test]
    fn unsigned_and_truncated_blocks() {
        assert!(read(b"\x7fELF...").unwrap().is_none());
        let mut m = b"\x7fELF".to_vec();
        m.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        m.extend_from_slice(MAGIC);
        assert!(matches!(read(&m), Err(SignError::Malformed(_))));
    }
}
