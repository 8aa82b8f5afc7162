//! `invalidator serve`'s configuration, as `--print-config` shows it: the
//! layers (defaults, the TOML file, `INVALIDATOR_*` variables, flags) and
//! which wins, durations with their units, the Postgres section, and the
//! refusals that name the offending key.

use invalidator_tests::fresh_dir;

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");

#[test]
fn print_config_merges_the_file_the_environment_and_the_flags() {
    let dir = fresh_dir("config-layers");
    let file = dir.join("serve.toml");
    std::fs::write(
        &file,
        "redis = \"redis://file:1\"\n[http]\nlisten = \"127.0.0.1:1\"\ntoken = \"t\"\n[stream]\nname = \"commits\"\n",
    )
    .unwrap();
    let out = print_config(
        &[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:3",
        ],
        &[
            ("INVALIDATOR_HTTP__LISTEN", "127.0.0.1:2"),
            ("INVALIDATOR_STREAM__GROUP", "env-group"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let config: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(config["redis"]["url"].as_str(), Some("redis://file:1"));
    assert_eq!(
        config["http"]["listen"].as_str(),
        Some("127.0.0.1:3"),
        "flags win"
    );
    assert_eq!(config["http"]["token"].as_str(), Some("(hidden)"));
    assert_eq!(config["stream"]["group"].as_str(), Some("env-group"));
    assert_eq!(config["stream"]["claim_idle"].as_str(), Some("30s"));
}

#[test]
fn redis_settings_come_from_every_layer_and_a_url_alone_still_works() {
    let dir = fresh_dir("config-redis");
    let file = dir.join("serve.toml");
    // The form from before `[redis]` was a section.
    std::fs::write(&file, "redis = \"rediss://:secret@file:1\"\n").unwrap();
    let out = print_config(
        &[
            "--config",
            file.to_str().unwrap(),
            "--redis-tls-ca",
            "/etc/ca.pem",
            "--redis-replay-window",
            "2m",
        ],
        &[
            ("INVALIDATOR_REDIS__REPLICAS", "2"),
            ("INVALIDATOR_REDIS__TLS_CERT", "/etc/client.pem"),
            ("INVALIDATOR_REDIS__TLS_KEY", "/etc/client.key"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("secret"), "{text}");
    let config: toml::Value = toml::from_str(&text).unwrap();
    let redis = &config["redis"];
    assert_eq!(redis["url"].as_str(), Some("rediss://:***@file:1"));
    assert_eq!(redis["replicas"].as_integer(), Some(2));
    assert_eq!(redis["replay_window"].as_str(), Some("2m"));
    assert_eq!(redis["replica_timeout"].as_str(), Some("1s"));
    assert_eq!(redis["tls_ca"].as_str(), Some("/etc/ca.pem"));
    assert_eq!(redis["tls_cert"].as_str(), Some("/etc/client.pem"));
    assert_eq!(redis["tls_key"].as_str(), Some("/etc/client.key"));

    // The variable alone is the URL, as it always was.
    let out = print_config(&[], &[("INVALIDATOR_REDIS", "redis+sentinel://s:1/m")]);
    let config: toml::Value = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(
        config["redis"]["url"].as_str(),
        Some("redis+sentinel://s:1/m")
    );
    assert_eq!(config["redis"]["replicas"].as_integer(), Some(0));

    // A misspelt key in the section is named.
    std::fs::write(&file, "[redis]\nreplica = 1\n").unwrap();
    let out = print_config(&["--config", file.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replica"), "{stderr}");
}

#[test]
fn the_feed_is_set_by_flags_and_the_environment_with_documented_defaults() {
    let out = print_config(&[], &[]);
    let config: toml::Value = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(config["feed"]["stream"].as_str(), Some(""));
    assert_eq!(config["feed"]["maxlen"].as_integer(), Some(10_000));
    assert_eq!(config["feed"]["max_keys"].as_integer(), Some(1_000));
    let out = print_config(
        &[
            "--redis",
            "redis://r:1",
            "--feed",
            "invalidations",
            "--feed-maxlen",
            "500",
        ],
        &[("INVALIDATOR_FEED__MAX_KEYS", "20")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(config["feed"]["stream"].as_str(), Some("invalidations"));
    assert_eq!(config["feed"]["maxlen"].as_integer(), Some(500));
    assert_eq!(config["feed"]["max_keys"].as_integer(), Some(20));
    let out = print_config(
        &[
            "--redis",
            "redis://r:1",
            "--feed",
            "f",
            "--feed-maxlen",
            "0",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`feed.maxlen` (flag `--feed-maxlen`) is 0"),
        "{stderr}"
    );
}

/// Runs `serve --print-config` with `args` and `envs`; its output.
fn print_config(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["serve", "--print-config"])
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn durations_are_read_with_their_units_from_every_layer() {
    let dir = fresh_dir("config-durations");
    let file = dir.join("serve.toml");
    std::fs::write(
        &file,
        "[pipeline]\nlinger = \"5ms\"\nprune_every = \"never\"\n\
         [pipeline.rollback]\nwindow = \"2m\"\n[sandbox]\ntime_limit = \"250ms\"\n",
    )
    .unwrap();
    let out = print_config(
        &["--config", file.to_str().unwrap(), "--time-limit", "300ms"],
        &[("INVALIDATOR_STREAM__CLAIM_IDLE", "1m 30s")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: toml::Value = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(config["pipeline"]["linger"].as_str(), Some("5ms"));
    assert_eq!(config["pipeline"]["prune_every"].as_str(), Some("never"));
    assert_eq!(
        config["pipeline"]["rollback"]["window"].as_str(),
        Some("2m")
    );
    assert_eq!(config["stream"]["claim_idle"].as_str(), Some("1m 30s"));
    assert_eq!(
        config["sandbox"]["time_limit"].as_str(),
        Some("300ms"),
        "the flag wins over the file"
    );
}

#[test]
fn a_bad_duration_is_refused_naming_its_key() {
    let out = print_config(&[], &[("INVALIDATOR_PIPELINE__LINGER", "5")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let lower = err.to_lowercase();
    assert!(
        lower.contains("pipeline.linger") && lower.contains("`5` has no unit"),
        "{err}"
    );

    let dir = fresh_dir("config-bad-duration");
    let file = dir.join("serve.toml");
    std::fs::write(&file, "[sandbox]\ntime_limit = \"fast\"\n").unwrap();
    let out = print_config(&["--config", file.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("sandbox.time_limit") && err.contains("fast"),
        "{err}"
    );

    let out = print_config(&["--time-limit", "100"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--time-limit") && err.contains("100"), "{err}");
}

#[test]
fn the_postgres_section_is_read_from_flags_and_the_environment_and_its_password_hidden() {
    let out = print_config(
        &[
            "--postgres",
            "postgres://app:s3cret@db:5432/shop",
            "--postgres-slot",
            "shop_cache",
        ],
        &[
            ("INVALIDATOR_POSTGRES__PUBLICATION", "shop_pub"),
            ("INVALIDATOR_POSTGRES__CONFIRM_EVERY", "250ms"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "url = \"postgres://app:***@db:5432/shop\"",
        "slot = \"shop_cache\"",
        "publication = \"shop_pub\"",
        "confirm_every = \"250ms\"",
    ] {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
    assert!(!text.contains("s3cret"), "{text}");

    let out = print_config(
        &[
            "--postgres",
            "postgres://h/db",
            "--postgres-slot",
            "Bad-Slot",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("Bad-Slot"), "{err}");
}
