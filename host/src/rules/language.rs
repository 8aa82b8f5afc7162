//! [`language`]: which language a rule component was written in, read from
//! the `producers` custom sections its toolchain leaves in it (the
//! component's and its core modules'), for people: the console and
//! `/v1/rules` show it. Nothing depends on it, so a component without
//! them is just `unknown`.

use wasmparser::{KnownCustom, Parser, Payload};

/// `rust`, `python`, `javascript`, another language a producers section
/// names (lowercase), or `unknown`.
pub fn language(bytes: &[u8]) -> String {
    let mut languages: Vec<String> = Vec::new();
    let mut tools: Vec<String> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        // A component that does not parse fails to load anyway, with the
        // compiler's message; here there is nothing more to learn.
        let Ok(Payload::CustomSection(section)) = payload else {
            if payload.is_err() {
                break;
            }
            continue;
        };
        let KnownCustom::Producers(reader) = section.as_known() else {
            continue;
        };
        for field in reader.into_iter().flatten() {
            let into = match field.name {
                "language" => &mut languages,
                "processed-by" | "sdk" => &mut tools,
                _ => continue,
            };
            into.extend(
                field
                    .values
                    .into_iter()
                    .flatten()
                    .map(|v| v.name.to_lowercase()),
            );
        }
    }
    // The tool that made the component says more than the languages of
    // the interpreter it embeds (CPython is C; SpiderMonkey is C++).
    // componentize-py names no language at all: its components carry only
    // its pre-initializer (`component-init-transform`) and `wit-component`.
    if tools
        .iter()
        .any(|t| t.contains("componentize-py") || t.contains("component-init-transform"))
    {
        return "python".to_owned();
    }
    if tools.iter().any(|t| {
        t.contains("componentize-js")
            || t.contains("componentizejs")
            || t.contains("starlingmonkey")
    }) {
        return "javascript".to_owned();
    }
    if languages.iter().any(|l| l == "rust") {
        return "rust".to_owned();
    }
    languages
        .into_iter()
        .next()
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module holding one producers section with `fields`.
    fn module(fields: &[(&str, &[&str])]) -> Vec<u8> {
        fn name(out: &mut Vec<u8>, text: &str) {
            out.push(text.len() as u8);
            out.extend(text.as_bytes());
        }
        let mut content = Vec::new();
        name(&mut content, "producers");
        content.push(fields.len() as u8);
        for (field, values) in fields {
            name(&mut content, field);
            content.push(values.len() as u8);
            for value in *values {
                name(&mut content, value);
                name(&mut content, "1.0");
            }
        }
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        bytes.push(0); // a custom section
        bytes.push(content.len() as u8);
        bytes.extend(content);
        bytes
    }

    #[test]
    fn the_language_comes_from_the_producers_sections() {
        assert_eq!(language(&module(&[("language", &["Rust"])])), "rust");
        assert_eq!(
            language(&module(&[
                ("language", &["C11"]),
                ("processed-by", &["clang", "componentize-py"])
            ])),
            "python"
        );
        // What componentize-py 0.25 leaves, and what ComponentizeJS 0.23 does.
        assert_eq!(
            language(&module(&[(
                "processed-by",
                &["component-init-transform", "wit-component"]
            )])),
            "python"
        );
        assert_eq!(
            language(&module(&[
                ("language", &["C11", "JavaScript", "Rust"]),
                ("processed-by", &["ComponentizeJS", "clang", "rustc"])
            ])),
            "javascript"
        );
        assert_eq!(language(&module(&[("language", &["Go"])])), "go");
        assert_eq!(language(&module(&[])), "unknown");
        assert_eq!(language(b"not wasm"), "unknown");
    }
}
