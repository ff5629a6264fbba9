//! Authenticode verification against files signed by osslsigncode with a test PKI made
//! by openssl in the test: the pinned signer is accepted (by CA and by thumbprint, for
//! a PE and a `.sys`-named copy), and each kind of damage or distrust is refused by the
//! check that is meant to catch it.

mod support;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use driver_bundle::authenticode::{self, Check, Pin, Policy};
use support::{Pki, minimal_pe, run};

struct Fixture {
    _tmp: tempfile::TempDir,
    pki: Pki,
    unsigned: PathBuf,
    signed: PathBuf,
    sys: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::Builder::new()
        .prefix("authenticode")
        .tempdir()
        .expect("tempdir");
    let pki = Pki::new(&tmp.path().join("pki"));
    let unsigned = tmp.path().join("linux-unsigned.sys");
    std::fs::write(&unsigned, minimal_pe(b"\xc3coLinux test driver body")).expect("write");
    let signed = tmp.path().join("driver.exe");
    pki.sign("chain.pem", "leaf.key", &unsigned, &signed);
    let sys = tmp.path().join("linux.sys");
    pki.sign("chain.pem", "leaf.key", &unsigned, &sys);
    Fixture {
        _tmp: tmp,
        pki,
        unsigned,
        signed,
        sys,
    }
}

fn ca_pin(pki: &Pki, name: &str) -> Pin {
    Pin::ca(&std::fs::read(pki.path(name)).expect("read ca")).expect("parse ca")
}

fn policy(pin: Pin) -> Policy {
    Policy {
        pin: Some(pin),
        at: SystemTime::now(),
        allow_test_signing: false,
    }
}

fn check(path: &Path, p: &Policy) -> Result<authenticode::Report, authenticode::Refused> {
    authenticode::verify(&std::fs::read(path).expect("read"), p)
}

fn refused(path: &Path, p: &Policy, want: Check, words: &[&str]) {
    match check(path, p) {
        Ok(r) => panic!(
            "{} accepted, expected the {want} check to fail: {r:?}",
            path.display()
        ),
        Err(e) => {
            assert_eq!(e.check, want, "{e}");
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{want} check failed")), "{msg}");
            for w in words {
                assert!(msg.contains(w), "{w:?} not in {msg}");
            }
        }
    }
}

/// The byte range of the PKCS#7 blob in a signed file (after the WIN_CERTIFICATE header).
fn pkcs7_range(d: &[u8]) -> std::ops::Range<usize> {
    let e = u32::from_le_bytes(d[0x3c..0x40].try_into().expect("4")) as usize;
    let dir = e + 24 + 112 + 4 * 8; // PE32+ security directory
    let off = u32::from_le_bytes(d[dir..dir + 4].try_into().expect("4")) as usize;
    let start = off + 8;
    assert_eq!(d[start], 0x30, "PKCS#7 starts with a SEQUENCE");
    let (len, hdr) = match d[start + 1] {
        n if n < 0x80 => (n as usize, 2),
        0x81 => (d[start + 2] as usize, 3),
        0x82 => (u16::from_be_bytes([d[start + 2], d[start + 3]]) as usize, 4),
        n => panic!("unexpected DER length byte {n:#x}"),
    };
    start..start + hdr + len
}

#[test]
fn the_pinned_signer_is_accepted_and_osslsigncode_agrees() {
    let f = fixture();
    for file in [&f.signed, &f.sys] {
        // The oracle: osslsigncode itself accepts the file with the same CA.
        run(
            "osslsigncode",
            &[
                "verify",
                "-CAfile",
                f.pki.path("ca.pem").to_str().expect("utf-8"),
                "-in",
                file.to_str().expect("utf-8"),
            ],
            &f.pki.dir,
        );
        let r = check(file, &policy(ca_pin(&f.pki, "ca.pem"))).expect("trusted by CA");
        assert!(r.signer.contains("CN=coLinux Test Publisher"), "{r:?}");
        assert_eq!(r.issuer, "CN=coLinux Test Root");
        assert_eq!(r.thumbprint, f.pki.thumbprint("leaf.pem"));
        assert_eq!(r.chain.len(), 2, "{r:?}");
        assert_eq!(r.digest_algorithm, "sha256");
        assert!(r.warnings.is_empty(), "{r:?}");
        assert!(r.timestamp.is_none());

        let pin =
            Pin::thumbprint(&format!("sha256:{}", f.pki.thumbprint("leaf.pem"))).expect("pin");
        let r = check(file, &policy(pin)).expect("trusted by thumbprint");
        assert_eq!(r.chain.len(), 1);
        // Pinning the root's thumbprint works too: the root is in the signature.
        let pin = Pin::thumbprint(&f.pki.thumbprint("ca.pem")).expect("pin");
        check(file, &policy(pin)).expect("trusted by the root's thumbprint");
    }
}

#[test]
fn a_flipped_byte_in_the_body_is_refused_by_the_file_digest() {
    let f = fixture();
    let mut d = std::fs::read(&f.sys).expect("read");
    d[0x201] ^= 0x01; // inside .text
    let bad = f.pki.path("body.sys");
    std::fs::write(&bad, &d).expect("write");
    refused(
        &bad,
        &policy(ca_pin(&f.pki, "ca.pem")),
        Check::FileDigest,
        &["changed after it was signed", "signed", "actual"],
    );
    // Test-signing does not excuse damage.
    let mut p = policy(ca_pin(&f.pki, "ca.pem"));
    p.allow_test_signing = true;
    refused(&bad, &p, Check::FileDigest, &[]);
    // The oracle agrees.
    let o = std::process::Command::new("osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(f.pki.path("ca.pem"))
        .arg("-in")
        .arg(&bad)
        .output()
        .expect("osslsigncode");
    assert!(!o.status.success(), "osslsigncode accepted a damaged file");
}

#[test]
fn a_flipped_byte_in_the_signature_is_refused_by_the_signature_check() {
    let f = fixture();
    let mut d = std::fs::read(&f.sys).expect("read");
    // Without unsigned attributes, the signer's encrypted digest ends the PKCS#7 blob.
    let r = pkcs7_range(&d);
    d[r.end - 5] ^= 0x40;
    let bad = f.pki.path("sig.sys");
    std::fs::write(&bad, &d).expect("write");
    refused(
        &bad,
        &policy(ca_pin(&f.pki, "ca.pem")),
        Check::Signature,
        &["does not verify", "coLinux Test Publisher"],
    );
}

#[test]
fn a_different_ca_is_refused_by_the_chain_check() {
    let f = fixture();
    refused(
        &f.sys,
        &policy(ca_pin(&f.pki, "other-ca.pem")),
        Check::Chain,
        &["Some Other Root", "does not chain"],
    );
    let pin = Pin::thumbprint(&f.pki.thumbprint("other-ca.pem")).expect("pin");
    refused(&f.sys, &policy(pin), Check::Chain, &["sha256:"]);
    // With test-signing allowed, the intact file is accepted with a loud warning.
    let mut p = policy(ca_pin(&f.pki, "other-ca.pem"));
    p.allow_test_signing = true;
    let r = check(&f.sys, &p).expect("test-signing allowed");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("TEST-SIGNING") && w.contains("chain check failed")),
        "{r:?}"
    );
}

#[test]
fn an_expired_certificate_is_refused_by_the_validity_check() {
    let f = fixture();
    let out = f.pki.path("expired.sys");
    f.pki
        .sign("expired-chain.pem", "expired.key", &f.unsigned, &out);
    refused(
        &out,
        &policy(ca_pin(&f.pki, "ca.pem")),
        Check::Validity,
        &["coLinux Expired Publisher", "2021-01-01", "expired"],
    );
}

#[test]
fn an_unsigned_or_malformed_file_is_refused() {
    let f = fixture();
    refused(
        &f.unsigned,
        &policy(ca_pin(&f.pki, "ca.pem")),
        Check::Unsigned,
        &["no Authenticode signature"],
    );
    let text = f.pki.path("text.sys");
    std::fs::write(&text, b"not a PE file at all").expect("write");
    refused(
        &text,
        &policy(ca_pin(&f.pki, "ca.pem")),
        Check::Pe,
        &["no MZ header"],
    );
    let mut d = std::fs::read(&f.sys).expect("read");
    d.extend_from_slice(b"appended after the signature");
    let appended = f.pki.path("appended.sys");
    std::fs::write(&appended, &d).expect("write");
    refused(
        &appended,
        &policy(ca_pin(&f.pki, "ca.pem")),
        Check::Pe,
        &["does not end the file"],
    );
    let d = std::fs::read(&f.sys).expect("read");
    let truncated = f.pki.path("truncated.sys");
    std::fs::write(&truncated, &d[..d.len() - 100]).expect("write");
    refused(
        &truncated,
        &policy(ca_pin(&f.pki, "ca.pem")),
        Check::Pe,
        &[],
    );
    // Arbitrary prefixes of a signed file never panic.
    for n in (0..d.len()).step_by(97) {
        let _ = authenticode::verify(&d[..n], &policy(ca_pin(&f.pki, "ca.pem")));
    }
}

#[test]
fn a_real_linked_pe_signed_by_osslsigncode_is_accepted() {
    // A linker-made image (several sections, a size that is not a multiple of 8 before
    // signing, so osslsigncode pads it): our digest must be the one it signed.
    let f = fixture();
    let dir = f.pki.dir.clone();
    std::fs::write(dir.join("hello.c"), "int main(void) { return 42; }\n").expect("write");
    run(
        "x86_64-w64-mingw32-gcc",
        &["-O1", "-s", "-o", "hello.exe", "hello.c"],
        &dir,
    );
    let signed = dir.join("hello-signed.exe");
    f.pki
        .sign("chain.pem", "leaf.key", &dir.join("hello.exe"), &signed);
    let r = check(&signed, &policy(ca_pin(&f.pki, "ca.pem"))).expect("trusted");
    assert_eq!(r.thumbprint, f.pki.thumbprint("leaf.pem"));
    let mut d = std::fs::read(&signed).expect("read");
    d[0x400] ^= 0xff; // the first section's data
    let bad = dir.join("hello-bad.exe");
    std::fs::write(&bad, &d).expect("write");
    refused(
        &bad,
        &policy(ca_pin(&f.pki, "ca.pem")),
        Check::FileDigest,
        &[],
    );
}
