//! The names a configuration file may use.

use serde::Deserialize;

use super::Settings;

/// The settings' names, as `Settings`' derived `Deserialize` declares them: a deserializer that
/// only records the field list it is asked for, so the list cannot drift from the struct.
pub(super) fn field_names() -> &'static [&'static str] {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl std::fmt::Display for Fields {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fields {:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Fields(&[])
        }
    }
    struct FieldNames;
    impl<'de> Deserializer<'de> for FieldNames {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match Settings::deserialize(FieldNames) {
        Err(Fields(names)) => names,
        Ok(_) => &[],
    }
}
