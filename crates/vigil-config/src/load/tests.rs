//! End-to-end tests of loading: text in, a resolved config or a `file:line:col` error out.

use super::*;
use crate::error::Location;
use std::path::Path;

fn load(text: &str) -> Result<Loaded, ConfigError> {
    load_str(text, Path::new("conf/prometheus.yml"))
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = load("global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_intervl: 5s\n")
        .unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("conf/prometheus.yml:5:5: scrape_configs[0]: unknown field `scrape_intervl`"),
        "{s}"
    );
    assert!(s.contains("did you mean `scrape_interval`"), "{s}");
    assert_eq!(e.location(), Some(Location { line: 5, column: 5 }));
}

#[test]
fn bad_duration_names_line_and_key() {
    let e =
        load("scrape_configs:\n  - job_name: a\n    metrics_path: /m\n    scrape_interval: 5x\n")
            .unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with(
            "conf/prometheus.yml:4:5: scrape_configs[0].scrape_interval: not a valid duration"
        ),
        "{s}"
    );
    let e = load("global:\n  evaluation_interval: 1h1h\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("conf/prometheus.yml:2:3: global.evaluation_interval:"),
        "{e}"
    );
}

#[test]
fn validation_errors_name_line_and_key() {
    let e = load("scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 5s\n    scrape_timeout: 6s\n")
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "conf/prometheus.yml:5:5: scrape_configs[1].scrape_timeout: scrape timeout"
        ),
        "{e}"
    );
}

#[test]
fn defaults_and_inheritance() {
    let l = load("scrape_configs:\n  - job_name: a\n").unwrap();
    let g = &l.config.global;
    assert_eq!(
        (
            g.scrape_interval.0,
            g.scrape_timeout.0,
            g.evaluation_interval.0
        ),
        (60_000, 10_000, 60_000)
    );
    let a = &l.config.scrape_configs[0];
    assert_eq!((a.scrape_interval.0, a.scrape_timeout.0), (60_000, 10_000));
    assert_eq!(
        (a.metrics_path.as_str(), a.scheme.as_str()),
        ("/metrics", "http")
    );
    assert!(a.honor_timestamps && !a.honor_labels && a.enable_compression && a.follow_redirects);

    let l = load(
        "global:\n  scrape_interval: 5s\n  sample_limit: 100\n  body_size_limit: 1MB\n\
         scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 1m\n    sample_limit: 7\n",
    )
    .unwrap();
    // Global interval under 10s: the timeout follows it.
    assert_eq!(l.config.global.scrape_timeout.0, 5_000);
    let a = &l.config.scrape_configs[0];
    assert_eq!(
        (
            a.scrape_interval.0,
            a.scrape_timeout.0,
            a.sample_limit,
            a.body_size_limit
        ),
        (5_000, 5_000, 100, 1 << 20)
    );
    let b = &l.config.scrape_configs[1];
    assert_eq!(
        (b.scrape_interval.0, b.scrape_timeout.0, b.sample_limit),
        (60_000, 5_000, 7)
    );

    // A job interval below the global timeout caps the inherited timeout.
    let l = load("global:\n  scrape_timeout: 15s\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n").unwrap();
    assert_eq!(l.config.scrape_configs[0].scrape_timeout.0, 5_000);

    let l = load(
        "remote_write:\n  - url: http://x/api/v1/write\nremote_read:\n  - url: http://x/read\n",
    )
    .unwrap();
    let rw = &l.config.remote_write[0];
    assert_eq!(rw.remote_timeout.0, 30_000);
    assert_eq!(rw.queue_config, QueueConfig::default());
    assert_eq!(rw.queue_config.capacity, 10_000);
    assert_eq!(l.config.remote_read[0].remote_timeout.0, 60_000);
    let l = load(
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['am:9093']\n",
    )
    .unwrap();
    let am = &l.config.alerting.alertmanagers[0];
    assert_eq!(
        (
            am.timeout.0,
            am.api_version.as_str(),
            am.path_prefix.as_str()
        ),
        (10_000, "v2", "/")
    );
}

#[test]
fn unsupported_sd_gives_one_warning() {
    let l = load(
        "scrape_configs:\n  - job_name: k\n    ec2_sd_configs:\n      - region: a\n      - region: b\n    static_configs:\n      - targets: ['a:1']\n",
    )
    .unwrap();
    assert_eq!(
        l.warnings,
        vec!["job \"k\": ec2_sd_configs is not supported by vigil and is ignored".to_string()]
    );
    assert_eq!(
        l.config.scrape_configs[0].static_configs[0].targets,
        vec!["a:1"]
    );
}

#[test]
fn default_config_loads() {
    let l = load_str(crate::DEFAULT_CONFIG, Path::new("prometheus.yml")).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.config.global.scrape_interval.0, 15_000);
    assert_eq!(l.config.global.evaluation_interval.0, 15_000);
    let job = l.config.job("prometheus").unwrap();
    assert_eq!(job.static_configs[0].targets, vec!["localhost:9090"]);
}

#[test]
fn secrets_are_redacted_and_paths_resolved() {
    let l = load(
        "rule_files: ['rules/*.yml', '/abs/x.yml']\nscrape_configs:\n  - job_name: a\n    bearer_token: hunter2\n    tls_config:\n      ca_file: ca.pem\n    file_sd_configs:\n      - files: [sd/*.json]\n",
    )
    .unwrap();
    assert_eq!(l.config.rule_files, vec!["conf/rules/*.yml", "/abs/x.yml"]);
    let a = &l.config.scrape_configs[0];
    assert_eq!(a.tls_config.ca_file.as_deref(), Some("conf/ca.pem"));
    assert_eq!(a.file_sd_configs[0].files, vec!["conf/sd/*.json"]);
    let auth = a.authorization.as_ref().unwrap();
    assert_eq!(
        (
            auth.auth_type.as_str(),
            auth.credentials.as_ref().unwrap().expose()
        ),
        ("Bearer", "hunter2")
    );
    let yaml = l.config.to_yaml();
    assert!(
        !yaml.contains("hunter2") && yaml.contains("<secret>"),
        "{yaml}"
    );
    // The serialized form loads again.
    load_str(&yaml, Path::new("again.yml")).unwrap();
}

#[test]
fn duplicate_map_keys_are_refused() {
    let e = load("global:\n  external_labels:\n    a: x\n    a: y\n").unwrap_err();
    assert!(e.to_string().contains("duplicate key \"a\""), "{e}");
}

#[test]
fn empty_file_is_the_default_config() {
    let l = load("# nothing\n").unwrap();
    assert_eq!(l.config.global.scrape_interval.0, 60_000);
    assert!(l.config.scrape_configs.is_empty());
}

#[test]
fn file_sd_json_and_yaml() {
    let dir = std::env::temp_dir().join(format!("vigil-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let j = dir.join("t.json");
    std::fs::write(
        &j,
        r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}]"#,
    )
    .unwrap();
    let g = read_file_sd(&j).unwrap();
    assert_eq!(g[0].targets, vec!["a:1", "b:2"]);
    assert_eq!(g[0].labels.get("env").map(String::as_str), Some("prod"));
    let y = dir.join("t.yml");
    std::fs::write(&y, "- targets: ['c:3']\n").unwrap();
    assert_eq!(read_file_sd(&y).unwrap()[0].targets, vec!["c:3"]);
    std::fs::write(&y, "- targets: ['c:3']\n  lables: {}\n").unwrap();
    assert!(
        read_file_sd(&y)
            .unwrap_err()
            .to_string()
            .contains("t.yml:2:")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn included_files_follow_the_main_files_rules() {
    let dir = std::env::temp_dir().join(format!("vigil-config-include-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("jobs")).unwrap();
    let main = dir.join("prometheus.yml");
    let job = dir.join("jobs/a.yml");
    std::fs::write(
        &main,
        "global:\n  scrape_interval: 5s\nscrape_config_files: [jobs/*.yml]\nscrape_configs:\n  - job_name: a\n",
    )
    .unwrap();

    // Included jobs inherit from global and resolve paths against their own file.
    std::fs::write(
        &job,
        "scrape_configs:\n  - job_name: b\n    tls_config:\n      ca_file: ca.pem\n",
    )
    .unwrap();
    let l = load_file(&main).unwrap();
    let b = &l.config.scrape_configs[1];
    assert_eq!((b.job_name.as_str(), b.scrape_interval.0), ("b", 5_000));
    let ca = dir.join("jobs/ca.pem");
    assert_eq!(b.tls_config.ca_file.as_deref(), ca.to_str());

    // A job name the main file already uses; the error names the included file.
    std::fs::write(&job, "scrape_configs:\n  - job_name: a\n").unwrap();
    let e = load_file(&main).unwrap_err();
    assert_eq!(e.file(), job.as_path());
    assert!(
        e.to_string().ends_with(&format!(
            ": scrape_configs[0].job_name: found multiple scrape configs with job name \"a\" (also defined in {} or a file it includes)",
            main.display()
        )),
        "{e}"
    );

    // The same checks as in the main file.
    std::fs::write(
        &job,
        "scrape_configs:\n  - job_name: c\n    scrape_timeout: 6s\n",
    )
    .unwrap();
    let e = load_file(&main).unwrap_err().to_string();
    assert!(
        e.contains("scrape_configs[0].scrape_timeout: scrape timeout (6s) greater than scrape interval (5s)"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duplicate_job_in_the_main_file() {
    let e = load("scrape_configs:\n  - job_name: a\n  - job_name: a\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "conf/prometheus.yml:3:5: scrape_configs[1].job_name: found multiple scrape configs with job name \"a\""
    );
}
