//! colinux-daemon's comma-field splitter, `split_comma_separated` (colinux-spec.md §1.7
//! preamble, §9.9).
//!
//! - a `"` toggles quoted mode, in which commas are literal; the quote is removed;
//! - `""` is a literal `"`, inside or outside quotes, so `,"",` is *not* an empty field;
//! - each field has a fixed buffer: when it is full, further bytes spill into the next
//!   field (the spec observed a 70-byte TAP name pushing its tail into the MAC field);
//! - missing trailing fields are empty, extra fields are ignored.
//!
//! The spill mechanics beyond the observed case are not documented by the spec; this
//! module moves to the next field when the current one is full and keeps going from
//! there, which reproduces the observed behaviour. Callers warn whenever a spill happens,
//! so a config that depends on the exact mechanics never passes silently.

/// One field after splitting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Field {
    /// The field's bytes after quote processing.
    pub bytes: Vec<u8>,
    /// Offset (in the value) of the field's first raw byte.
    pub start: usize,
    /// The raw text of the field was exactly `""`: the empty-field trap (spec §9.9).
    pub quote_trap: bool,
    /// The field was full and later bytes spilled into the next field.
    pub overflowed: bool,
}

/// The result of splitting one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Split {
    pub fields: Vec<Field>,
    /// Offset of the first byte that went nowhere (extra fields, or a spill past the last).
    pub ignored_from: Option<usize>,
}

/// Splits `value` into `sizes.len()` fields of at most `sizes[i]` bytes each.
pub(crate) fn split(value: &[u8], sizes: &[usize]) -> Split {
    let n = sizes.len();
    let mut fields: Vec<Field> = vec![Field::default(); n];
    let mut raw_end: Vec<usize> = vec![value.len(); n];
    let mut idx = 0usize;
    let mut quoted = false;
    let mut i = 0usize;
    let mut ignored_from = None;
    'outer: while i < value.len() {
        let c = value[i];
        let (byte, width) = if c == b'"' {
            if value.get(i + 1) == Some(&b'"') {
                (Some(b'"'), 2)
            } else {
                quoted = !quoted;
                (None, 1)
            }
        } else if c == b',' && !quoted {
            raw_end[idx] = i;
            idx += 1;
            if idx >= n {
                ignored_from = Some(i);
                break 'outer;
            }
            fields[idx].start = i + 1;
            i += 1;
            continue;
        } else {
            (Some(c), 1)
        };
        if let Some(b) = byte {
            if fields[idx].bytes.len() >= sizes[idx] {
                fields[idx].overflowed = true;
                raw_end[idx] = i;
                idx += 1;
                if idx >= n {
                    ignored_from = Some(i);
                    break 'outer;
                }
                fields[idx].start = i;
            }
            fields[idx].bytes.push(b);
        }
        i += width;
    }
    for (f, end) in fields.iter_mut().zip(raw_end) {
        f.quote_trap = value.get(f.start..end) == Some(b"\"\"".as_slice());
    }
    Split {
        fields,
        ignored_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(value: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
        split(value, sizes)
            .fields
            .into_iter()
            .map(|f| f.bytes)
            .collect()
    }

    #[test]
    fn quotes_protect_commas_and_are_removed() {
        assert_eq!(
            texts(br#""a,b",c"#, &[63, 63]),
            vec![b"a,b".to_vec(), b"c".to_vec()]
        );
    }

    #[test]
    fn doubled_quote_is_a_literal_quote() {
        let s = split(b"\"\",x", &[39, 254]);
        assert_eq!(s.fields[0].bytes, b"\"".to_vec());
        assert!(s.fields[0].quote_trap);
        assert_eq!(
            texts(br#""""C:\Program Files\X\x.exe""",args"#, &[255, 511])[0],
            br#""C:\Program Files\X\x.exe""#.to_vec()
        );
    }

    #[test]
    fn missing_fields_are_empty_and_extra_ones_ignored() {
        let s = split(b"a", &[5, 5, 5]);
        assert_eq!(s.fields[2].bytes, b"".to_vec());
        assert_eq!(split(b"a,b,c,d", &[5, 5, 5]).ignored_from, Some(5));
    }

    #[test]
    fn a_full_field_spills_into_the_next() {
        let s = split(b"abcdefg,x", &[4, 39, 39]);
        assert_eq!(s.fields[0].bytes, b"abcd".to_vec());
        assert!(s.fields[0].overflowed);
        assert_eq!(s.fields[1].bytes, b"efg".to_vec());
        assert_eq!(s.fields[2].bytes, b"x".to_vec());
    }
}
