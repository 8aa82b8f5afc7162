//! A component of another world: it exports a `describe` of the wrong type
//! and no `on-commit`.

wit_bindgen::generate!({ path: "wit", world: "other" });

struct Other;

impl Guest for Other {
    fn describe() -> String {
        "not a rule".to_owned()
    }
}

export!(Other);
