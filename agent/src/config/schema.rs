//! The configuration's keys, read from its `Deserialize` implementations rather than kept by hand: every
//! key path (`postgresql.authentication.superuser.password`) and the kind of value it takes.
//!
//! A key's kind is found by starting to read a `Config` from a [`Tracer`] that walks the route to that
//! key, field by field, and notes what the key's own `Deserialize` asks for there (a struct's fields, a
//! list, a number, …); the reading then stops with an error, its work done.

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// What a key takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A section: these keys.
    Section(&'static [&'static str]),
    /// A mapping of names chosen by the user (`parameters`, `tags`).
    Map,
    /// A list.
    List,
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// Anything written as text (names, addresses, paths, durations, choices).
    Text,
}

/// How deep sections are entered (the configuration nests four deep; this bounds a type that holds
/// itself).
const MAX_DEPTH: usize = 8;

/// Every key of `T` with its kind, by dotted path; sections are listed along with the keys in them.
pub fn keys<T: DeserializeOwned>() -> BTreeMap<String, Kind> {
    let mut found = BTreeMap::new();
    let mut routes: VecDeque<Vec<&'static str>> = VecDeque::from([vec![]]);
    while let Some(route) = routes.pop_front() {
        let mut kind = None;
        // The reading always ends in an error: the tracer stops it once the key is seen.
        let _ = T::deserialize(Tracer { route: &route, kind: &mut kind });
        let Some(kind) = kind else { continue };
        if let (Kind::Section(fields), true) = (&kind, route.len() < MAX_DEPTH) {
            routes.extend(fields.iter().map(|f| route.iter().copied().chain([*f]).collect()));
        }
        if !route.is_empty() {
            found.insert(route.join("."), kind);
        }
    }
    found
}

/// Follows `route` into the value being read and notes, in `kind`, what is asked for at its end.
struct Tracer<'a> {
    route: &'a [&'static str],
    kind: &'a mut Option<Kind>,
}

/// The error that ends every traced reading.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("traced")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl Tracer<'_> {
    /// Notes `kind` when this is the end of the route (a value in the middle of it cannot be entered).
    fn leaf<T>(self, kind: Kind) -> Result<T, Stop> {
        if self.route.is_empty() {
            *self.kind = Some(kind);
        }
        Err(Stop)
    }
}

macro_rules! leaves {
    ($($method:ident => $kind:ident),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            self.leaf(Kind::$kind)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = Stop;

    leaves! {
        deserialize_any => Text, deserialize_bool => Bool,
        deserialize_i8 => Number, deserialize_i16 => Number, deserialize_i32 => Number,
        deserialize_i64 => Number, deserialize_i128 => Number, deserialize_u8 => Number,
        deserialize_u16 => Number, deserialize_u32 => Number, deserialize_u64 => Number,
        deserialize_u128 => Number, deserialize_f32 => Number, deserialize_f64 => Number,
        deserialize_char => Text, deserialize_str => Text, deserialize_string => Text,
        deserialize_bytes => Text, deserialize_byte_buf => Text, deserialize_unit => Text,
        deserialize_seq => List, deserialize_map => Map, deserialize_identifier => Text,
        deserialize_ignored_any => Text,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> Result<V::Value, Stop> {
        self.leaf(Kind::Text)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Stop> {
        self.leaf(Kind::List)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, Stop> {
        self.leaf(Kind::List)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.leaf(Kind::Text)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.route.split_first() {
            None => self.leaf(Kind::Section(fields)),
            Some((field, rest)) => visitor.visit_map(OneField { field: Some(field), rest, kind: self.kind }),
        }
    }
}

/// A mapping holding one field, whose value is traced further along the route.
struct OneField<'a> {
    field: Option<&'static str>,
    rest: &'a [&'static str],
    kind: &'a mut Option<Kind>,
}

impl<'de> MapAccess<'de> for OneField<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
        match self.field.take() {
            Some(field) => seed.deserialize(de::value::BorrowedStrDeserializer::new(field)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        seed.deserialize(Tracer { route: self.rest, kind: self.kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
        list: Vec<String>,
        map: BTreeMap<String, String>,
        #[serde(rename = "type")]
        kind: u32,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Inner {
        flag: bool,
        #[serde(default)]
        again: Option<Box<Inner>>,
    }

    #[test]
    fn every_key_with_its_kind() {
        let keys = keys::<Outer>();
        let some: Vec<(&str, &Kind)> =
            ["name", "inner", "inner.flag", "list", "map", "type"].iter().map(|k| (*k, &keys[*k])).collect();
        let inner = Kind::Section(&["flag", "again"]);
        assert_eq!(
            some,
            [
                ("name", &Kind::Text),
                ("inner", &inner),
                ("inner.flag", &Kind::Bool),
                ("list", &Kind::List),
                ("map", &Kind::Map),
                ("type", &Kind::Number)
            ]
        );
        let deepest = keys.keys().map(|k| k.split('.').count()).max();
        assert_eq!(deepest, Some(MAX_DEPTH), "a type that holds itself is entered so deep, no deeper");
    }
}
