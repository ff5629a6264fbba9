//! Unknown-key detection for the TOML files users write (profiles, answer files), with
//! the key's path, its line, and the nearest known key as a suggestion.
//!
//! serde's `deny_unknown_fields` names the key but neither its table path nor a likely
//! fix, and says nothing about keys inside arrays of tables; this walk does both over
//! toml's spanned document, before the typed deserialisation runs.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One table of a schema: the keys it allows, and the schema of keys that hold tables
/// or arrays of tables.
pub struct Schema {
    /// Keys allowed at this level.
    pub keys: &'static [&'static str],
    /// Sub-schemas by key (a table, or an array of tables).
    pub children: &'static [(&'static str, &'static Schema)],
}

/// An unknown key: its dotted path (`image[1].sise_mb`), line and a suggestion.
#[derive(Debug)]
pub struct UnknownKey {
    /// Path of the key, e.g. `image[1].sise_mb`.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// The nearest allowed key, if one is close.
    pub suggestion: Option<&'static str>,
    /// Every key allowed where it stands.
    pub allowed: &'static [&'static str],
}

impl std::fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: unknown key `{}`", self.line, self.path)?;
        match self.suggestion {
            Some(s) => write!(f, "; did you mean `{s}`?"),
            None => write!(f, "; known keys here: {}", self.allowed.join(", ")),
        }
    }
}

/// The 1-based line of byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(at.min(text.len()))
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The first key of `table` (recursively) that `schema` does not allow.
pub fn find_unknown(
    text: &str,
    table: &DeTable<'_>,
    schema: &'static Schema,
) -> Option<UnknownKey> {
    walk(text, table, schema, "")
}

fn walk(
    text: &str,
    table: &DeTable<'_>,
    schema: &'static Schema,
    prefix: &str,
) -> Option<UnknownKey> {
    for (key, value) in table {
        let name: &str = key.get_ref();
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        if !schema.keys.contains(&name) {
            return Some(unknown(text, key.span(), path, name, schema.keys));
        }
        let Some((_, child)) = schema.children.iter().find(|(k, _)| *k == name) else {
            continue;
        };
        match value.get_ref() {
            DeValue::Table(t) => {
                if let Some(u) = walk(text, t, child, &path) {
                    return Some(u);
                }
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref()
                        && let Some(u) = walk(text, t, child, &format!("{path}[{i}]"))
                    {
                        return Some(u);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

fn unknown(
    text: &str,
    span: Range<usize>,
    path: String,
    name: &str,
    allowed: &'static [&'static str],
) -> UnknownKey {
    UnknownKey {
        path,
        line: line_of(text, span.start),
        suggestion: nearest(name, allowed),
        allowed,
    }
}

/// The allowed word nearest to `word` (case-insensitive edit distance at most a third
/// of its length, and at least 1 allowed), or `None`.
pub fn nearest(word: &str, allowed: &[&'static str]) -> Option<&'static str> {
    let w = word.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (distance(&w, &a.to_ascii_lowercase()), *a))
        .filter(|(d, a)| *d <= (a.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance, with a transposition counted as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        assert_eq!(nearest("RAMBM", &["RAMMB", "ROOTMB"]), Some("RAMMB"));
        assert_eq!(nearest("sise_mb", &["size_mb", "fs"]), Some("size_mb"));
        assert_eq!(nearest("zzz", &["size_mb", "fs"]), None);
    }

    #[test]
    fn finds_unknown_keys_in_arrays_of_tables() {
        static IMG: Schema = Schema {
            keys: &["fs", "size_mb"],
            children: &[],
        };
        static TOP: Schema = Schema {
            keys: &["name", "image"],
            children: &[("image", &IMG)],
        };
        let text = "name = \"x\"\n[[image]]\nfs = \"ext3\"\n[[image]]\nsise_mb = 3\n";
        let t = DeTable::parse(text).expect("valid toml");
        let u = find_unknown(text, t.get_ref(), &TOP).expect("an unknown key");
        assert_eq!(u.path, "image[1].sise_mb");
        assert_eq!(u.line, 5);
        assert_eq!(u.suggestion, Some("size_mb"));
    }
}
