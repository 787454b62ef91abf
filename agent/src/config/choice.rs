//! `choice_enum!`: small enums read from one of a few words, with errors such as
//! `"sometimes" is not one of none, optional, required`.

/// The message for a value that is not one of `names`.
pub(crate) fn not_one_of(value: &dyn std::fmt::Display, names: &[&str]) -> String {
    format!("{value} is not one of {}", names.join(", "))
}

/// Declares a unit-only enum read case-insensitively from its names (plus aliases), optionally from a
/// YAML boolean, and written as its first name.
macro_rules! choice_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)* ),+ $(,)?
        }
        $(bool: false => $f:ident, true => $t:ident)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// The accepted names.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name this value is written as.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text ),+ }
            }

            /// Reads a name (case-insensitive).
            pub fn parse(text: &str) -> Option<Self> {
                match text.to_ascii_lowercase().as_str() {
                    $( $text $(| $alias)* => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error;
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "one of {}", $name::NAMES.join(", "))
                    }
                    fn visit_str<E: Error>(self, v: &str) -> Result<$name, E> {
                        $name::parse(v).ok_or_else(|| {
                            E::custom($crate::config::choice::not_one_of(&format!("{v:?}"), $name::NAMES))
                        })
                    }
                    fn visit_bool<E: Error>(self, v: bool) -> Result<$name, E> {
                        $( return Ok(if v { $name::$t } else { $name::$f }); )?
                        #[allow(unreachable_code)]
                        Err(E::custom($crate::config::choice::not_one_of(&v, $name::NAMES)))
                    }
                    fn visit_i64<E: Error>(self, v: i64) -> Result<$name, E> {
                        Err(E::custom($crate::config::choice::not_one_of(&v, $name::NAMES)))
                    }
                    fn visit_u64<E: Error>(self, v: u64) -> Result<$name, E> {
                        Err(E::custom($crate::config::choice::not_one_of(&v, $name::NAMES)))
                    }
                    fn visit_f64<E: Error>(self, v: f64) -> Result<$name, E> {
                        Err(E::custom($crate::config::choice::not_one_of(&v, $name::NAMES)))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

pub(crate) use choice_enum;
