//! Reading a configuration tree so that one run reports every error: after each error the key at fault
//! is taken out of the tree and the reading repeated, until the rest reads or nothing more can be taken
//! out.

use super::ConfigError;
use serde::de::DeserializeOwned;
use serde_norway::Value;

/// At most this many errors are reported (and readings made).
const MAX_ERRORS: usize = 100;

/// What [`read`] found.
pub(crate) struct Reading<T> {
    /// The value read from what was left of the tree: `None` when even that could not be read.
    pub value: Option<T>,
    /// Every error, in the order found.
    pub errors: Vec<ConfigError>,
    /// Whether a whole section was taken out for a key missing in it: what was read then lacks more than
    /// the keys at fault, so checks of the whole would report errors that are not there.
    pub lost_sections: bool,
}

/// Reads `tree` as a `T`, taking each key at fault out and reading again; `to_error` turns a
/// deserialization error into a [`ConfigError`] naming its key.
pub(crate) fn read<T: DeserializeOwned>(
    mut tree: Value,
    to_error: impl Fn(serde_path_to_error::Error<serde_norway::Error>) -> ConfigError,
) -> Reading<T> {
    let mut reading = Reading { value: None, errors: Vec::new(), lost_sections: false };
    while reading.errors.len() < MAX_ERRORS {
        let err = match serde_path_to_error::deserialize(tree.clone()) {
            Ok(value) => {
                reading.value = Some(value);
                break;
            }
            Err(e) => to_error(e),
        };
        let key = err.key().unwrap_or_default().to_string();
        // A section taken out for a key missing in it comes back as "missing": already reported.
        let follows_earlier = reading.errors.iter().any(|e| e.key().is_some_and(|k| is_under(k, &key)));
        if !follows_earlier {
            reading.errors.push(err);
        }
        if remove(&mut tree, &key) {
            continue;
        }
        // The key is not in the tree (it is missing): take out the section that lacks it.
        match parent(&key) {
            Some(section) if remove(&mut tree, section) => reading.lost_sections = true,
            _ => break,
        }
    }
    reading
}

/// Whether `key` is `section` or a key inside it.
pub(crate) fn is_under(key: &str, section: &str) -> bool {
    key.strip_prefix(section).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The section holding `key`: `a.b` for `a.b.c` and `a.b[2]`; `None` for a top-level key.
fn parent(key: &str) -> Option<&str> {
    let cut = key.rfind(['.', '['])?;
    Some(&key[..cut])
}

/// Takes the node at `key` (`a.b[1].c`) out of `tree`; false when there is no such node (or `key` names
/// the whole tree).
fn remove(tree: &mut Value, key: &str) -> bool {
    let Some(section) = parent(key) else {
        return match tree {
            Value::Mapping(map) => map.remove(key).is_some(),
            _ => false,
        };
    };
    let Some(node) = find(tree, section) else {
        return false;
    };
    match (&key[section.len()..], node) {
        (last, Value::Sequence(items)) if last.starts_with('[') => {
            match last.trim_start_matches('[').trim_end_matches(']').parse::<usize>() {
                Ok(i) if i < items.len() => {
                    items.remove(i);
                    true
                }
                _ => false,
            }
        }
        (last, Value::Mapping(map)) => map.remove(last.trim_start_matches('.')).is_some(),
        _ => false,
    }
}

/// The node at `key` in `tree`.
fn find<'a>(tree: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let mut node = tree;
    for part in key.split('.') {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, rest)| (n, rest));
        node = match node {
            Value::Mapping(map) => map.get_mut(name)?,
            _ => return None,
        };
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let i: usize = index.trim_end_matches(']').parse().ok()?;
            node = match node {
                Value::Sequence(items) => items.get_mut(i)?,
                _ => return None,
            };
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Value {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn removes_keys_and_list_items() {
        let mut t = tree("a: {b: {c: 1, d: 2}, l: [x, {y: 1}, z]}");
        assert!(remove(&mut t, "a.b.c"));
        assert!(remove(&mut t, "a.l[1]"));
        assert!(!remove(&mut t, "a.l[7]"));
        assert!(!remove(&mut t, "a.b.nothing"));
        assert!(!remove(&mut t, "a.b.d.e"));
        assert_eq!(t, tree("a: {b: {d: 2}, l: [x, z]}"));
        assert!(remove(&mut t, "a"));
        assert_eq!(t, tree("{}"));
    }

    #[test]
    fn sections_and_keys_under_them() {
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a.b.c"), Some("a.b"));
        assert_eq!(parent("a"), None);
        assert!(is_under("a.b[1]", "a.b") && is_under("a.b.c", "a.b") && is_under("a.b", "a.b"));
        assert!(!is_under("a.bc", "a.b"));
    }
}
