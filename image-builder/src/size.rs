//! Sizes as users write them: `512M`, `2G`, `1048576`, and the automatic forms
//! `auto`, `auto+20%`, `auto+256M`.
//!
//! Suffixes are binary (K = 1024), as mke2fs and dd read them; a trailing `B` or `iB`
//! is accepted (`512MiB`).

use crate::error::Error;

/// The size of an image to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeSpec {
    /// Exactly this many bytes (rounded down to whole blocks).
    Bytes(u64),
    /// The smallest image that holds the content, plus headroom.
    Auto(Headroom),
}

/// Free space asked for on top of the content in an automatic size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Headroom {
    /// Nothing extra.
    #[default]
    None,
    /// This percentage of the content's size.
    Percent(u32),
    /// This many bytes.
    Bytes(u64),
}

/// Parses `512M`, `1G`, `4096`, `1.5G`.
pub fn parse_bytes(s: &str) -> Result<u64, Error> {
    let bad = || Error::BadSize(s.to_owned());
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult): (&str, u64) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    if num.is_empty() {
        return Err(bad());
    }
    if let Some((whole, frac)) = num.split_once('.') {
        // "1.5G": whole and fractional parts in integer arithmetic, no float rounding.
        let w: u64 = whole.parse().map_err(|_| bad())?;
        if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let f: u64 = frac.parse().map_err(|_| bad())?;
        let scale = 10u64.pow(u32::try_from(frac.len()).map_err(|_| bad())?);
        let whole_bytes = w.checked_mul(mult).ok_or_else(bad)?;
        let frac_bytes = f.checked_mul(mult).ok_or_else(bad)? / scale;
        return whole_bytes.checked_add(frac_bytes).ok_or_else(bad);
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mult).ok_or_else(bad)
}

impl std::str::FromStr for SizeSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        let Some(rest) = t.strip_prefix("auto") else {
            return parse_bytes(t).map(SizeSpec::Bytes);
        };
        if rest.is_empty() {
            return Ok(SizeSpec::Auto(Headroom::None));
        }
        let extra = rest
            .strip_prefix('+')
            .ok_or_else(|| Error::BadSize(s.to_owned()))?;
        if let Some(p) = extra.strip_suffix('%') {
            let pct: u32 = p.parse().map_err(|_| Error::BadSize(s.to_owned()))?;
            return Ok(SizeSpec::Auto(Headroom::Percent(pct)));
        }
        parse_bytes(extra)
            .map(|b| SizeSpec::Auto(Headroom::Bytes(b)))
            .map_err(|_| Error::BadSize(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_binary() {
        assert_eq!(parse_bytes("512M").ok(), Some(512 << 20));
        assert_eq!(parse_bytes("2G").ok(), Some(2 << 30));
        assert_eq!(parse_bytes("64KiB").ok(), Some(64 << 10));
        assert_eq!(parse_bytes("1.5G").ok(), Some(3 << 29));
        assert_eq!(parse_bytes("4096").ok(), Some(4096));
    }

    #[test]
    fn junk_is_refused() {
        for s in [
            "",
            "M",
            "12Q",
            "-5M",
            "1.G",
            "99999999999999999999T",
            "1.2.3G",
        ] {
            assert!(parse_bytes(s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn auto_forms() {
        assert_eq!(
            "auto".parse::<SizeSpec>().ok(),
            Some(SizeSpec::Auto(Headroom::None))
        );
        assert_eq!(
            "auto+20%".parse::<SizeSpec>().ok(),
            Some(SizeSpec::Auto(Headroom::Percent(20)))
        );
        assert_eq!(
            "auto+256M".parse::<SizeSpec>().ok(),
            Some(SizeSpec::Auto(Headroom::Bytes(256 << 20)))
        );
        assert!("auto-5%".parse::<SizeSpec>().is_err());
        assert!("automatic".parse::<SizeSpec>().is_err());
    }
}
