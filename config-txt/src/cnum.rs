//! The C library number readers colinux-daemon uses, as a 32-bit Windows build runs them
//! (`long` and `unsigned long` are 32 bits there): `strtoul(.., 10)` for `mem=` and
//! indices, `strtol(.., 0)` for `cocon=` and `cursor=` (colinux-spec.md §1.5, §1.7, §9.15,
//! §9.16). Both skip leading white space, take a sign, stop at the first byte that is not a
//! digit, and clamp on overflow; the caller learns how many bytes were read so that it can
//! tell "no digits" (an error for the daemon in some places) from "trailing text" (ignored).

/// What a C number reader returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CNum<T> {
    /// The value, as C returns it.
    pub value: T,
    /// Bytes consumed; 0 when there were no digits (C sets `endptr` to the start).
    pub used: usize,
    /// The magnitude did not fit and the value was clamped.
    pub overflow: bool,
    /// A `-` sign was read.
    pub negative: bool,
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Leading white space and sign: returns (index after them, negative).
fn prefix(s: &[u8]) -> (usize, bool) {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    if let Some(&b) = s.get(i)
        && (b == b'+' || b == b'-')
    {
        negative = b == b'-';
        i += 1;
    }
    (i, negative)
}

/// Reads digits of `radix` from `s[i..]`: (end index, magnitude saturated at u64::MAX, any digit).
fn digits(s: &[u8], mut i: usize, radix: u32) -> (usize, u64, bool) {
    let mut mag: u64 = 0;
    let mut any = false;
    while let Some(d) = s.get(i).and_then(|&b| char::from(b).to_digit(radix)) {
        mag = mag
            .saturating_mul(u64::from(radix))
            .saturating_add(u64::from(d));
        any = true;
        i += 1;
    }
    (i, mag, any)
}

/// `strtoul(s, &end, 10)` with a 32-bit `unsigned long`.
pub(crate) fn strtoul10(s: &[u8]) -> CNum<u32> {
    let (start, negative) = prefix(s);
    let (end, mag, any) = digits(s, start, 10);
    if !any {
        return CNum {
            value: 0,
            used: 0,
            overflow: false,
            negative: false,
        };
    }
    let (value, overflow) = match u32::try_from(mag) {
        // C negates in unsigned arithmetic: "-1" reads as ULONG_MAX.
        Ok(v) if negative => (v.wrapping_neg(), false),
        Ok(v) => (v, false),
        Err(_) => (u32::MAX, true),
    };
    CNum {
        value,
        used: end,
        overflow,
        negative,
    }
}

/// `strtol(s, &end, 0)` with a 32-bit `long`: `0x` hexadecimal, leading `0` octal.
pub(crate) fn strtol0(s: &[u8]) -> CNum<i32> {
    strtol(s, 0)
}

/// `strtol(s, &end, 10)` with a 32-bit `long`.
pub(crate) fn strtol10(s: &[u8]) -> CNum<i32> {
    strtol(s, 10)
}

fn strtol(s: &[u8], base: u32) -> CNum<i32> {
    let (start, negative) = prefix(s);
    let hex = base == 0
        && s.get(start) == Some(&b'0')
        && matches!(s.get(start + 1), Some(b'x' | b'X'))
        && s.get(start + 2).is_some_and(|b| b.is_ascii_hexdigit());
    let (end, mag, any) = if hex {
        digits(s, start + 2, 16)
    } else if base == 0 && s.get(start) == Some(&b'0') {
        digits(s, start, 8)
    } else {
        digits(s, start, 10)
    };
    if !any {
        return CNum {
            value: 0,
            used: 0,
            overflow: false,
            negative: false,
        };
    }
    let limit: u64 = if negative { 1 << 31 } else { (1 << 31) - 1 };
    let overflow = mag > limit;
    let mag = mag.min(limit);
    let value = if negative {
        // mag <= 2^31 here, so the negation fits in i64 and then in i32.
        i32::try_from(-(mag as i64)).unwrap_or(i32::MIN)
    } else {
        i32::try_from(mag).unwrap_or(i32::MAX)
    };
    CNum {
        value,
        used: end,
        overflow,
        negative,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoul_reads_leading_digits_and_ignores_the_rest() {
        assert_eq!(strtoul10(b"64M").value, 64);
        assert_eq!(strtoul10(b"64M").used, 2);
        // `0x40` is decimal 0 followed by junk (spec §1.7 mem).
        assert_eq!(strtoul10(b"0x40").value, 0);
        assert_eq!(strtoul10(b"0x40").used, 1);
        assert_eq!(strtoul10(b"abc").used, 0);
        assert_eq!(strtoul10(b"-1").value, u32::MAX);
        assert!(strtoul10(b"99999999999").overflow);
        assert_eq!(strtoul10(b"99999999999").value, u32::MAX);
    }

    #[test]
    fn strtol_base_0_reads_hex_and_octal() {
        assert_eq!(strtol0(b"0x50").value, 80);
        assert_eq!(strtol0(b"010").value, 8);
        assert_eq!(strtol0(b"08").value, 0);
        assert_eq!(strtol0(b"08").used, 1);
        assert_eq!(strtol0(b"0x").value, 0);
        assert_eq!(strtol0(b"0x").used, 1);
        assert_eq!(strtol0(b"-5").value, -5);
        assert_eq!(strtol0(b"x").used, 0);
        assert_eq!(strtol0(b"99999999999").value, i32::MAX);
        assert_eq!(strtol0(b"-99999999999").value, i32::MIN);
    }
}
