//! The one place the WIT contract becomes Rust types (`wit/rules.wit`).
//! Everything else in the SDK adds methods to these types.

wit_bindgen::generate!({
    path: "../wit",
    world: "rule",
    additional_derives: [PartialEq, Clone],
    pub_export_macro: true,
    export_macro_name: "__export_bindings",
    default_bindings_module: "invalidator_rules::bindings",
    runtime_path: "invalidator_rules::__wit_bindgen::rt",
});
