//! The probe's guest: the smallest program that proves a monitor runs guest processes.
//!
//! [`init_program`] is a static x86-64 Linux program of 216 bytes, written here byte by
//! byte: as process 1 it writes [`MARKER`] to its console and powers the machine off
//! (`reboot(LINUX_REBOOT_CMD_POWER_OFF)`); as any other process it exits 2 at once, so
//! started by mistake on a host it does nothing. Booting it tests exactly what fails on
//! the hosts the probe exists for: a kernel that starts but cannot run its first user
//! process (User-mode Linux 6.1/6.12 on CPUs with AMX panics there: `ptrace set fp regs
//! failed`), or a KVM guest that never gets past the firmware.
//!
//! Why by hand: the probe must depend on nothing but the monitor and its kernel (not on
//! a busybox of the right architecture, nor on a kit's root filesystem), and no crate
//! assembles machine code. The instructions are listed with their encodings below and a
//! unit test decodes the ELF headers back; the guest tests boot it for real.
//!
//! [`initramfs`] wraps the program as `/init` in a `newc` cpio archive (the format the
//! kernel unpacks as an initramfs, `Documentation/driver-api/early-userspace/buffer-format.rst`)
//! for QEMU; User-mode Linux boots it from a host folder over hostfs instead.

/// What the probe's init prints when it runs.
pub const MARKER: &str = "COLINUX-SETUP-PROBE-OK";

/// Where the program is loaded (the usual base of x86-64 executables).
const BASE: u64 = 0x40_0000;
/// The ELF header (64 bytes) and one program header (56 bytes) come before the code.
const CODE_OFFSET: u64 = 64 + 56;

/// The machine code, then [`MARKER`] and a newline. Offsets are from the code's start.
fn code() -> Vec<u8> {
    let message_len = u8::try_from(MARKER.len() + 1).unwrap_or(u8::MAX);
    let mut c: Vec<u8> = Vec::with_capacity(100);
    // 0: mov eax, 39 (getpid); syscall
    c.extend([0xb8, 39, 0, 0, 0, 0x0f, 0x05]);
    // 7: cmp eax, 1; jne +49 (to 61: exit) -- only process 1 may power the machine off
    c.extend([0x83, 0xf8, 0x01, 0x75, 49]);
    // 12: mov eax, 1 (write); mov edi, 1 (standard output: the console)
    c.extend([0xb8, 1, 0, 0, 0, 0xbf, 1, 0, 0, 0]);
    // 22: lea rsi, [rip + 44] (29 + 44 = 73: the message)
    c.extend([0x48, 0x8d, 0x35, 44, 0, 0, 0]);
    // 29: mov edx, LEN; syscall
    c.extend([0xba, message_len, 0, 0, 0, 0x0f, 0x05]);
    // 36: mov eax, 169 (reboot); edi = LINUX_REBOOT_MAGIC1, esi = LINUX_REBOOT_MAGIC2,
    //     edx = LINUX_REBOOT_CMD_POWER_OFF, r10 = NULL; syscall
    c.extend([0xb8, 169, 0, 0, 0]);
    c.push(0xbf);
    c.extend(0xfee1_deadu32.to_le_bytes());
    c.push(0xbe);
    c.extend(0x2812_1969u32.to_le_bytes());
    c.push(0xba);
    c.extend(0x4321_fedcu32.to_le_bytes());
    c.extend([0x45, 0x31, 0xd2, 0x0f, 0x05]);
    // 61: mov eax, 60 (exit); mov edi, 2; syscall -- not process 1, or reboot refused
    c.extend([0xb8, 60, 0, 0, 0, 0xbf, 2, 0, 0, 0, 0x0f, 0x05]);
    // 73: the message
    c.extend(MARKER.as_bytes());
    c.push(b'\n');
    c
}

/// The probe's init: a static ELF64 x86-64 executable (see the module doc).
pub fn init_program() -> Vec<u8> {
    let code = code();
    let total = CODE_OFFSET + code.len() as u64;
    let mut e: Vec<u8> = Vec::with_capacity(usize::try_from(total).unwrap_or(256));
    // e_ident: magic, ELFCLASS64, little-endian, version 1, System V ABI, padding.
    e.extend([0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    e.extend([0u8; 8]);
    e.extend(2u16.to_le_bytes()); // e_type: ET_EXEC
    e.extend(0x3eu16.to_le_bytes()); // e_machine: EM_X86_64
    e.extend(1u32.to_le_bytes()); // e_version
    e.extend((BASE + CODE_OFFSET).to_le_bytes()); // e_entry
    e.extend(64u64.to_le_bytes()); // e_phoff: right after this header
    e.extend(0u64.to_le_bytes()); // e_shoff: no sections
    e.extend(0u32.to_le_bytes()); // e_flags
    e.extend(64u16.to_le_bytes()); // e_ehsize
    e.extend(56u16.to_le_bytes()); // e_phentsize
    e.extend(1u16.to_le_bytes()); // e_phnum
    e.extend([0u8; 6]); // e_shentsize, e_shnum, e_shstrndx
    // The one PT_LOAD: the whole file, readable and executable, at BASE.
    e.extend(1u32.to_le_bytes()); // p_type: PT_LOAD
    e.extend(5u32.to_le_bytes()); // p_flags: PF_R | PF_X
    e.extend(0u64.to_le_bytes()); // p_offset
    e.extend(BASE.to_le_bytes()); // p_vaddr
    e.extend(BASE.to_le_bytes()); // p_paddr
    e.extend(total.to_le_bytes()); // p_filesz
    e.extend(total.to_le_bytes()); // p_memsz
    e.extend(0x1000u64.to_le_bytes()); // p_align
    e.extend(code);
    e
}

/// One `newc` entry: the 110-byte ASCII header, the name with its NUL, padding to 4
/// bytes, the data, padding to 4 bytes.
fn newc_entry(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8]) {
    let name_size = name.len() + 1;
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        1, // nlink
        0, // mtime: fixed, so the archive is the same bytes every time
        u32::try_from(data.len()).unwrap_or(u32::MAX),
        0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        u32::try_from(name_size).unwrap_or(u32::MAX),
        0, // check (only for the "070702" format)
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// An uncompressed initramfs holding [`init_program`] as `/init` (mode 0755).
pub fn initramfs() -> Vec<u8> {
    let mut out = Vec::new();
    newc_entry(&mut out, 1, 0o100_755, "init", &init_program());
    newc_entry(&mut out, 0, 0, "TRAILER!!!", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(x)
    }

    #[test]
    fn the_program_is_one_loadable_x86_64_segment_whose_entry_is_its_code() {
        let e = init_program();
        assert_eq!(&e[..4], b"\x7fELF");
        assert_eq!((e[4], e[5]), (2, 1), "ELF64, little-endian");
        assert_eq!(u16_at(&e, 16), 2, "ET_EXEC");
        assert_eq!(u16_at(&e, 18), 0x3e, "EM_X86_64");
        assert_eq!(u64_at(&e, 24), BASE + CODE_OFFSET, "entry");
        assert_eq!(u16_at(&e, 56), 1, "one program header");
        let ph = 64;
        assert_eq!(u64_at(&e, ph + 32), e.len() as u64, "p_filesz is the file");
        assert_eq!(u64_at(&e, ph + 16), BASE);
        // The message sits where the lea points: code offset 29 + 44.
        let msg = usize::try_from(CODE_OFFSET).expect("small") + 73;
        assert_eq!(&e[msg..msg + MARKER.len()], MARKER.as_bytes());
        assert_eq!(e.last(), Some(&b'\n'));
        // The jne lands on the exit sequence (mov eax, 60).
        let code = usize::try_from(CODE_OFFSET).expect("small");
        assert_eq!(e[code + 12 + 49], 0xb8);
        assert_eq!(e[code + 12 + 49 + 1], 60);
    }

    #[test]
    fn the_initramfs_is_newc_with_init_and_a_trailer() {
        let a = initramfs();
        assert_eq!(a.len() % 4, 0);
        assert_eq!(&a[..6], b"070701");
        let name_at = 110;
        assert_eq!(&a[name_at..name_at + 5], b"init\0");
        let size = usize::from_str_radix(
            std::str::from_utf8(&a[6 + 6 * 8..6 + 7 * 8]).expect("ascii"),
            16,
        )
        .expect("hex");
        assert_eq!(size, init_program().len());
        let data_at = (name_at + 5).next_multiple_of(4);
        assert_eq!(&a[data_at..data_at + size], init_program().as_slice());
        let trailer = (data_at + size).next_multiple_of(4);
        assert_eq!(&a[trailer..trailer + 6], b"070701");
        assert_eq!(&a[trailer + 110..trailer + 120], b"TRAILER!!!");
    }
}
