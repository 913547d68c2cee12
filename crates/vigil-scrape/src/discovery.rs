//! Target discovery: `static_configs`, `file_sd_configs` (JSON or YAML, globs, re-read when a
//! file changes and every `refresh_interval`) and `http_sd_configs` (polled every
//! `refresh_interval`). Each source yields target groups; the manager turns them into targets.
//!
//! Files are watched by polling their modification times once a second rather than with
//! inotify: it needs no extra thread or dependency, works on every filesystem (including
//! the network mounts and ConfigMap symlink swaps where inotify is unreliable), and a stat per
//! file per second costs nothing next to a scrape.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};
use vigil_config::{ScrapeConfig, TargetGroup};

/// A target group and the `__meta_*` labels of the source it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcedGroup {
    pub group: TargetGroup,
    pub meta: BTreeMap<String, String>,
}

#[derive(Default)]
struct FileEntry {
    mtime: Option<SystemTime>,
    read_at: Option<Instant>,
    groups: Vec<SourcedGroup>,
}

#[derive(Default)]
struct HttpEntry {
    fetched_at: Option<Instant>,
    groups: Vec<SourcedGroup>,
}

/// Last known target groups of every file and HTTP source.
#[derive(Default)]
pub struct DiscoveryCache {
    files: HashMap<PathBuf, FileEntry>,
    http: HashMap<String, HttpEntry>,
    pub(crate) consul: crate::consul::ConsulDiscovery,
    pub(crate) dns: crate::dns_sd::DnsCache,
    pub(crate) kubernetes: crate::kubernetes::KubernetesDiscovery,
}

impl DiscoveryCache {
    /// All target groups of a scrape config, from static config and the cache.
    pub fn groups(&self, sc: &ScrapeConfig) -> Vec<SourcedGroup> {
        let mut out: Vec<SourcedGroup> = sc
            .static_configs
            .iter()
            .map(|g| SourcedGroup {
                group: g.clone(),
                meta: BTreeMap::new(),
            })
            .collect();
        for fsd in &sc.file_sd_configs {
            for path in expand_globs(&fsd.files) {
                if let Some(e) = self.files.get(&path) {
                    out.extend(e.groups.iter().cloned());
                }
            }
        }
        for h in &sc.http_sd_configs {
            if let Some(e) = self.http.get(&h.url) {
                out.extend(e.groups.iter().cloned());
            }
        }
        out.extend(self.consul.groups(sc));
        out.extend(self.dns.groups(sc));
        out.extend(self.kubernetes.groups(sc));
        out
    }

    /// Re-reads file_sd files that changed or whose refresh interval passed; answers whether
    /// any target group changed.
    pub fn refresh_files(&mut self, configs: &[ScrapeConfig]) -> bool {
        let mut changed = false;
        let mut seen = Vec::new();
        for sc in configs {
            for fsd in &sc.file_sd_configs {
                for path in expand_globs(&fsd.files) {
                    seen.push(path.clone());
                    let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                    let e = self.files.entry(path.clone()).or_default();
                    let due = e
                        .read_at
                        .is_none_or(|t| t.elapsed() >= fsd.refresh_interval.to_std());
                    if e.mtime == mtime && !due {
                        continue;
                    }
                    e.mtime = mtime;
                    e.read_at = Some(Instant::now());
                    match vigil_config::read_file_sd(&path) {
                        Ok(groups) => {
                            let meta = BTreeMap::from([(
                                "__meta_filepath".to_string(),
                                path.display().to_string(),
                            )]);
                            let groups: Vec<SourcedGroup> = groups
                                .into_iter()
                                .map(|group| SourcedGroup {
                                    group,
                                    meta: meta.clone(),
                                })
                                .collect();
                            if groups != e.groups {
                                e.groups = groups;
                                changed = true;
                            }
                        }
                        // Prometheus keeps the last good content of a file that fails to parse.
                        Err(err) => {
                            tracing::error!(file = %path.display(), error = %err, "Error reading file_sd file; keeping its last good targets")
                        }
                    }
                }
            }
        }
        // A file that no longer matches any glob drops its targets.
        let before = self.files.len();
        self.files.retain(|p, _| seen.contains(p));
        changed || before != self.files.len()
    }

    /// The HTTP SD URLs due for a fetch, with the job whose client fetches them.
    pub fn http_due(&self, configs: &[ScrapeConfig]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for sc in configs {
            for h in &sc.http_sd_configs {
                let due = self
                    .http
                    .get(&h.url)
                    .and_then(|e| e.fetched_at)
                    .is_none_or(|t| t.elapsed() >= h.refresh_interval.to_std());
                if due {
                    out.push((sc.job_name.clone(), h.url.clone()));
                }
            }
        }
        out
    }

    /// Stores the outcome of an HTTP SD fetch; answers whether the groups changed. A failed
    /// fetch keeps the previous groups, as Prometheus does.
    pub fn store_http(&mut self, url: &str, result: Result<Vec<TargetGroup>, String>) -> bool {
        let e = self.http.entry(url.to_string()).or_default();
        e.fetched_at = Some(Instant::now());
        match result {
            Ok(groups) => {
                let meta = BTreeMap::from([("__meta_url".to_string(), url.to_string())]);
                let groups: Vec<SourcedGroup> = groups
                    .into_iter()
                    .map(|group| SourcedGroup {
                        group,
                        meta: meta.clone(),
                    })
                    .collect();
                let changed = groups != e.groups;
                e.groups = groups;
                changed
            }
            Err(err) => {
                tracing::error!(url = %vigil_config::redact_url(url), error = %err, "Unable to refresh HTTP SD targets; keeping the last good ones");
                false
            }
        }
    }
}

/// Fetches an HTTP SD endpoint: a JSON list of `{"targets": [...], "labels": {...}}`.
pub async fn fetch_http_sd(
    client: &reqwest::Client,
    url: &str,
) -> Result<Vec<TargetGroup>, String> {
    let resp = client
        .get(url)
        .header("X-Prometheus-Refresh-Interval-Seconds", "60")
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("server returned HTTP status {}", resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice::<Vec<TargetGroup>>(&body)
        .map_err(|e| format!("invalid HTTP SD response: {e}"))
}

fn expand_globs(patterns: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in patterns {
        match glob::glob(p) {
            Ok(paths) => out.extend(paths.flatten()),
            Err(_) => out.push(Path::new(p).to_path_buf()),
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape_config(files: Vec<String>) -> ScrapeConfig {
        let yaml = format!(
            "scrape_configs:\n  - job_name: j\n    file_sd_configs:\n      - files: [{}]\n",
            files
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        vigil_config::load_str(&yaml, Path::new("/tmp/x.yml"))
            .unwrap()
            .config
            .scrape_configs
            .remove(0)
    }

    #[test]
    fn file_sd_reads_json_and_yaml_and_notices_changes() {
        let dir = std::env::temp_dir().join(format!("vigil-fsd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a.json"),
            r#"[{"targets":["h1:80"],"labels":{"env":"prod"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.join("b.yml"), "- targets: ['h2:80', 'h3:80']\n").unwrap();
        let sc = scrape_config(vec![
            format!("{}/*.json", dir.display()),
            format!("{}/*.yml", dir.display()),
        ]);
        let mut cache = DiscoveryCache::default();
        assert!(cache.refresh_files(std::slice::from_ref(&sc)));
        let groups = cache.groups(&sc);
        let targets: Vec<&String> = groups.iter().flat_map(|g| &g.group.targets).collect();
        assert_eq!(targets, ["h1:80", "h2:80", "h3:80"]);
        assert_eq!(
            groups[0].meta["__meta_filepath"],
            dir.join("a.json").display().to_string()
        );
        assert!(
            !cache.refresh_files(std::slice::from_ref(&sc)),
            "unchanged files are not re-read"
        );
        // A broken file keeps its last good targets.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("a.json"), "not json").unwrap();
        cache.files.get_mut(&dir.join("a.json")).unwrap().mtime = None;
        cache.refresh_files(std::slice::from_ref(&sc));
        assert_eq!(cache.groups(&sc).len(), 2);
        // A removed file drops its targets.
        std::fs::remove_file(dir.join("b.yml")).unwrap();
        assert!(cache.refresh_files(std::slice::from_ref(&sc)));
        assert_eq!(cache.groups(&sc).len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
