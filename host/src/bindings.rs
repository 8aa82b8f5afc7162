//! The one place the WIT contract (`wit/rules.wit`) becomes host-side Rust.
//! Other modules import these types through [`crate::commit`],
//! [`crate::targets`] and [`crate::rules`].

wasmtime::component::bindgen!({
    path: "../wit",
    world: "rule",
    additional_derives: [PartialEq, Clone],
});

pub use self::invalidator::rules::types;
