//! VHDX output and input, judged by QEMU's VHDX driver: every VHDX passes `qemu-img check`,
//! and `qemu-img convert -O raw` of it is byte for byte the raw image built from the same
//! inputs (which `e2fsck -fn` finds clean). Damaged VHDX files (headers, region tables,
//! metadata, BAT), patched at the offsets MS-VHDX gives, are refused with an error that
//! names what is wrong, or read through the other copy where the format keeps two.
//!
//! Needs `qemu-img` (Debian: qemu-utils) and `e2fsck` (e2fsprogs); scripts/test installs
//! both.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use image_builder::{
    BuildOptions, DiskFormat, Error, FsLevel, Source, SwapOptions, VhdxError, VirtualDisk, build,
    inspect, write_swap,
};

const MIB: u64 = 1 << 20;

fn qemu_img(args: &[&str], file: &Path) -> std::process::Output {
    Command::new("qemu-img")
        .args(args)
        .arg(file)
        .output()
        .expect("qemu-img runs (Debian: apt-get install qemu-utils)")
}

/// Builds `out` (a VHDX when it ends in .vhdx) from `sources` at `size`.
fn build_as(out: &Path, level: FsLevel, size: &str, sources: &[Source]) {
    let mut o = BuildOptions::new(level, size.parse().expect("size"));
    o.sources = sources.to_vec();
    o.owner = Some((0, 0));
    o.source_date_epoch = Some(1_700_000_000);
    o.format = DiskFormat::from_path(out);
    build(out, &o, &mut |_| {}, &AtomicBool::new(false)).expect("builds");
}

/// Whether two files hold the same bytes (read in pieces: images are large and sparse).
fn same_bytes(a: &Path, b: &Path) -> Result<(), String> {
    use std::io::Read;
    let (mut fa, mut fb) = (
        std::fs::File::open(a).expect("open"),
        std::fs::File::open(b).expect("open"),
    );
    let (la, lb) = (
        fa.metadata().expect("md").len(),
        fb.metadata().expect("md").len(),
    );
    if la != lb {
        return Err(format!("{la} bytes against {lb}"));
    }
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    let mut at = 0u64;
    while at < la {
        let n = (la - at).min(MIB) as usize;
        fa.read_exact(&mut ba[..n]).expect("read");
        fb.read_exact(&mut bb[..n]).expect("read");
        if ba[..n] != bb[..n]
            && let Some(i) = (0..n).find(|&i| ba[i] != bb[i])
        {
            return Err(format!("first difference at byte {}", at + i as u64));
        }
        at += n as u64;
    }
    Ok(())
}

/// The oracles: `qemu-img check` passes, QEMU reads the VHDX as `vhdx`, its raw conversion
/// equals `raw`, and `e2fsck -fn` finds that clean (unless `swap`).
fn judge(vhdx: &Path, raw: &Path, swap: bool) {
    let o = qemu_img(&["check", "-f", "vhdx"], vhdx);
    assert!(
        o.status.success(),
        "qemu-img check {}: {}{}",
        vhdx.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let converted = vhdx.with_extension("converted");
    let o = Command::new("qemu-img")
        .args(["convert", "-f", "vhdx", "-O", "raw"])
        .arg(vhdx)
        .arg(&converted)
        .output()
        .expect("qemu-img runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if let Err(e) = same_bytes(&converted, raw) {
        panic!(
            "{} converted to raw differs from {}: {e}",
            vhdx.display(),
            raw.display()
        );
    }
    if !swap {
        let o = Command::new("e2fsck")
            .arg("-fn")
            .arg(&converted)
            .output()
            .expect("e2fsck runs");
        assert!(
            o.status.success(),
            "e2fsck -fn: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    std::fs::remove_file(&converted).expect("rm");
}

/// Builds `name`.vhdx and `name`.img from the same inputs and judges the VHDX by them.
fn both(dir: &Path, name: &str, level: FsLevel, size: &str, sources: &[Source]) -> PathBuf {
    let vhdx = dir.join(format!("{name}.vhdx"));
    let raw = dir.join(format!("{name}.img"));
    build_as(&vhdx, level, size, sources);
    build_as(&raw, level, size, sources);
    judge(&vhdx, &raw, false);
    vhdx
}

/// A deterministic, non-zero byte pattern.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| ((i ^ seed).wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect()
}

#[test]
fn empty_small_and_multi_block_trees_convert_byte_for_byte() {
    let t = tempfile::tempdir().expect("tempdir");
    // Empty: no source at all, a fixed size and a growing one.
    both(t.path(), "empty", FsLevel::Ext4Modern, "64M", &[]);
    both(t.path(), "empty-auto", FsLevel::Ext2, "auto", &[]);

    // Small: a few files, each level.
    let small = t.path().join("small");
    std::fs::create_dir_all(small.join("etc")).expect("mkdir");
    std::fs::write(small.join("etc/hostname"), b"colinux\n").expect("write");
    std::fs::write(small.join("etc/motd"), pattern(5000, 1)).expect("write");
    for (name, level) in [
        ("small-ext2", FsLevel::Ext2),
        ("small-ext3", FsLevel::Ext3),
        ("small-ext4c", FsLevel::Ext4Compat),
    ] {
        both(t.path(), name, level, "32M", &[Source::Dir(small.clone())]);
    }

    // Larger than one 1 MiB block, with holes: a 5 MiB file and a sparse file whose data
    // lies 40 MiB apart (the blocks between stay out of the VHDX).
    let big = t.path().join("big");
    std::fs::create_dir_all(&big).expect("mkdir");
    std::fs::write(big.join("five"), pattern(5 << 20, 2)).expect("write");
    let sparse = std::fs::File::create(big.join("sparse")).expect("create");
    std::os::unix::fs::FileExt::write_all_at(&sparse, &pattern(70_000, 3), 0).expect("write");
    std::os::unix::fs::FileExt::write_all_at(&sparse, &pattern(70_000, 4), 40 << 20)
        .expect("write");
    drop(sparse);
    let v = both(
        t.path(),
        "big",
        FsLevel::Ext4Modern,
        "128M",
        &[Source::Dir(big.clone())],
    );
    let info = inspect(&v).expect("inspects");
    assert_eq!(info.format, DiskFormat::Vhdx);
    // Only blocks with data are in the file: 5 MiB of one file, a little of the other,
    // the metadata; far less than the disk.
    assert!(
        info.file_bytes < 24 * MIB && info.size_bytes > 40 * MIB,
        "file {} bytes for a {}-byte disk",
        info.file_bytes,
        info.size_bytes
    );
    let o = qemu_img(&["info", "--output=json"], &v);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("\"cluster-size\": 1048576") && text.contains("\"format\": \"vhdx\""),
        "{text}"
    );

    // A large empty disk stays small: 1 GiB of ext4 (8 groups, 4 superblock backups) in
    // a few MiB of file.
    let v = both(t.path(), "large", FsLevel::Ext4Modern, "1G", &[]);
    let len = std::fs::metadata(&v).expect("md").len();
    assert!(len < 40 * MIB, "{len} bytes for an empty 1 GiB disk");
}

#[test]
fn swap_in_a_vhdx() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut raw = t.path().join("swap.img");
    for format in [DiskFormat::Raw, DiskFormat::Vhdx] {
        let out = t.path().join(match format {
            DiskFormat::Vhdx => "swap.vhdx",
            _ => "swap.img",
        });
        write_swap(
            &out,
            &SwapOptions {
                size: 64 * MIB,
                label: Some("swap".into()),
                uuid: None,
                force: false,
                format,
            },
        )
        .expect("writes");
        if format == DiskFormat::Raw {
            raw = out;
        } else {
            judge(&out, &raw, true);
            assert_eq!(
                inspect(&out).expect("inspects").kind,
                image_builder::ImageKind::Swap
            );
        }
    }
}

#[test]
fn same_inputs_same_bytes() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("usr/bin")).expect("mkdir");
    for i in 0..50 {
        std::fs::write(
            src.join(format!("usr/bin/t{i}")),
            pattern(3000 * i, i as u32),
        )
        .expect("write");
    }
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    for dir in [&a, &b] {
        build_as(
            &dir.join("root.vhdx"),
            FsLevel::Ext4Modern,
            "auto+20%",
            &[Source::Dir(src.clone())],
        );
    }
    let (x, y) = (
        std::fs::read(a.join("root.vhdx")).expect("read"),
        std::fs::read(b.join("root.vhdx")).expect("read"),
    );
    assert!(x == y, "two builds of the same inputs differ");
    // Another name is another disk: its GUIDs (and the filesystem's UUID) differ.
    build_as(
        &a.join("home.vhdx"),
        FsLevel::Ext4Modern,
        "auto+20%",
        &[Source::Dir(src.clone())],
    );
    assert!(std::fs::read(a.join("home.vhdx")).expect("read") != x);
}

#[test]
fn a_vhdx_is_a_source_grown_and_converted() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("data")).expect("mkdir");
    std::fs::write(src.join("data/a"), pattern(3 << 20, 9)).expect("write");
    std::fs::write(src.join("data/b"), b"b\n").expect("write");
    let old = t.path().join("old.vhdx");
    build_as(&old, FsLevel::Ext3, "64M", &[Source::Dir(src.clone())]);
    assert!(matches!(Source::detect(&old), Source::Image(_)));
    // Grown and converted to ext4, as a VHDX and as a raw image: the same filesystem.
    both(
        t.path(),
        "grown",
        FsLevel::Ext4Modern,
        "256M",
        &[Source::Image(old.clone())],
    );
    let report = image_builder::check(&t.path().join("grown.vhdx")).expect("checks");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

// ---------------------------------------------------------------------------------
// Damaged files. Offsets from MS-VHDX 2.2: headers at 64 KiB and 128 KiB (checksum at 4),
// region tables at 192 KiB and 256 KiB (entries from byte 16, 32 bytes each: GUID, file
// offset at 16); the metadata table's entries from byte 32 (GUID, offset at 16, length at
// 20, flags at 24), the items after it.

/// A small valid VHDX (two payload blocks with data at least) and its bytes.
fn base(dir: &Path) -> (PathBuf, Vec<u8>) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), pattern(3 << 20, 5)).expect("write");
    let v = dir.join("base.vhdx");
    build_as(&v, FsLevel::Ext4Modern, "32M", &[Source::Dir(src)]);
    let bytes = std::fs::read(&v).expect("read");
    (v, bytes)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The file offset of the region whose GUID begins with `first_bytes` (mixed-endian).
fn region_offset(b: &[u8], first_bytes: [u8; 4]) -> usize {
    let t = 192 << 10;
    (0..2)
        .map(|i| t + 16 + 32 * i)
        .find(|e| b[*e..*e + 4] == first_bytes)
        .map(|e| u64_at(b, e + 16) as usize)
        .expect("region present")
}

const BAT: [u8; 4] = [0x66, 0x77, 0xc2, 0x2d];
const METADATA: [u8; 4] = [0x06, 0xa2, 0x7c, 0x8b];

/// Writes `bytes` as a file named `name` in `dir` and opens it as a disk.
fn open_patched(dir: &Path, name: &str, bytes: &[u8]) -> Result<VirtualDisk, Error> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    VirtualDisk::open(&p)
}

fn problem(r: Result<VirtualDisk, Error>) -> VhdxError {
    match r {
        Err(Error::Vhdx { problem, .. }) => problem,
        other => panic!("expected a VHDX error, got {other:?}"),
    }
}

/// Recomputes a CRC-32C field at `at` over `range` (to damage a field, not its checksum).
fn reseal(b: &mut [u8], range: std::ops::Range<usize>, at: usize) {
    b[at..at + 4].fill(0);
    let c = crc32c::crc32c(&b[range]);
    b[at..at + 4].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn damaged_headers_and_region_tables() {
    let t = tempfile::tempdir().expect("tempdir");
    let (_, good) = base(t.path());
    let disk = open_patched(t.path(), "good.vhdx", &good).expect("opens");
    assert_eq!(disk.format(), DiskFormat::Vhdx);
    assert_eq!(disk.len(), 32 * MIB);

    // Bad signature: a .vhdx without it is refused; under another name it is no image.
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(
        problem(open_patched(t.path(), "sig.vhdx", &b)),
        VhdxError::Signature
    );
    let e = inspect(&{
        let p = t.path().join("sig.img");
        std::fs::write(&p, &b).expect("write");
        p
    })
    .expect_err("no image");
    assert!(matches!(e, Error::NotAnImage { .. }), "{e}");

    // One header damaged: the other is used (header 2 is current; then header 1 alone).
    for at in [(128 << 10) + 0x100, (64 << 10) + 0x100] {
        let mut b = good.clone();
        b[at] ^= 0xff;
        let d = open_patched(t.path(), "one.vhdx", &b).expect("read through the other header");
        assert_eq!(d.len(), 32 * MIB);
    }
    // Both damaged: refused, each copy's reason named.
    let mut b = good.clone();
    b[(64 << 10) + 0x100] ^= 0xff;
    b[128 << 10] = b'X';
    let e = problem(open_patched(t.path(), "both.vhdx", &b));
    let text = e.to_string();
    assert!(
        text.contains("both headers are damaged")
            && text.contains("header 1: its checksum")
            && text.contains("header 2: its signature is not 'head'"),
        "{text}"
    );
    // A header with version 2 (checksum valid): refused as such, the other copy used.
    let mut b = good.clone();
    b[(128 << 10) + 0x42] = 2;
    reseal(&mut b, (128 << 10)..(132 << 10), (128 << 10) + 4);
    open_patched(t.path(), "v2.vhdx", &b).expect("header 1 is used");

    // Region table 1 with a bad checksum: copy 2 is used; both bad: refused.
    let mut b = good.clone();
    b[(192 << 10) + 200] ^= 1;
    open_patched(t.path(), "rt1.vhdx", &b).expect("region table 2 is used");
    b[(256 << 10) + 200] ^= 1;
    let text = problem(open_patched(t.path(), "rt.vhdx", &b)).to_string();
    assert!(
        text.contains("both region tables are damaged") && text.contains("checksum"),
        "{text}"
    );

    // An unknown required region (checksums kept valid) is refused by name.
    let mut b = good.clone();
    for t0 in [192usize << 10, 256 << 10] {
        b[t0 + 8] = 3; // entry count
        let e = t0 + 16 + 64;
        b[e..e + 16].copy_from_slice(&[0x11; 16]);
        b[e + 16..e + 24].copy_from_slice(&(64 * MIB).to_le_bytes());
        b[e + 24..e + 28].copy_from_slice(&(MIB as u32).to_le_bytes());
        b[e + 28] = 1;
        reseal(&mut b, t0..t0 + (64 << 10), t0 + 4);
    }
    let e = problem(open_patched(t.path(), "unknown-region.vhdx", &b));
    assert!(matches!(e, VhdxError::UnknownRequiredRegion(_)), "{e}");
}

#[test]
fn damaged_bat_entries() {
    let t = tempfile::tempdir().expect("tempdir");
    let (_, good) = base(t.path());
    let bat = region_offset(&good, BAT);
    let present: Vec<usize> = (0..32)
        .filter(|i| u64_at(&good, bat + 8 * i) & 7 == 6)
        .collect();
    assert!(present.len() >= 2, "blocks with data: {present:?}");

    // Pointing past the end of the file.
    let mut b = good.clone();
    let far = (100_000u64 << 20) | 6;
    b[bat + 8 * present[0]..bat + 8 * present[0] + 8].copy_from_slice(&far.to_le_bytes());
    let text = problem(open_patched(t.path(), "far.vhdx", &b)).to_string();
    assert!(
        text.contains(&format!("BAT entry {}", present[0]))
            && text.contains("past the end of the file"),
        "{text}"
    );
    // Two blocks at the same place.
    let mut b = good.clone();
    let first = u64_at(&good, bat + 8 * present[0]);
    b[bat + 8 * present[1]..bat + 8 * present[1] + 8].copy_from_slice(&first.to_le_bytes());
    let text = problem(open_patched(t.path(), "overlap.vhdx", &b)).to_string();
    assert!(text.contains("overlaps payload block"), "{text}");
    // Inside the metadata region.
    let mut b = good.clone();
    let md = region_offset(&good, METADATA) as u64;
    b[bat..bat + 8].copy_from_slice(&((md >> 20) << 20 | 6).to_le_bytes());
    let text = problem(open_patched(t.path(), "in-md.vhdx", &b)).to_string();
    assert!(text.contains("overlaps the metadata region"), "{text}");
    // A state the format does not define.
    let mut b = good.clone();
    b[bat] = (b[bat] & !7) | 5;
    let text = problem(open_patched(t.path(), "state.vhdx", &b)).to_string();
    assert!(text.contains("state 5 is not defined"), "{text}");
}

#[test]
fn damaged_metadata() {
    let t = tempfile::tempdir().expect("tempdir");
    let (_, good) = base(t.path());
    let md = region_offset(&good, METADATA);
    let entry = |k: usize| md + 32 + 32 * k;
    let item = |k: usize| {
        md + u32::from_le_bytes(good[entry(k) + 16..entry(k) + 20].try_into().expect("4")) as usize
    };

    // A required item missing: Physical Sector Size's GUID changed, not required.
    let mut b = good.clone();
    b[entry(4)] ^= 0xff;
    b[entry(4) + 24] = 0b010;
    assert_eq!(
        problem(open_patched(t.path(), "missing.vhdx", &b)),
        VhdxError::MissingMetadata("Physical Sector Size")
    );
    // The same item unknown and required.
    b[entry(4) + 24] = 0b110;
    let e = problem(open_patched(t.path(), "unknown.vhdx", &b));
    assert!(matches!(e, VhdxError::UnknownRequiredMetadata(_)), "{e}");

    // Block size not a power of two, and out of range.
    for (size, name) in [(3 * MIB as u32, "bs3.vhdx"), (512 << 10, "bs-small.vhdx")] {
        let mut b = good.clone();
        b[item(0)..item(0) + 4].copy_from_slice(&size.to_le_bytes());
        let text = problem(open_patched(t.path(), name, &b)).to_string();
        assert!(
            text.contains(&format!("block size {size} is not a power of two")),
            "{text}"
        );
    }
    // Virtual size not a multiple of the logical sector size.
    let mut b = good.clone();
    b[item(1)..item(1) + 8].copy_from_slice(&(32 * MIB + 1).to_le_bytes());
    let text = problem(open_patched(t.path(), "size.vhdx", &b)).to_string();
    assert!(
        text.contains("Virtual Disk Size") && text.contains("not a multiple of the 512-byte"),
        "{text}"
    );
    // A differencing disk (HasParent).
    let mut b = good.clone();
    b[item(0) + 4] = 2;
    assert_eq!(
        problem(open_patched(t.path(), "child.vhdx", &b)),
        VhdxError::Differencing
    );
    // A bad metadata signature.
    let mut b = good.clone();
    b[md] = b'X';
    let e = problem(open_patched(t.path(), "mdsig.vhdx", &b));
    assert!(matches!(e, VhdxError::MetadataTable(_)), "{e}");
}

#[test]
fn truncated_and_scrambled_files_never_panic() {
    let t = tempfile::tempdir().expect("tempdir");
    let (_, good) = base(t.path());
    for len in [
        0,
        7,
        8,
        4096,
        70_000,
        MIB as usize,
        3 * MIB as usize,
        good.len() - 1,
    ] {
        let r = open_patched(t.path(), "cut.vhdx", &good[..len]);
        assert!(r.is_err(), "a file cut at {len} bytes is refused");
    }
    // Pseudo-random bytes over the metadata and BAT (no checksum guards them): each open
    // ends in Ok or an error, and a disk that opens can be read.
    let md = region_offset(&good, METADATA);
    let bat = region_offset(&good, BAT);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..200 {
        let mut b = good.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let base = if round % 2 == 0 { md } else { bat };
            let at = base + (x % 512) as usize;
            b[at] = (x >> 32) as u8;
        }
        if let Ok(d) = open_patched(t.path(), "fuzz.vhdx", &b) {
            let mut buf = vec![0u8; 3 << 20];
            for at in [0, d.len() / 2, d.len().saturating_sub(4096)] {
                let _ = d.read_at(&mut buf, at);
            }
        }
    }
}

#[test]
fn refusals_leave_nothing_behind() {
    let t = tempfile::tempdir().expect("tempdir");
    // Too small, as for a raw image: the same error, no file and no temporary left.
    let big = t.path().join("big");
    std::fs::create_dir_all(&big).expect("mkdir");
    std::fs::write(big.join("f"), pattern(3 << 20, 1)).expect("write");
    let mut o = BuildOptions::new(FsLevel::Ext4Modern, "2M".parse().expect("size"));
    o.sources.push(Source::Dir(big));
    o.format = DiskFormat::Vhdx;
    let out = t.path().join("out.vhdx");
    let e = build(&out, &o, &mut |_| {}, &AtomicBool::new(false)).expect_err("too small");
    assert!(matches!(e, Error::TooSmall { .. }), "{e}");
    // Interrupted: nothing left.
    o.size = "64M".parse().expect("size");
    let e = build(&out, &o, &mut |_| {}, &AtomicBool::new(true)).expect_err("interrupted");
    assert!(matches!(e, Error::Interrupted), "{e}");
    let left: Vec<_> = std::fs::read_dir(t.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "big")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
