//! On/off value kinds.

use toml::Value as Toml;

use super::super::parse;
use super::Kind;

/// `true`/`false` (text also takes yes/no/on/off/1/0, as the old image's env files do).
#[derive(Debug)]
pub struct Bool;
impl Kind for Bool {
    type Out = bool;
    fn parse(text: &str) -> Result<bool, String> {
        parse::bool(text)
    }
    fn from_toml(value: Toml) -> Result<bool, String> {
        match value {
            Toml::Boolean(b) => Ok(b),
            other => Err(format!(
                "expected true or false (a TOML boolean, without quotes), found {} {other}",
                other.type_str()
            )),
        }
    }
}

/// `on`/`off` (also true/false, yes/no, 1/0); in TOML also a boolean.
#[derive(Debug)]
pub struct OnOff;
impl Kind for OnOff {
    type Out = bool;
    fn parse(text: &str) -> Result<bool, String> {
        parse::bool(text).map_err(|_| "expected on or off".to_string())
    }
    fn from_toml(value: Toml) -> Result<bool, String> {
        match value {
            Toml::Boolean(b) => Ok(b),
            Toml::String(s) => Self::parse(&s),
            other => Err(format!(
                "expected \"on\" or \"off\", found {} {other}",
                other.type_str()
            )),
        }
    }
}
