//! Little-endian and big-endian field writers and readers, named after ext4-view's
//! `read_u32le` family so that encoders and decoders read alike.
//!
//! ext4 is little-endian throughout, except the journal (jbd2), which is big-endian.
//! The writers take the offset first, as the kernel's structure tables list fields.

/// Writes `v` at `off`, little-endian.
pub(crate) fn put_u16le(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` at `off`, little-endian.
pub(crate) fn put_u32le(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` at `off`, big-endian (jbd2 structures).
pub(crate) fn put_u32be(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// Reads a little-endian u16 at `off`; `None` when the slice is too short.
pub(crate) fn get_u16le(buf: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(buf.get(off..off + 2)?.try_into().ok()?))
}

/// Reads a little-endian u32 at `off`; `None` when the slice is too short.
pub(crate) fn get_u32le(buf: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(off..off + 4)?.try_into().ok()?))
}

/// Reads a big-endian u32 at `off`; `None` when the slice is too short.
pub(crate) fn get_u32be(buf: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(buf.get(off..off + 4)?.try_into().ok()?))
}

/// The low 32 bits of a 64-bit on-disk quantity (the `_lo` field).
pub(crate) fn lo32(v: u64) -> u32 {
    (v & 0xffff_ffff) as u32
}

/// The high 32 bits of a 64-bit on-disk quantity (the `_hi` field).
pub(crate) fn hi32(v: u64) -> u32 {
    (v >> 32) as u32
}

/// True when every byte of `block` is zero; such blocks become holes in the image.
pub(crate) fn is_zero(block: &[u8]) -> bool {
    // OR-reducing 16-byte lanes lets the compiler vectorise; an early-exit byte loop
    // does not, and this runs over every byte the image receives. Stretches of 256
    // bytes keep the vectorised loop and still stop at the first one that holds data:
    // a block of file data (most of what comes here) is told from zeros in its first
    // bytes rather than after a full scan, and zeros cost the same as one long loop.
    block.chunks(256).all(lanes_zero)
}

/// [`is_zero`] over the whole of `block`, without stopping early.
fn lanes_zero(block: &[u8]) -> bool {
    let mut chunks = block.chunks_exact(16);
    let acc = chunks.by_ref().fold(0u128, |acc, c| {
        let mut lane = [0u8; 16];
        lane.copy_from_slice(c);
        acc | u128::from_ne_bytes(lane)
    });
    acc == 0 && chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_zero_sees_a_single_byte_anywhere() {
        // Lengths around the 16-byte lanes and the 256-byte stretches, and every place
        // of a non-zero byte in them, the remainders included.
        for len in [0, 1, 15, 16, 17, 255, 256, 257, 4096, 4097] {
            let mut b = vec![0u8; len];
            assert!(is_zero(&b), "{len}");
            for i in 0..len {
                b[i] = 0x80;
                assert!(!is_zero(&b), "{len} at {i}");
                b[i] = 0;
            }
        }
    }
}
