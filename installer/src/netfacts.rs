//! Which private /24 networks are already routed on this host, so that the TAP adapter's
//! network is chosen among the profile's candidates without a collision
//! (../shared/research/anchors-installers.md §4.3).
//!
//! The TAP adapter itself is made by `tap install` (issue 8); the plan records the
//! candidates and the choice. `SUBNET` pins one.
//!
//! # Platform specific behavior
//!
//! On Linux every IPv4 route of the main table is read from `/proc/net/route` (an
//! interface's own network appears there as a connected route); default routes are
//! ignored. Other hosts report no routes yet, so the first candidate is taken.

/// An IPv4 route: network and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Network address, host byte order.
    pub net: u32,
    /// Prefix length.
    pub len: u32,
    /// Index of the route in the table (for messages).
    pub index: usize,
}

/// The host's IPv4 routes (not the default route).
pub fn routes() -> Vec<Route> {
    #[cfg(target_os = "linux")]
    {
        let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
            return Vec::new();
        };
        parse_proc_route(&text)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// Parses `/proc/net/route` (hex, little-endian addresses).
pub fn parse_proc_route(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .enumerate()
        .filter_map(|(index, l)| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?.swap_bytes();
            let len = mask.count_ones();
            (len > 0).then_some(Route {
                net: dest & mask,
                len,
                index,
            })
        })
        .collect()
}

/// Why the /24 `a.b.c.0` cannot be used, or `None` when it is free.
pub fn conflict(octets: [u8; 3], routes: &[Route]) -> Option<String> {
    let cand = u32::from_be_bytes([octets[0], octets[1], octets[2], 0]);
    for r in routes {
        let len = r.len.min(24);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        if cand & mask == r.net & mask {
            let [a, b, c, d] = r.net.to_be_bytes();
            return Some(format!(
                "overlaps the host's route {a}.{b}.{c}.{d}/{}",
                r.len
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_routes_are_refused() {
        let table = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t0000FFFF\n\
                     tap0\t000C0C0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        let r = parse_proc_route(table);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(conflict([10, 12, 12], &r).is_some());
        assert!(conflict([192, 168, 233], &r).is_some());
        assert!(conflict([10, 77, 42], &r).is_none());
    }
}
