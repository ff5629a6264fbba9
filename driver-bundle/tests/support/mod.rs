//! Test support shared by driver-bundle's tests and the installer's driver CLI tests
//! (included with `#[path]`): minimal PE32+ and PE32 images written by hand, a test PKI made
//! with `openssl` (a CA, a code-signing leaf, an expired leaf, a second CA), and
//! signing with `osslsigncode`. Missing tools fail the test with a clear message.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a tool, failing the test with its output when it fails or is missing.
pub fn run(tool: &str, args: &[&str], cwd: &Path) {
    let o = Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool} ({e}); install it (Debian: apt-get install {tool}), scripts/test does")
        });
    assert!(
        o.status.success(),
        "{tool} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A minimal PE32+ image (x86-64, one `.text` section holding `body`, padded to 512
/// bytes), enough for osslsigncode and for our parser. Not meant to run.
pub fn minimal_pe(body: &[u8]) -> Vec<u8> {
    minimal_pe_for(Arch::X86_64, body)
}

/// The Windows a test driver is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// 64-bit Windows: PE32+, machine 0x8664.
    X86_64,
    /// 32-bit Windows (where coLinux runs): PE32, machine 0x14c.
    I386,
}

/// A minimal PE image for `arch`: PE32+ (x86-64) or PE32 (i386), one `.text` section
/// holding `body` (at RVA 0x1000, the entry point), padded to 512 bytes.
pub fn minimal_pe_for(arch: Arch, body: &[u8]) -> Vec<u8> {
    const FILE_ALIGN: usize = 0x200;
    let text_size = body.len().div_ceil(FILE_ALIGN).max(1) * FILE_ALIGN;
    let mut d = vec![0u8; FILE_ALIGN + text_size];
    let put16 = |d: &mut Vec<u8>, o: usize, v: u16| d[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |d: &mut Vec<u8>, o: usize, v: u32| d[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let pe64 = arch == Arch::X86_64;
    // The optional header's size with 16 data directories, and where they start.
    let (opt_size, dirs_count_at) = if pe64 { (240, 108) } else { (224, 92) };
    d[0..2].copy_from_slice(b"MZ");
    put32(&mut d, 0x3c, 0x40);
    d[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    put16(&mut d, coff, if pe64 { 0x8664 } else { 0x14c }); // Machine
    put16(&mut d, coff + 2, 1); // NumberOfSections
    put16(&mut d, coff + 16, opt_size as u16); // SizeOfOptionalHeader
    // EXECUTABLE_IMAGE, and LARGE_ADDRESS_AWARE (x64) or 32BIT_MACHINE (i386).
    put16(&mut d, coff + 18, if pe64 { 0x0022 } else { 0x0102 });
    let opt = coff + 20;
    put16(&mut d, opt, if pe64 { 0x20b } else { 0x10b }); // PE32+ / PE32
    put32(&mut d, opt + 4, text_size as u32); // SizeOfCode
    put32(&mut d, opt + 16, 0x1000); // AddressOfEntryPoint
    put32(&mut d, opt + 20, 0x1000); // BaseOfCode
    if pe64 {
        d[opt + 24..opt + 32].copy_from_slice(&0x1_4000_0000u64.to_le_bytes()); // ImageBase
    } else {
        put32(&mut d, opt + 28, 0x1000_0000); // ImageBase (BaseOfData at +24 stays 0)
    }
    put32(&mut d, opt + 32, 0x1000); // SectionAlignment
    put32(&mut d, opt + 36, FILE_ALIGN as u32); // FileAlignment
    put16(&mut d, opt + 40, 6); // MajorOperatingSystemVersion
    put16(&mut d, opt + 48, 6); // MajorSubsystemVersion
    put32(
        &mut d,
        opt + 56,
        0x1000 + (text_size as u32).next_multiple_of(0x1000),
    ); // SizeOfImage
    put32(&mut d, opt + 60, FILE_ALIGN as u32); // SizeOfHeaders
    put16(&mut d, opt + 68, 1); // Subsystem: native (a driver)
    if pe64 {
        d[opt + 72..opt + 80].copy_from_slice(&0x10_0000u64.to_le_bytes()); // stack reserve
        d[opt + 80..opt + 88].copy_from_slice(&0x1000u64.to_le_bytes()); // stack commit
        d[opt + 88..opt + 96].copy_from_slice(&0x10_0000u64.to_le_bytes()); // heap reserve
        d[opt + 96..opt + 104].copy_from_slice(&0x1000u64.to_le_bytes()); // heap commit
    } else {
        put32(&mut d, opt + 72, 0x10_0000); // stack reserve
        put32(&mut d, opt + 76, 0x1000); // stack commit
        put32(&mut d, opt + 80, 0x10_0000); // heap reserve
        put32(&mut d, opt + 84, 0x1000); // heap commit
    }
    put32(&mut d, opt + dirs_count_at, 16); // NumberOfRvaAndSizes
    let sec = opt + opt_size;
    d[sec..sec + 8].copy_from_slice(b".text\0\0\0");
    put32(&mut d, sec + 8, body.len().max(1) as u32); // VirtualSize
    put32(&mut d, sec + 12, 0x1000); // VirtualAddress
    put32(&mut d, sec + 16, text_size as u32); // SizeOfRawData
    put32(&mut d, sec + 20, FILE_ALIGN as u32); // PointerToRawData
    put32(&mut d, sec + 36, 0x6000_0020); // CODE | EXECUTE | READ
    d[FILE_ALIGN..FILE_ALIGN + body.len()].copy_from_slice(body);
    d
}

/// A kernel driver that really loads (Windows, or Wine's winedevice): its `DriverEntry`
/// sets an empty `DriverUnload` (so the service can be stopped) and returns `status`:
/// 0 (STATUS_SUCCESS) starts, anything else (e.g. 0xC000_0001, STATUS_UNSUCCESSFUL)
/// makes `StartService` fail. x86-64 code, position-independent:
/// `lea rax, [rip+10]; mov [rcx+0x68], rax; mov eax, status; ret; unload: ret`
/// (0x68 is `DRIVER_OBJECT.DriverUnload` on x64).
pub fn loadable_driver(status: u32) -> Vec<u8> {
    loadable_driver_for(Arch::X86_64, status)
}

/// [`loadable_driver`] for `arch`. The i386 one is stdcall and position-independent
/// (no relocations; 32-bit x86 has no RIP-relative address):
/// `call next; next: pop eax; add eax, 19; mov ecx, [esp+4]; mov [ecx+0x34], eax;
/// mov eax, status; ret 8; unload: ret 4` (0x34 is `DRIVER_OBJECT.DriverUnload` on x86;
/// `unload` is 19 bytes after `next`).
pub fn loadable_driver_for(arch: Arch, status: u32) -> Vec<u8> {
    let mut code = match arch {
        Arch::X86_64 => vec![
            0x48, 0x8d, 0x05, 0x0a, 0, 0, 0, 0x48, 0x89, 0x41, 0x68, 0xb8,
        ],
        Arch::I386 => vec![
            0xe8, 0, 0, 0, 0,    // call next
            0x58, // next: pop eax
            0x83, 0xc0, 0x13, // add eax, 19
            0x8b, 0x4c, 0x24, 0x04, // mov ecx, [esp+4]
            0x89, 0x41, 0x34, // mov [ecx+0x34], eax
            0xb8, // mov eax, imm32
        ],
    };
    code.extend_from_slice(&status.to_le_bytes());
    match arch {
        Arch::X86_64 => code.extend_from_slice(&[0xc3, 0xc3]),
        Arch::I386 => code.extend_from_slice(&[0xc2, 0x08, 0x00, 0xc2, 0x04, 0x00]),
    }
    minimal_pe_for(arch, &code)
}

/// A test PKI in a folder: `ca.pem`/`ca.key` (root), `leaf.pem`/`leaf.key` (code
/// signing, valid now), `chain.pem` (leaf + CA), `expired.pem`/`expired-chain.pem`
/// (code signing, valid 2020 to 2021 only), `other-ca.pem` (an unrelated root).
pub struct Pki {
    pub dir: PathBuf,
}

const CA_EXT: &str = "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n";
const LEAF_EXT: &str = "basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n";

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("mkdir pki");
        let w = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
        w("ca.ext", CA_EXT);
        w("leaf.ext", LEAF_EXT);
        for (ca, cn) in [("ca", "coLinux Test Root"), ("other-ca", "Some Other Root")] {
            run(
                "openssl",
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "3650",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-addext",
                    "basicConstraints=critical,CA:true",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
                dir,
            );
        }
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=coLinux Test Publisher/O=colinux-setup tests",
            ],
            dir,
        );
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "365",
                "-extfile",
                "leaf.ext",
            ],
            dir,
        );
        // An expired leaf: `openssl ca` is the tool that takes explicit dates.
        w("index.txt", "");
        w("serial", "1000\n");
        w(
            "ca.cnf",
            "[ca]\ndefault_ca=test\n[test]\ndatabase=index.txt\nserial=serial\nnew_certs_dir=.\n\
             default_md=sha256\npolicy=any\nunique_subject=no\ncopy_extensions=none\n\
             [any]\ncommonName=supplied\n[leaf]\nbasicConstraints=critical,CA:false\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n",
        );
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "expired.key",
                "-out",
                "expired.csr",
                "-subj",
                "/CN=coLinux Expired Publisher",
            ],
            dir,
        );
        run(
            "openssl",
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-cert",
                "ca.pem",
                "-keyfile",
                "ca.key",
                "-in",
                "expired.csr",
                "-out",
                "expired.pem",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20210101000000Z",
                "-extensions",
                "leaf",
                "-notext",
            ],
            dir,
        );
        let cat = |out: &str, parts: &[&str]| {
            let mut s = String::new();
            for p in parts {
                s.push_str(&std::fs::read_to_string(dir.join(p)).expect("read pem"));
            }
            w(out, &s);
        };
        cat("chain.pem", &["leaf.pem", "ca.pem"]);
        cat("expired-chain.pem", &["expired.pem", "ca.pem"]);
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Signs `input` into `output` with osslsigncode (SHA-256, no timestamp: Debian 12's
    /// osslsigncode 2.5 cannot add one offline).
    pub fn sign(&self, chain: &str, key: &str, input: &Path, output: &Path) {
        let _ = std::fs::remove_file(output);
        run(
            "osslsigncode",
            &[
                "sign",
                "-certs",
                self.path(chain).to_str().expect("utf-8"),
                "-key",
                self.path(key).to_str().expect("utf-8"),
                "-h",
                "sha256",
                "-n",
                "coLinux driver",
                "-in",
                input.to_str().expect("utf-8"),
                "-out",
                output.to_str().expect("utf-8"),
            ],
            &self.dir,
        );
    }

    /// The SHA-256 thumbprint of a certificate, by openssl.
    pub fn thumbprint(&self, cert: &str) -> String {
        let o = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(self.path(cert))
            .output()
            .expect("openssl");
        let s = String::from_utf8_lossy(&o.stdout);
        s.split('=')
            .nth(1)
            .expect("fingerprint")
            .trim()
            .replace(':', "")
            .to_lowercase()
    }
}
