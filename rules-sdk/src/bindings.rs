//! The one place the WIT contract becomes Rust types (`wit/rules.wit`).
//! Everything else in the SDK wraps these types.

// Generated code: its shape is wit-bindgen's, not ours.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../wit",
    world: "rule",
    additional_derives: [PartialEq, Eq, PartialOrd, Ord, Clone],
    pub_export_macro: true,
    export_macro_name: "__export_bindings",
    default_bindings_module: "invalidator_rules::bindings",
    runtime_path: "invalidator_rules::__wit_bindgen::rt",
});
