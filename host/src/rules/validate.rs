//! What a rule says of itself, and what it returns, held to the rules:
//! a name and version fit to show and to label metrics with, table names
//! without control characters, and targets within the call budgets
//! (count, length, bytes, and what matching its patterns may cost).

use super::{RuleInfo, SandboxConfig};
use crate::escape::escape;
use crate::targets::Target;

/// The longest rule name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// The longest rule version, in characters.
pub const MAX_VERSION_LEN: usize = 64;

/// Checks what `describe()` said, in place: a name fit to show and to
/// label metrics with, a version fit to show, table names without
/// control characters, and fallback targets within the call budgets.
///
/// Names and versions are on every log line, metric and API answer about
/// the rule, so they are bounded: a 4,000,000-character name once turned
/// one commit into 40 MB of logs, and a 7 MB version one `/metrics`
/// scrape into 72 MB. A name is `[a-z0-9][a-z0-9_-]{0,63}`, which also
/// rules out look-alikes (`dealership` followed by an invisible Hangul
/// filler showed beside `dealership`); a version is printable ASCII.
pub(super) fn check_info(info: &mut RuleInfo, config: &SandboxConfig) -> Result<(), String> {
    let name_ok = |(i, c): (usize, char)| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || (i > 0 && matches!(c, '_' | '-'))
    };
    if info.name.is_empty()
        || info.name.len() > MAX_NAME_LEN
        || !info.name.chars().enumerate().all(name_ok)
    {
        return Err(format!(
            "gave the name `{}`: a rule name must be 1 to {MAX_NAME_LEN} characters of `a-z`, \
             `0-9`, `_` and `-`, starting with a letter or a digit",
            shown(&info.name)
        ));
    }
    let version_ok = |c: char| c.is_ascii_graphic() || c == ' ';
    if info.version.trim().is_empty()
        || info.version.len() > MAX_VERSION_LEN
        || !info.version.chars().all(version_ok)
    {
        return Err(format!(
            "gave rule `{}` the version `{}`: a version must be 1 to {MAX_VERSION_LEN} printable \
             ASCII characters, not all spaces",
            info.name,
            shown(&info.version)
        ));
    }
    if let Some(table) = info
        .tables
        .iter()
        .find(|t| *t != &*escape(t) || t.is_empty())
    {
        return Err(format!(
            "gave rule `{}` the table name `{}`: table names must be non-empty, without \
             control characters",
            info.name,
            escape(table)
        ));
    }
    within_budget(&mut info.fallback, config)
        .map(|_| ())
        .map_err(|e| format!("gave rule `{}` fallback targets that {e}", info.name))
}

/// At most the first 64 characters of `text`, escaped, and how long it
/// was when that is longer: an error about an overlong name must not be
/// overlong itself.
fn shown(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_NAME_LEN {
        return escape(text).into_owned();
    }
    let head: String = text.chars().take(MAX_NAME_LEN).collect();
    format!("{}… ({count} characters)", escape(&head))
}

/// Holds one call's targets to the budgets of `config`, dropping empty
/// ones (an empty key means nothing, and an empty pattern or tag is a bug
/// that must not reach Redis). Returns how many were dropped, or why the
/// targets are over budget.
pub(super) fn within_budget(
    targets: &mut Vec<Target>,
    config: &SandboxConfig,
) -> Result<usize, String> {
    let before = targets.len();
    targets.retain(|t| !t.text().is_empty());
    if targets.len() > config.max_targets {
        return Err(format!(
            "returned {} targets, over the budget of {} per call (sandbox.max_targets)",
            targets.len(),
            config.max_targets
        ));
    }
    let mut total = 0usize;
    for t in targets.iter() {
        let text = t.text();
        if text.len() > config.max_target_len {
            let mut start = 40.min(text.len());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            return Err(format!(
                "returned a target of {} bytes (`{}…`), over the budget of {} bytes per target \
                 (sandbox.max_target_len)",
                text.len(),
                escape(&text[..start]),
                config.max_target_len
            ));
        }
        total += text.len();
    }
    if total > config.max_target_bytes {
        return Err(format!(
            "returned {total} bytes of targets, over the budget of {} bytes per call \
             (sandbox.max_target_bytes)",
            config.max_target_bytes
        ));
    }
    let cost = pattern_cost(targets);
    if cost > config.max_pattern_cost {
        return Err(format!(
            "returned patterns costing {cost} (each distinct pattern's length times its runs \
             of `*`, summed), over the budget of {} per call (sandbox.max_pattern_cost)",
            config.max_pattern_cost
        ));
    }
    Ok(before - targets.len())
}

/// What matching `targets`' patterns may cost, per key swept: each
/// distinct pattern's length times its runs of `*` (consecutive stars
/// match as one, in Redis as here), at least its length. Matching is
/// bounded by the pattern's length times the key's, and a pattern's runs
/// of `*` are what make it reach that bound.
pub(crate) fn pattern_cost(targets: &[Target]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    targets
        .iter()
        .filter_map(|t| match t {
            Target::Pattern(p) if seen.insert(p.as_str()) => Some(p),
            _ => None,
        })
        .map(|p| {
            let runs = p
                .as_bytes()
                .split(|&b| b != b'*')
                .filter(|run| !run.is_empty())
                .count()
                .max(1);
            (p.len() as u64).saturating_mul(runs as u64)
        })
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, version: &str, tables: &[&str]) -> RuleInfo {
        RuleInfo {
            name: name.to_owned(),
            version: version.to_owned(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            fallback: vec![Target::Pattern("p:*".into()), Target::Key(String::new())],
        }
    }

    #[test]
    fn describe_answers_are_checked_and_made_safe_to_show() {
        let config = SandboxConfig::default();
        let mut ok = info("turnus-2_b", "6.6.6 rule=other (build 7)", &["kinder"]);
        check_info(&mut ok, &config).unwrap();
        assert_eq!(ok.version, "6.6.6 rule=other (build 7)");
        assert_eq!(
            ok.fallback,
            [Target::Pattern("p:*".into())],
            "empty dropped"
        );
        let longest = "a".repeat(MAX_NAME_LEN);
        check_info(
            &mut info(&longest, &"1".repeat(MAX_VERSION_LEN), &[]),
            &config,
        )
        .unwrap();

        let huge = "x".repeat(4_000_000);
        for bad in [
            "",
            "two words",
            "evil\x1b[2J",
            "a/b",
            "Dealership",
            "dealership\u{3164}",
            "deal\u{ad}ership",
            "-lead",
            "_lead",
            "rule.v2",
            "rüle",
            &format!("{longest}a"),
            &huge,
        ] {
            let err = check_info(&mut info(bad, "1", &[]), &config).unwrap_err();
            assert!(
                err.contains("a rule name must be 1 to 64"),
                "{bad:?}: {err}"
            );
            assert!(!err.contains('\x1b'), "{err:?}");
            assert!(
                err.len() < 400,
                "the error stays short: {} bytes",
                err.len()
            );
        }
        for bad in [
            " ",
            "",
            "6.6.6\n\x1b[31mFAKE",
            "1.0\u{3164}",
            "1.0\t",
            "é",
            &"1".repeat(MAX_VERSION_LEN + 1),
            &huge,
        ] {
            let err = check_info(&mut info("r", bad, &[]), &config).unwrap_err();
            assert!(
                err.contains("a version must be 1 to 64 printable ASCII"),
                "{bad:?}: {err}"
            );
            assert!(!err.contains(['\x1b', '\n']), "{err:?}");
            assert!(
                err.len() < 400,
                "the error stays short: {} bytes",
                err.len()
            );
        }
        let err = check_info(&mut info("r", "1", &["ok", "bad\n"]), &config).unwrap_err();
        assert!(err.contains("`bad\\n`"), "{err}");
    }

    #[test]
    fn a_fallback_over_budget_is_refused() {
        let config = SandboxConfig {
            max_target_len: 2,
            ..SandboxConfig::default()
        };
        let err = check_info(&mut info("r", "1", &[]), &config).unwrap_err();
        assert!(
            err.contains("fallback targets that returned a target of 3 bytes")
                && err.contains("sandbox.max_target_len"),
            "{err}"
        );
        // A fallback is held to the pattern budget too.
        let config = SandboxConfig {
            max_pattern_cost: 10,
            ..SandboxConfig::default()
        };
        let mut expensive = info("r", "1", &[]);
        expensive.fallback = vec![Target::Pattern("*a*b*c*".into())];
        let err = check_info(&mut expensive, &config).unwrap_err();
        assert!(err.contains("sandbox.max_pattern_cost"), "{err}");
    }

    #[test]
    fn patterns_cost_their_length_times_their_runs_of_stars_once_each() {
        let p = |s: &str| Target::Pattern(s.to_owned());
        assert_eq!(pattern_cost(&[p("shop:*")]), 6);
        assert_eq!(pattern_cost(&[p("*")]), 1);
        assert_eq!(pattern_cost(&[p("no-star")]), 7, "at least its length");
        assert_eq!(pattern_cost(&[p("*a*b*")]), 15);
        assert_eq!(
            pattern_cost(&[p("**a**")]),
            10,
            "a run of stars counts once"
        );
        assert_eq!(
            pattern_cost(&[p("*a*"), p("*a*"), Target::Key("*a*".into())]),
            6,
            "distinct patterns only; keys cost nothing"
        );
        let bomb: Vec<Target> = (0..200)
            .map(|i| p(&format!("{}{i}", "*a".repeat(999))))
            .collect();
        assert!(pattern_cost(&bomb) > SandboxConfig::default().max_pattern_cost);
        // The example rules' patterns are far inside the budget.
        let hedge = [
            "*v_available_amounts_fast*",
            "*portfolio_valuation*",
            "*real_time_pnl*",
        ];
        let hedge: Vec<Target> = hedge.iter().map(|s| p(s)).collect();
        assert!(pattern_cost(&hedge) < 200);
    }
}
