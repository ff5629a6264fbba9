//! Authenticode verification of PE files (drivers, executables) without Windows APIs, so
//! the same checks run, and are tested, on every host.
//!
//! The checks, in order; the first that fails names itself ([`Check`]):
//!
//! 1. **pe**: the file is a PE image whose certificate table (the security data
//!    directory) lies inside the file and ends it (data appended after a signature is a
//!    known way to smuggle content past naive checkers, so it is refused).
//! 2. **unsigned**: there is a certificate table with a PKCS#7 `SignedData` entry.
//! 3. **format**: it parses as Authenticode: one signer, `SpcIndirectDataContent`
//!    content, signed attributes present, digest algorithm SHA-256/384/512 (SHA-1 and
//!    MD5 are refused).
//! 4. **file digest**: the Authenticode digest of the file (everything but the checksum
//!    field, the security directory entry and the certificate table) equals the digest
//!    in `SpcIndirectDataContent`.
//! 5. **signed attributes**: their `messageDigest` equals the digest of the content
//!    (and `contentType`, when present, names `SpcIndirectDataContent`).
//! 6. **signature**: the signer certificate (found by issuer and serial number among the
//!    signature's certificates) verifies the signature over the signed attributes
//!    (RSA PKCS#1 v1.5, or ECDSA P-256).
//! 7. **chain**: from the signer certificate, each certificate's signature verifies
//!    with the next one's key and the next one is a CA (`basicConstraints`), until a
//!    certificate whose SHA-256 thumbprint is the pinned one, or the pinned CA itself
//!    issued it.
//! 8. **usage**: the signer certificate, if it limits its use (extended key usage),
//!    allows code signing.
//! 9. **validity**: every certificate on the chain is valid at the time of the check.
//!
//! A timestamp countersignature (RFC 3161, or the legacy PKCS#9 one) is reported but not
//! verified, and so does not extend a certificate's validity: an expired signer is
//! refused. Revocation is not checked (no network, no CRLs in kits).
//!
//! Test-signing ([`Policy::allow_test_signing`]) accepts a file whose digest and
//! signature are intact but whose chain, usage or validity fails; the failures are then
//! returned as warnings for the caller to show loudly.

use std::fmt;
use std::time::{Duration, SystemTime};

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::manifest::hex;

const SPC_INDIRECT_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
const SPC_PE_IMAGE_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const COUNTER_SIGNATURE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.6");
const RFC3161_TIMESTAMP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.3.3.1");
const NESTED_SIGNATURE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.4.1");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const MD5: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const P256_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const ANY_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");

/// `WIN_CERTIFICATE.wCertificateType` of a PKCS#7 SignedData entry.
const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 2;
/// Chains longer than this are refused (real ones have 2 to 4 certificates).
const MAX_CHAIN: usize = 8;

/// Which check refused a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// The file is not a well-formed PE image.
    Pe,
    /// The file carries no signature.
    Unsigned,
    /// The signature is not well-formed Authenticode.
    Format,
    /// The file's content differs from what was signed.
    FileDigest,
    /// The signed attributes do not belong to the signed content.
    SignedAttributes,
    /// The signature does not verify with the signer certificate.
    Signature,
    /// The signer does not chain to the pinned certificate.
    Chain,
    /// The signer certificate is not for code signing.
    Usage,
    /// A certificate on the chain is expired or not yet valid.
    Validity,
}

impl Check {
    /// The check's name in messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Pe => "pe",
            Check::Unsigned => "unsigned",
            Check::Format => "format",
            Check::FileDigest => "file digest",
            Check::SignedAttributes => "signed attributes",
            Check::Signature => "signature",
            Check::Chain => "chain",
            Check::Usage => "usage",
            Check::Validity => "validity",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused file: which check failed, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{check} check failed: {message}")]
pub struct Refused {
    /// The check that failed.
    pub check: Check,
    /// What was found, with the values compared.
    pub message: String,
}

fn refuse<T>(check: Check, message: impl Into<String>) -> Result<T, Refused> {
    Err(Refused {
        check,
        message: message.into(),
    })
}

/// What the signer must chain to.
#[derive(Debug, Clone)]
pub enum Pin {
    /// A certificate's SHA-256 thumbprint (of its DER encoding): the signer's own, or
    /// one of its issuers' in the signature.
    Thumbprint([u8; 32]),
    /// A CA certificate (from the kit): it must have issued the signer or one of the
    /// signature's intermediate certificates.
    Ca(Box<Certificate>),
}

impl Pin {
    /// Parses `sha256:HEX` or bare 64 hex digits.
    pub fn thumbprint(s: &str) -> Option<Pin> {
        let h = s.strip_prefix("sha256:").unwrap_or(s);
        if h.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Pin::Thumbprint(out))
    }

    /// Reads a CA certificate, PEM or DER.
    pub fn ca(bytes: &[u8]) -> Result<Pin, der::Error> {
        use der::DecodePem;
        let cert = if bytes.starts_with(b"-----") {
            Certificate::from_pem(bytes)?
        } else {
            Certificate::from_der(bytes)?
        };
        Ok(Pin::Ca(Box::new(cert)))
    }

    fn describe(&self) -> String {
        match self {
            Pin::Thumbprint(t) => format!("certificate sha256:{}", hex(t)),
            Pin::Ca(c) => format!("CA \"{}\"", c.tbs_certificate.subject),
        }
    }
}

/// How to judge a signature.
#[derive(Debug, Clone)]
pub struct Policy {
    /// What the signer must chain to; `None` only makes sense with test-signing.
    pub pin: Option<Pin>,
    /// The time certificates must be valid at (normally now).
    pub at: SystemTime,
    /// Accept a file whose chain, usage or validity check fails, as long as it is
    /// intact (digest and signature verify); the failures become warnings.
    pub allow_test_signing: bool,
}

/// What a trusted (or test-signed) file was signed with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The signer certificate's subject (RFC 4514).
    pub signer: String,
    /// The signer certificate's issuer.
    pub issuer: String,
    /// SHA-256 thumbprint of the signer certificate, lowercase hex.
    pub thumbprint: String,
    /// The signer certificate's validity, as RFC 3339 UTC.
    pub not_before: String,
    /// End of the signer certificate's validity.
    pub not_after: String,
    /// The subjects from the signer to the trust anchor.
    pub chain: Vec<String>,
    /// The Authenticode digest algorithm (sha256, sha384, sha512).
    pub digest_algorithm: String,
    /// The Authenticode digest of the file, lowercase hex.
    pub file_digest: String,
    /// The signing time the signer claimed (signed attribute), if any.
    pub signing_time: Option<String>,
    /// A timestamp countersignature, if present (reported, not verified).
    pub timestamp: Option<String>,
    /// Checks that failed but were allowed by test-signing; empty when fully trusted.
    pub warnings: Vec<String>,
}

/// Where the parts of a PE image are that the Authenticode digest skips.
#[derive(Debug)]
struct PeLayout {
    /// Offset of the optional header's CheckSum field (4 bytes).
    checksum: usize,
    /// Offset of the security data directory entry (8 bytes).
    security_dir: usize,
    /// The certificate table (offset, size), when the file has one.
    cert_table: Option<(usize, usize)>,
}

fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Reads the PE headers (PE32 or PE32+): the offsets the digest needs.
fn pe_layout(d: &[u8]) -> Result<PeLayout, Refused> {
    let bad = |m: &str| Refused {
        check: Check::Pe,
        message: m.to_owned(),
    };
    if d.get(..2) != Some(b"MZ") {
        return Err(bad("not a PE file (no MZ header)"));
    }
    let e_lfanew = u32_at(d, 0x3c).ok_or_else(|| bad("truncated DOS header"))? as usize;
    if d.get(e_lfanew..e_lfanew.saturating_add(4)) != Some(b"PE\0\0") {
        return Err(bad(
            "no PE signature where the DOS header points (e_lfanew)",
        ));
    }
    let coff = e_lfanew + 4;
    let size_opt = u16_at(d, coff + 16).ok_or_else(|| bad("truncated COFF header"))? as usize;
    let opt = coff + 20;
    let magic = u16_at(d, opt).ok_or_else(|| bad("truncated optional header"))?;
    // The data directories follow the fixed fields, which are 16 bytes longer in PE32+.
    let (rva_count_at, dirs) = match magic {
        0x10b => (opt + 92, opt + 96),
        0x20b => (opt + 108, opt + 112),
        m => return Err(bad(&format!("unknown optional header magic {m:#x}"))),
    };
    let rva_count = u32_at(d, rva_count_at).ok_or_else(|| bad("truncated optional header"))?;
    // IMAGE_DIRECTORY_ENTRY_SECURITY is entry 4.
    let security_dir = dirs + 4 * 8;
    if rva_count < 5 || security_dir + 8 > opt + size_opt || security_dir + 8 > d.len() {
        return Err(bad("the optional header has no security data directory"));
    }
    let off = u32_at(d, security_dir).unwrap_or(0) as usize;
    let size = u32_at(d, security_dir + 4).unwrap_or(0) as usize;
    let cert_table = if off == 0 && size == 0 {
        None
    } else {
        if off.checked_add(size) != Some(d.len()) {
            return Err(bad(&format!(
                "the certificate table ({size} bytes at offset {off}) does not end the file ({} bytes): data outside the signature",
                d.len()
            )));
        }
        if off < security_dir + 8 {
            return Err(bad("the certificate table overlaps the headers"));
        }
        Some((off, size))
    };
    Ok(PeLayout {
        checksum: opt + 64,
        security_dir,
        cert_table,
    })
}

/// The Authenticode digest: the file without its CheckSum field, its security directory
/// entry and its certificate table (which sits at the end of the file).
fn pe_digest<D: Digest>(d: &[u8], l: &PeLayout) -> Vec<u8> {
    let end = l.cert_table.map_or(d.len(), |(off, _)| off);
    let mut h = D::new();
    h.update(d.get(..l.checksum).unwrap_or_default());
    h.update(d.get(l.checksum + 4..l.security_dir).unwrap_or_default());
    h.update(d.get(l.security_dir + 8..end).unwrap_or_default());
    h.finalize().to_vec()
}

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &ObjectIdentifier) -> Result<Hash, Refused> {
        match *oid {
            SHA256 => Ok(Hash::Sha256),
            SHA384 => Ok(Hash::Sha384),
            SHA512 => Ok(Hash::Sha512),
            SHA1 | MD5 => refuse(
                Check::Format,
                format!("digest algorithm {oid} (SHA-1/MD5) is too weak and is refused"),
            ),
            _ => refuse(Check::Format, format!("unsupported digest algorithm {oid}")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }

    fn of(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn pe(self, d: &[u8], l: &PeLayout) -> Vec<u8> {
        match self {
            Hash::Sha256 => pe_digest::<Sha256>(d, l),
            Hash::Sha384 => pe_digest::<Sha384>(d, l),
            Hash::Sha512 => pe_digest::<Sha512>(d, l),
        }
    }
}

/// `SpcIndirectDataContent` (Authenticode): what was signed, and the file's digest.
#[derive(Sequence)]
struct SpcIndirectDataContent {
    data: SpcAttributeTypeAndOptionalValue,
    message_digest: DigestInfo,
}

#[derive(Sequence)]
struct SpcAttributeTypeAndOptionalValue {
    value_type: ObjectIdentifier,
    // SpcPeImageData (flags and a link); decoded for structure, its content not needed.
    #[asn1(optional = "true")]
    #[allow(dead_code)]
    value: Option<Any>,
}

#[derive(Sequence)]
struct DigestInfo {
    digest_algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

/// The first PKCS#7 SignedData entry of the certificate table (`WIN_CERTIFICATE`s,
/// each 8-byte aligned).
fn signed_data_entry(table: &[u8]) -> Result<&[u8], Refused> {
    let mut rest = table;
    while rest.len() >= 8 {
        let len = u32_at(rest, 0).unwrap_or(0) as usize;
        let kind = u16_at(rest, 6).unwrap_or(0);
        if len < 8 || len > rest.len() {
            return refuse(
                Check::Format,
                format!("a certificate table entry has an invalid length {len}"),
            );
        }
        if kind == WIN_CERT_TYPE_PKCS_SIGNED_DATA {
            return Ok(rest.get(8..len).unwrap_or_default());
        }
        rest = rest
            .get(len.next_multiple_of(8).min(rest.len())..)
            .unwrap_or_default();
    }
    refuse(
        Check::Unsigned,
        "the certificate table holds no PKCS#7 signature",
    )
}

fn cert_time(t: x509_cert::time::Time) -> SystemTime {
    SystemTime::UNIX_EPOCH + t.to_unix_duration()
}

/// RFC 3339 UTC text of a time.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    match der::DateTime::from_unix_duration(Duration::from_secs(secs)) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minutes(),
            dt.seconds()
        ),
        Err(_) => format!("@{secs}"),
    }
}

/// SHA-256 of a certificate's DER encoding (its "thumbprint").
pub fn thumbprint(c: &Certificate) -> [u8; 32] {
    Sha256::digest(c.to_der().unwrap_or_default()).into()
}

/// Verifies `sig` over `msg` with a public key, for a signature algorithm.
/// `digest_alg` is the hash for a bare `rsaEncryption` algorithm (CMS signer infos).
fn verify_sig(
    spki: &spki::SubjectPublicKeyInfoOwned,
    sig_alg: &ObjectIdentifier,
    digest_alg: Option<Hash>,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let hash = match *sig_alg {
        SHA256_WITH_RSA | ECDSA_SHA256 => Hash::Sha256,
        SHA384_WITH_RSA | ECDSA_SHA384 => Hash::Sha384,
        SHA512_WITH_RSA | ECDSA_SHA512 => Hash::Sha512,
        RSA_ENCRYPTION | EC_PUBLIC_KEY => {
            digest_alg.ok_or_else(|| format!("signature algorithm {sig_alg} names no hash"))?
        }
        other => return Err(format!("unsupported signature algorithm {other}")),
    };
    let hashed = hash.of(msg);
    match spki.algorithm.oid {
        RSA_ENCRYPTION => {
            use rsa::pkcs8::DecodePublicKey;
            let key_der = spki.to_der().map_err(|e| format!("public key: {e}"))?;
            let key = rsa::RsaPublicKey::from_public_key_der(&key_der)
                .map_err(|e| format!("RSA public key: {e}"))?;
            let scheme = match hash {
                Hash::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
                Hash::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
                Hash::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
            };
            key.verify(scheme, &hashed, sig)
                .map_err(|_| "RSA signature does not verify".to_owned())
        }
        EC_PUBLIC_KEY => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            if curve != Some(P256_CURVE) {
                return Err("ECDSA key on a curve other than P-256 (unsupported)".to_owned());
            }
            let key =
                p256::ecdsa::VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes())
                    .map_err(|e| format!("ECDSA P-256 key: {e}"))?;
            let s = p256::ecdsa::Signature::from_der(sig)
                .map_err(|e| format!("ECDSA signature encoding: {e}"))?;
            key.verify_prehash(&hashed, &s)
                .map_err(|_| "ECDSA signature does not verify".to_owned())
        }
        other => Err(format!("unsupported public key algorithm {other}")),
    }
}

/// Whether `issuer` signed `cert`.
fn issued(cert: &Certificate, issuer: &Certificate) -> bool {
    cert.tbs_certificate.issuer == issuer.tbs_certificate.subject
        && cert.tbs_certificate.to_der().is_ok_and(|tbs| {
            verify_sig(
                &issuer.tbs_certificate.subject_public_key_info,
                &cert.signature_algorithm.oid,
                None,
                &tbs,
                cert.signature.raw_bytes(),
            )
            .is_ok()
        })
}

fn is_ca(c: &Certificate) -> bool {
    c.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == BASIC_CONSTRAINTS)
        .any(|e| {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes())
                .is_ok_and(|b| b.ca)
        })
}

fn subject(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
}

/// Builds the chain from `leaf` to the pin through the signature's certificates.
fn chain<'a>(
    leaf: &'a Certificate,
    pool: &'a [Certificate],
    pin: &'a Pin,
) -> Result<Vec<&'a Certificate>, Refused> {
    let mut out = vec![leaf];
    let mut cur = leaf;
    for _ in 0..MAX_CHAIN {
        match pin {
            Pin::Thumbprint(t) if thumbprint(cur) == *t => return Ok(out),
            Pin::Ca(ca) if thumbprint(cur) == thumbprint(ca) => return Ok(out),
            Pin::Ca(ca) if issued(cur, ca) => {
                if !is_ca(ca) {
                    return refuse(
                        Check::Chain,
                        format!(
                            "the pinned certificate \"{}\" is not a CA (no basicConstraints cA)",
                            subject(ca)
                        ),
                    );
                }
                out.push(ca);
                return Ok(out);
            }
            _ => {}
        }
        let next = pool
            .iter()
            .find(|c| thumbprint(c) != thumbprint(cur) && is_ca(c) && issued(cur, c));
        match next {
            Some(n) => {
                out.push(n);
                cur = n;
            }
            None => {
                let path: Vec<String> = out.iter().map(|c| format!("\"{}\"", subject(c))).collect();
                return refuse(
                    Check::Chain,
                    format!(
                        "{} does not chain to the pinned {}: no CA certificate in the signature or the pin issued \"{}\"",
                        path.join(" <- "),
                        pin.describe(),
                        cur.tbs_certificate.issuer
                    ),
                );
            }
        }
    }
    refuse(
        Check::Chain,
        format!("the chain is longer than {MAX_CHAIN} certificates"),
    )
}

/// A signingTime attribute value (UTCTime or GeneralizedTime).
fn any_time(v: &Any) -> Option<SystemTime> {
    let der = v.to_der().ok()?;
    x509_cert::time::Time::from_der(&der).ok().map(cert_time)
}

fn attr(si: &SignerInfo, oid: ObjectIdentifier) -> Option<&Any> {
    si.signed_attrs
        .as_ref()?
        .iter()
        .find(|a| a.oid == oid)
        .and_then(|a| a.values.iter().next())
}

/// Describes a timestamp countersignature, if the signer info has one.
fn timestamp(si: &SignerInfo) -> Option<String> {
    let attrs = si.unsigned_attrs.as_ref()?;
    let a = attrs
        .iter()
        .find(|a| a.oid == RFC3161_TIMESTAMP || a.oid == COUNTER_SIGNATURE)?;
    let kind = if a.oid == RFC3161_TIMESTAMP {
        "RFC 3161"
    } else {
        "PKCS#9"
    };
    // The legacy countersignature is a SignerInfo whose signingTime is the time.
    let when = a
        .values
        .iter()
        .next()
        .and_then(|v| v.decode_as::<SignerInfo>().ok())
        .and_then(|cs| attr(&cs, SIGNING_TIME).and_then(any_time))
        .map(|t| format!(" at {}", rfc3339(t)))
        .unwrap_or_default();
    Some(format!(
        "{kind} timestamp{when} (present, not verified; it does not extend validity)"
    ))
}

/// Verifies the Authenticode signature of a PE file's bytes against a policy.
pub fn verify(data: &[u8], policy: &Policy) -> Result<Report, Refused> {
    let layout = pe_layout(data)?;
    let Some((off, size)) = layout.cert_table else {
        return refuse(
            Check::Unsigned,
            "the file has no Authenticode signature (no certificate table)",
        );
    };
    let entry = signed_data_entry(data.get(off..off + size).unwrap_or_default())?;
    let fmt_err = |what: &str, e: der::Error| Refused {
        check: Check::Format,
        message: format!("{what}: {e}"),
    };
    // The entry is padded to 8 bytes: read one DER value and ignore what follows.
    let mut reader = der::SliceReader::new(entry).map_err(|e| fmt_err("PKCS#7", e))?;
    let ci = ContentInfo::decode(&mut reader).map_err(|e| fmt_err("PKCS#7 ContentInfo", e))?;
    if ci.content_type != SIGNED_DATA {
        return refuse(
            Check::Format,
            format!("PKCS#7 content type {} is not SignedData", ci.content_type),
        );
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| fmt_err("PKCS#7 SignedData", e))?;
    if sd.encap_content_info.econtent_type != SPC_INDIRECT_DATA {
        return refuse(
            Check::Format,
            format!(
                "signed content type {} is not SpcIndirectDataContent",
                sd.encap_content_info.econtent_type
            ),
        );
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| Refused {
            check: Check::Format,
            message: "the signature has no signed content".to_owned(),
        })?;
    let indirect: SpcIndirectDataContent = econtent
        .decode_as()
        .map_err(|e| fmt_err("SpcIndirectDataContent", e))?;
    // SpcPeImageData: the signature is for a PE image (not a catalog, a script, a CAB).
    if indirect.data.value_type != SPC_PE_IMAGE_DATA {
        return refuse(
            Check::Format,
            format!(
                "the signature is for content of type {}, not a PE image (SpcPeImageData)",
                indirect.data.value_type
            ),
        );
    }
    let signers: Vec<&SignerInfo> = sd.signer_infos.0.iter().collect();
    let [si] = signers.as_slice() else {
        return refuse(
            Check::Format,
            format!(
                "{} signer infos; Authenticode has exactly one",
                signers.len()
            ),
        );
    };
    let hash = Hash::from_oid(&indirect.message_digest.digest_algorithm.oid)?;
    let si_hash = Hash::from_oid(&si.digest_alg.oid)?;

    // 4. The file as it is against the digest that was signed.
    let actual = hash.pe(data, &layout);
    let signed = indirect.message_digest.digest.as_bytes();
    if actual != signed {
        return refuse(
            Check::FileDigest,
            format!(
                "the file was changed after it was signed: Authenticode {} digest signed {}, actual {}",
                hash.name(),
                hex(signed),
                hex(&actual)
            ),
        );
    }

    // 5. The signed attributes are about this content.
    let Some(attrs) = si.signed_attrs.as_ref() else {
        return refuse(Check::Format, "the signer info has no signed attributes");
    };
    let md = attr(si, MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| Refused {
            check: Check::SignedAttributes,
            message: "no messageDigest signed attribute".to_owned(),
        })?;
    let content_digest = si_hash.of(econtent.value());
    if md.as_bytes() != content_digest.as_slice() {
        return refuse(
            Check::SignedAttributes,
            format!(
                "messageDigest {} does not match the signed content's {} {}",
                hex(md.as_bytes()),
                si_hash.name(),
                hex(&content_digest)
            ),
        );
    }
    if let Some(ct) = attr(si, CONTENT_TYPE)
        && ct.decode_as::<ObjectIdentifier>().ok() != Some(SPC_INDIRECT_DATA)
    {
        return refuse(
            Check::SignedAttributes,
            "the contentType signed attribute is not SpcIndirectDataContent",
        );
    }

    // 6. The signer's key signed those attributes.
    let pool: Vec<Certificate> = sd
        .certificates
        .iter()
        .flat_map(|s| s.0.iter())
        .filter_map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    let leaf = match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => pool.iter().find(|c| {
            c.tbs_certificate.issuer == isn.issuer
                && c.tbs_certificate.serial_number == isn.serial_number
        }),
        SignerIdentifier::SubjectKeyIdentifier(_) => None,
    }
    .ok_or_else(|| Refused {
        check: Check::Signature,
        message: "the signer certificate is not in the signature".to_owned(),
    })?;
    let attrs_der = attrs
        .to_der()
        .map_err(|e| fmt_err("signed attributes", e))?;
    verify_sig(
        &leaf.tbs_certificate.subject_public_key_info,
        &si.signature_algorithm.oid,
        Some(si_hash),
        &attrs_der,
        si.signature.as_bytes(),
    )
    .map_err(|m| Refused {
        check: Check::Signature,
        message: format!(
            "{m} with the signer certificate \"{}\" (the signature or the signed attributes were altered)",
            subject(leaf)
        ),
    })?;

    let mut report = Report {
        signer: subject(leaf),
        issuer: leaf.tbs_certificate.issuer.to_string(),
        thumbprint: hex(&thumbprint(leaf)),
        not_before: rfc3339(cert_time(leaf.tbs_certificate.validity.not_before)),
        not_after: rfc3339(cert_time(leaf.tbs_certificate.validity.not_after)),
        chain: vec![subject(leaf)],
        digest_algorithm: hash.name().to_owned(),
        file_digest: hex(&actual),
        signing_time: attr(si, SIGNING_TIME).and_then(any_time).map(rfc3339),
        timestamp: timestamp(si),
        warnings: Vec::new(),
    };
    if si
        .unsigned_attrs
        .as_ref()
        .is_some_and(|a| a.iter().any(|a| a.oid == NESTED_SIGNATURE))
    {
        report
            .warnings
            .push("a nested (second) signature is present and was not checked".to_owned());
    }

    // 7-9. Trust: chain to the pin, code-signing usage, validity now.
    let trust = (|| -> Result<Vec<String>, Refused> {
        let Some(pin) = &policy.pin else {
            return refuse(
                Check::Chain,
                "no signer is pinned (give the expected certificate's SHA-256 thumbprint or CA)",
            );
        };
        let path = chain(leaf, &pool, pin)?;
        if let Some(eku) = leaf
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == EXT_KEY_USAGE)
        {
            let ok = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
                .is_ok_and(|u| u.0.iter().any(|o| *o == CODE_SIGNING || *o == ANY_EKU));
            if !ok {
                return refuse(
                    Check::Usage,
                    format!(
                        "the signer certificate \"{}\" is not for code signing (extended key usage)",
                        subject(leaf)
                    ),
                );
            }
        }
        for c in &path {
            let v = &c.tbs_certificate.validity;
            let (from, to) = (cert_time(v.not_before), cert_time(v.not_after));
            if policy.at < from || policy.at > to {
                return refuse(
                    Check::Validity,
                    format!(
                        "certificate \"{}\" is valid from {} to {}, not at {} ({})",
                        subject(c),
                        rfc3339(from),
                        rfc3339(to),
                        rfc3339(policy.at),
                        if policy.at > to {
                            "expired"
                        } else {
                            "not yet valid"
                        }
                    ),
                );
            }
        }
        Ok(path.iter().map(|c| subject(c)).collect())
    })();
    match trust {
        Ok(path) => report.chain = path,
        Err(r) if policy.allow_test_signing => report.warnings.push(format!(
            "TEST-SIGNING ALLOWED: {r}; the file is intact but NOT trusted"
        )),
        Err(r) => return Err(r),
    }
    Ok(report)
}
