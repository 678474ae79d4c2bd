//! Pure types and rules of calsync: ids, tenancy, accounts, appointments, connections, the clock,
//! secrets, sync planning and the field-level merge. No I/O lives here, so every rule can be
//! tested without a database or a network.

/// A closed set of values with their text form (as stored and as the API shows them): parse
/// (errors name the field), `as_str`, `Display`, serde in snake case, and `ALL`.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $field:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, ValidationError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(ValidationError::new(
                        $field,
                        format!("unknown value {other:?}: expected one of {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }
    };
}

pub mod account;
pub mod appointment;
pub mod clock;
pub mod connection;
pub mod error;
pub mod ids;
pub mod merge;
pub mod recurrence;
pub mod secret;
pub mod sync;
pub mod tenant;

pub use error::ValidationError;
pub use secret::Secret;
