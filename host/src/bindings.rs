//! The one place the WIT contract (`wit/rules.wit`) becomes host-side Rust.
//! Other modules import these types through [`crate::commit`],
//! [`crate::targets`] and [`crate::rules`].

wasmtime::component::bindgen!({
    path: "../wit",
    world: "rule",
    additional_derives: [PartialEq, Clone],
});

pub use self::invalidator::rules::types;

/// The version of the `invalidator:rules` package this host implements. A
/// rule built against another version does not load (see
/// [`crate::rules::LoadError::WrongWorld`]).
pub const WIT_VERSION: &str = "0.2.0";

#[cfg(test)]
mod tests {
    #[test]
    fn wit_version_is_the_one_in_the_wit_file() {
        let wit = include_str!("../../wit/rules.wit");
        let package = format!("package invalidator:rules@{};", super::WIT_VERSION);
        assert!(
            wit.lines().any(|l| l == package),
            "wit/rules.wit does not declare `{package}`"
        );
    }
}
