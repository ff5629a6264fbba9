//! The ELF header facts we judge a guest's program by (the busybox a root is built
//! from): its class (32- or 64-bit), byte order, type, machine, and whether it asks for
//! a dynamic loader (`PT_INTERP`). Both classes and both byte orders are read, since
//! setup-x86.msi carries Debian's i386 busybox (ELF32) and setup.msi and Linux hosts an
//! x86-64 one (ELF64).
//!
//! [`guest_arch`] says which programs a monitor's guest kernel runs: a coLinux kernel
//! is 32-bit x86 whatever the host, User-mode Linux is built for the host's machine, and
//! QEMU here boots the host machine's kernel (scripts/qemu-kernel, x86-64 on x86-64).
//!
//! Field offsets are those of the System V ABI's `Elf32_Ehdr`/`Elf64_Ehdr` and
//! `Elf32_Phdr`/`Elf64_Phdr` (see the Linux man page elf(5)). Parsing never panics: every
//! field is read with a bounds check and a short or inconsistent header is an error.

use crate::profile::Monitor;

/// `e_machine` of Intel 80386 (the i386 / IA-32 family).
pub const EM_386: u16 = 3;
/// `e_machine` of Intel 80486: Linux on i386 runs these too (`elf_check_arch`).
pub const EM_486: u16 = 6;
/// `e_machine` of AMD x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of 32-bit ARM.
pub const EM_ARM: u16 = 40;
/// `e_machine` of 64-bit ARM.
pub const EM_AARCH64: u16 = 183;

/// `p_type` of the program header naming the dynamic loader.
const PT_INTERP: u32 = 3;

/// The ELF class (`EI_CLASS`): the width of addresses and of the headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// ELFCLASS32.
    Elf32,
    /// ELFCLASS64.
    Elf64,
}

impl Class {
    /// "32-bit" or "64-bit".
    pub fn bits(self) -> &'static str {
        match self {
            Class::Elf32 => "32-bit",
            Class::Elf64 => "64-bit",
        }
    }
}

/// What an ELF header says about a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elf {
    /// 32- or 64-bit.
    pub class: Class,
    /// `EI_DATA` is ELFDATA2MSB.
    pub big_endian: bool,
    /// `e_type`: 2 an executable, 3 a shared object or position-independent executable.
    pub e_type: u16,
    /// `e_machine`.
    pub machine: u16,
    /// A `PT_INTERP` program header: it needs a dynamic loader (and a C library).
    pub interpreter: bool,
}

/// Why a file is not an ELF program we can judge.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElfError {
    /// The first four bytes are not `\x7fELF`.
    #[error("it is not an ELF file (no \\x7fELF at its start)")]
    NotElf,
    /// `EI_CLASS` is neither 1 nor 2.
    #[error("its ELF class byte is {0}, neither 1 (32-bit) nor 2 (64-bit)")]
    Class(u8),
    /// `EI_DATA` is neither 1 nor 2.
    #[error("its ELF byte-order byte is {0}, neither 1 (little-endian) nor 2 (big-endian)")]
    ByteOrder(u8),
    /// The file ends inside the ELF header or the program headers.
    #[error("it is a truncated ELF file ({what} ends past its {len} bytes)")]
    Truncated {
        /// The part that does not fit.
        what: &'static str,
        /// The file's length.
        len: usize,
    },
    /// `e_type` is not an executable (2) or position-independent one (3).
    #[error("it is an ELF file of type {0}, not a program (2 or 3)")]
    NotProgram(u16),
    /// `e_phentsize` is smaller than a program header of this class.
    #[error("its program headers are {0} bytes, smaller than this ELF class's")]
    ProgramHeaderSize(u16),
}

impl Elf {
    /// Reads the header and the program headers of `data` (the whole file, or at least
    /// up to the end of its program headers).
    pub fn parse(data: &[u8]) -> Result<Elf, ElfError> {
        if data.get(0..4) != Some(b"\x7fELF".as_slice()) {
            return Err(ElfError::NotElf);
        }
        let class = match data.get(4) {
            Some(1) => Class::Elf32,
            Some(2) => Class::Elf64,
            Some(c) => return Err(ElfError::Class(*c)),
            None => return Err(short_ident(data)),
        };
        let big_endian = match data.get(5) {
            Some(1) => false,
            Some(2) => true,
            Some(d) => return Err(ElfError::ByteOrder(*d)),
            None => return Err(short_ident(data)),
        };
        let field = |off: usize, len: usize, what: &'static str| -> Result<u64, ElfError> {
            let b = off
                .checked_add(len)
                .and_then(|end| data.get(off..end))
                .ok_or(ElfError::Truncated {
                    what,
                    len: data.len(),
                })?;
            let fold = |v: u64, x: &u8| (v << 8) | u64::from(*x);
            Ok(if big_endian {
                b.iter().fold(0, fold)
            } else {
                b.iter().rev().fold(0, fold)
            })
        };
        // e_type and e_machine sit at the same offsets in both classes; the program
        // header table's place and shape do not.
        let header = "the ELF header";
        let e_type = u16::try_from(field(0x10, 2, header)?).unwrap_or(u16::MAX);
        let machine = u16::try_from(field(0x12, 2, header)?).unwrap_or(u16::MAX);
        let (e_phoff, e_phentsize, e_phnum, min_phentsize) = match class {
            Class::Elf32 => (
                field(0x1c, 4, header)?,
                field(0x2a, 2, header)?,
                field(0x2c, 2, header)?,
                32,
            ),
            Class::Elf64 => (
                field(0x20, 8, header)?,
                field(0x36, 2, header)?,
                field(0x38, 2, header)?,
                56,
            ),
        };
        if e_type != 2 && e_type != 3 {
            return Err(ElfError::NotProgram(e_type));
        }
        if e_phnum > 0 && e_phentsize < min_phentsize {
            return Err(ElfError::ProgramHeaderSize(
                u16::try_from(e_phentsize).unwrap_or(u16::MAX),
            ));
        }
        // The whole table must be in the file, as the kernel reads it whole.
        let table_end = e_phnum
            .checked_mul(e_phentsize)
            .and_then(|n| n.checked_add(e_phoff));
        if table_end.is_none_or(|end| end > data.len() as u64) {
            return Err(ElfError::Truncated {
                what: "the program headers",
                len: data.len(),
            });
        }
        let mut interpreter = false;
        for i in 0..e_phnum {
            // p_type is the first 4 bytes of a program header in both classes.
            let at = i
                .checked_mul(e_phentsize)
                .and_then(|o| o.checked_add(e_phoff))
                .and_then(|o| usize::try_from(o).ok())
                .ok_or(ElfError::Truncated {
                    what: "the program headers",
                    len: data.len(),
                })?;
            if field(at, 4, "the program headers")? == u64::from(PT_INTERP) {
                interpreter = true;
            }
        }
        Ok(Elf {
            class,
            big_endian,
            e_type,
            machine,
            interpreter,
        })
    }

    /// The machine and class in words: "i386 (32-bit)", "x86-64 (64-bit)".
    pub fn describe(&self) -> String {
        format!("{} ({})", machine_name(self.machine), self.class.bits())
    }

    /// Whether a kernel for `arch` runs this program.
    pub fn runs_on(&self, arch: GuestArch) -> bool {
        self.big_endian == arch.big_endian
            && self.class == arch.class
            && arch.machines.contains(&self.machine)
    }
}

/// A file that ends inside `e_ident`.
fn short_ident(data: &[u8]) -> ElfError {
    ElfError::Truncated {
        what: "the ELF identification",
        len: data.len(),
    }
}

/// The programs a guest kernel runs: one class, one byte order, its machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestArch {
    /// What the kernel is, in words ("i386", "x86-64").
    pub name: &'static str,
    /// The class of its programs.
    pub class: Class,
    /// Big-endian (none of the machines here is).
    pub big_endian: bool,
    /// The `e_machine` values it accepts.
    pub machines: &'static [u16],
}

/// 32-bit x86: what a coLinux kernel runs.
pub const I386: GuestArch = GuestArch {
    name: "i386",
    class: Class::Elf32,
    big_endian: false,
    machines: &[EM_386, EM_486],
};

const X86_64: GuestArch = GuestArch {
    name: "x86-64",
    class: Class::Elf64,
    big_endian: false,
    machines: &[EM_X86_64],
};

const AARCH64: GuestArch = GuestArch {
    name: "AArch64",
    class: Class::Elf64,
    big_endian: false,
    machines: &[EM_AARCH64],
};

const ARM: GuestArch = GuestArch {
    name: "ARM",
    class: Class::Elf32,
    big_endian: false,
    machines: &[EM_ARM],
};

/// The machine this program was built for, as a guest kernel would be for it; `None`
/// on a machine we have no table entry for.
pub fn host_arch() -> Option<GuestArch> {
    match std::env::consts::ARCH {
        "x86_64" => Some(X86_64),
        "x86" => Some(I386),
        "aarch64" => Some(AARCH64),
        "arm" => Some(ARM),
        _ => None,
    }
}

/// The programs `monitor`'s guest kernel runs: i386 for coLinux (its kernels are 32-bit
/// x86 on every host), the host's machine for User-mode Linux (a Linux kernel built as
/// a host program) and QEMU (the host's own kernel, scripts/qemu-kernel).
pub fn guest_arch(monitor: Monitor) -> Option<GuestArch> {
    match monitor {
        Monitor::Colinux => Some(I386),
        Monitor::Uml | Monitor::Qemu => host_arch(),
        // WSL 2's kernel is x86-64 (the only Windows it runs on here).
        Monitor::Wsl => Some(X86_64),
    }
}

/// A name for `e_machine` values found in practice; the number otherwise.
pub fn machine_name(machine: u16) -> String {
    match machine {
        EM_386 => "i386".to_owned(),
        EM_486 => "i486".to_owned(),
        EM_X86_64 => "x86-64".to_owned(),
        EM_ARM => "ARM".to_owned(),
        EM_AARCH64 => "AArch64".to_owned(),
        8 => "MIPS".to_owned(),
        20 => "PowerPC".to_owned(),
        21 => "PowerPC 64".to_owned(),
        22 => "S/390".to_owned(),
        106 => "Blackfin".to_owned(),
        243 => "RISC-V".to_owned(),
        m => format!("ELF machine {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header of `class` and byte order with one program header of `p_type`.
    fn header(class: Class, big: bool, e_type: u16, machine: u16, p_type: u32) -> Vec<u8> {
        let (ehsize, phentsize) = match class {
            Class::Elf32 => (52usize, 32usize),
            Class::Elf64 => (64, 56),
        };
        let mut b = vec![0u8; ehsize + phentsize];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = if class == Class::Elf32 { 1 } else { 2 };
        b[5] = if big { 2 } else { 1 };
        b[6] = 1;
        let put = |b: &mut Vec<u8>, off: usize, len: usize, v: u64| {
            for i in 0..len {
                let shift = if big { 8 * (len - 1 - i) } else { 8 * i };
                b[off + i] = (v >> shift) as u8;
            }
        };
        put(&mut b, 0x10, 2, e_type.into());
        put(&mut b, 0x12, 2, machine.into());
        match class {
            Class::Elf32 => {
                put(&mut b, 0x1c, 4, ehsize as u64);
                put(&mut b, 0x2a, 2, phentsize as u64);
                put(&mut b, 0x2c, 2, 1);
            }
            Class::Elf64 => {
                put(&mut b, 0x20, 8, ehsize as u64);
                put(&mut b, 0x36, 2, phentsize as u64);
                put(&mut b, 0x38, 2, 1);
            }
        }
        put(&mut b, ehsize, 4, p_type.into());
        b
    }

    #[test]
    fn both_classes_and_byte_orders_are_read() {
        for (class, big, machine) in [
            (Class::Elf32, false, EM_386),
            (Class::Elf64, false, EM_X86_64),
            (Class::Elf32, true, 8),
            (Class::Elf64, true, 22),
        ] {
            let e = Elf::parse(&header(class, big, 2, machine, 1)).expect("parse");
            assert_eq!(
                e,
                Elf {
                    class,
                    big_endian: big,
                    e_type: 2,
                    machine,
                    interpreter: false
                }
            );
            let e = Elf::parse(&header(class, big, 3, machine, PT_INTERP)).expect("parse");
            assert!(e.interpreter, "{class:?} big={big}");
        }
    }

    #[test]
    fn the_monitor_decides_which_programs_run() {
        let i386 = Elf::parse(&header(Class::Elf32, false, 2, EM_386, 1)).expect("i386");
        let amd64 = Elf::parse(&header(Class::Elf64, false, 2, EM_X86_64, 1)).expect("amd64");
        // x32: a 32-bit class with the x86-64 machine; neither kernel here runs it.
        let x32 = Elf::parse(&header(Class::Elf32, false, 2, EM_X86_64, 1)).expect("x32");
        let colinux = guest_arch(Monitor::Colinux).expect("coLinux");
        assert!(i386.runs_on(colinux));
        assert!(!amd64.runs_on(colinux));
        assert!(!x32.runs_on(colinux));
        if std::env::consts::ARCH == "x86_64" {
            for m in [Monitor::Uml, Monitor::Qemu] {
                let arch = guest_arch(m).expect("x86-64 host");
                assert!(amd64.runs_on(arch));
                assert!(!i386.runs_on(arch));
                assert!(!x32.runs_on(arch));
            }
        }
        assert_eq!(i386.describe(), "i386 (32-bit)");
        assert_eq!(amd64.describe(), "x86-64 (64-bit)");
    }

    #[test]
    fn broken_headers_are_errors_never_panics() {
        assert_eq!(Elf::parse(b"MZ\x90\0"), Err(ElfError::NotElf));
        assert_eq!(Elf::parse(b""), Err(ElfError::NotElf));
        let mut b = header(Class::Elf32, false, 2, EM_386, 1);
        b[4] = 3;
        assert_eq!(Elf::parse(&b), Err(ElfError::Class(3)));
        let mut b = header(Class::Elf64, false, 2, EM_X86_64, 1);
        b[5] = 0;
        assert_eq!(Elf::parse(&b), Err(ElfError::ByteOrder(0)));
        assert_eq!(
            Elf::parse(&header(Class::Elf64, false, 1, EM_X86_64, 1)),
            Err(ElfError::NotProgram(1)),
            "a relocatable object"
        );
        // Every prefix of a valid header of each class: an error, or (the whole) a parse.
        for class in [Class::Elf32, Class::Elf64] {
            let full = header(class, false, 2, EM_386, PT_INTERP);
            for n in 0..full.len() {
                assert!(
                    Elf::parse(&full[..n]).is_err(),
                    "{class:?}: {n} bytes parsed"
                );
            }
        }
        // A program header table placed far past the end, or at an offset that overflows.
        let mut b = header(Class::Elf64, false, 2, EM_X86_64, 1);
        b[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(Elf::parse(&b), Err(ElfError::Truncated { .. })));
        let mut b = header(Class::Elf32, false, 2, EM_386, 1);
        b[0x2a] = 4;
        assert_eq!(Elf::parse(&b), Err(ElfError::ProgramHeaderSize(4)));
        // 65535 program headers of a tiny file: truncated, quickly.
        let mut b = header(Class::Elf32, false, 2, EM_386, 1);
        b[0x2c..0x2e].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(Elf::parse(&b), Err(ElfError::Truncated { .. })));
    }
}
