//! Decoding the commit's flat lists (see the `commit` record of
//! `wit/rules.wit`): 64-bit numbers from their little-endian bytes, spans of
//! text, runs of columns, and the name, kind and value of column `i`.

use crate::Value;
use crate::bindings::invalidator::rules::types as raw;

/// Kind codes of `column-kinds`.
pub(crate) const NULL: u8 = 0;
pub(crate) const BOOLEAN: u8 = 1;
pub(crate) const INTEGER: u8 = 2;
pub(crate) const FLOAT: u8 = 3;
pub(crate) const TEXT: u8 = 4;

/// Op codes of `write-ops`.
pub(crate) const INSERT: u8 = 0;
pub(crate) const UPDATE: u8 = 1;
pub(crate) const DELETE: u8 = 2;

/// An absent row image in `write-befores` and `write-afters`.
pub(crate) const ABSENT: u64 = u64::MAX;

/// Number `i` of a list of 64-bit numbers, if the list has it.
#[inline]
pub(crate) fn number(list: &[u8], i: usize) -> Option<u64> {
    let at = i.checked_mul(8)?;
    let bytes = list.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// How many 64-bit numbers a list holds.
pub(crate) fn count(list: &[u8]) -> usize {
    list.len() / 8
}

/// Appends a 64-bit number to a list.
pub(crate) fn push(list: &mut alloc::vec::Vec<u8>, n: u64) {
    list.extend_from_slice(&n.to_le_bytes());
}

/// Packs a span or a run as the WIT says: `start << 32 | len`.
pub(crate) fn pack(start: usize, len: usize) -> u64 {
    ((start as u64) << 32) | len as u64
}

/// Unpacks a span or a run: `(start, len)`.
pub(crate) fn unpack(packed: u64) -> (usize, usize) {
    ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize)
}

/// The text a packed span points at; empty if it points outside.
pub(crate) fn text(commit: &raw::Commit, packed: u64) -> &str {
    let (start, len) = unpack(packed);
    commit.text.get(start..start + len).unwrap_or("")
}

/// The name of column `i`.
pub(crate) fn name(commit: &raw::Commit, i: usize) -> &str {
    number(&commit.column_names, i).map_or("", |p| text(commit, p))
}

/// Whether column `i` is named `name`. Compares the lengths first, from the
/// packed span, which settles most mismatches without touching the text.
pub(crate) fn name_is(commit: &raw::Commit, i: usize, name: &str) -> bool {
    match number(&commit.column_names, i) {
        Some(p) => unpack(p).1 == name.len() && text(commit, p) == name,
        None => false,
    }
}

/// The value of column `i`. A kind the SDK does not know reads as null.
pub(crate) fn value(commit: &raw::Commit, i: usize) -> Value<'_> {
    let bits = number(&commit.column_values, i).unwrap_or(0);
    match commit.column_kinds.get(i).copied().unwrap_or(NULL) {
        BOOLEAN => Value::Boolean(bits != 0),
        INTEGER => Value::Integer(bits as i64),
        FLOAT => Value::Float(f64::from_bits(bits)),
        TEXT => Value::Text(text(commit, bits)),
        _ => Value::Null,
    }
}
