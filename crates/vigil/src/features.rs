//! `--enable-feature`: Prometheus' feature flags, accepted under the same names so a user's
//! command line moves over unchanged (comma-separated and repeated forms). Each name is logged
//! with what it means in vigil: on by default here, a no-op (as in Prometheus 3.14), or not
//! implemented and ignored; an unknown name is warned about as Prometheus warns.

/// What vigil does with a Prometheus feature flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// vigil behaves this way without the flag.
    AlwaysOn(&'static str),
    /// A no-op in Prometheus 3.14 too.
    NoOp(&'static str),
    /// Off by default, as in Prometheus; the flag switches it on.
    Enabled(&'static str),
    /// Not implemented by vigil; the flag is ignored.
    Ignored,
    Unknown,
}

/// Prometheus 3.14's feature names and what vigil does with each.
pub fn lookup(name: &str) -> Feature {
    use Feature::*;
    match name {
        "native-histograms" => NoOp(
            "to scrape native histograms, set the scrape_native_histograms scrape config setting to true",
        ),
        "promql-duration-expr" | "ooo-native-histograms" => {
            NoOp("permanently enabled in Prometheus 3.14")
        }
        "auto-reload-config" => {
            NoOp("deprecated in Prometheus; vigil reloads on SIGHUP and /-/reload")
        }
        "promql-delayed-name-removal" => AlwaysOn("vigil removes __name__ at the end of a query"),
        "promql-experimental-functions" => AlwaysOn(
            "vigil evaluates every experimental function of Prometheus 3.14 except start_timestamp",
        ),
        "promql-extended-range-selectors" => AlwaysOn(
            "vigil reads the anchored and smoothed range selector modifiers in every query",
        ),
        "promql-binop-fill-modifiers" => {
            AlwaysOn("vigil reads fill(), fill_left() and fill_right() in every query")
        }
        "use-start-timestamps" => Enabled(
            "PromQL reads the start timestamps storage holds: rate, increase, irate and resets treat a start after the previous sample as a counter reset, and start_timestamp() answers",
        ),
        "otlp-deltatocumulative" => Enabled(
            "the OTLP receiver converts delta sums and histograms to cumulative in memory (docs/otlp.md)",
        ),
        "memory-snapshot-on-shutdown" => {
            AlwaysOn("vigil writes a head snapshot on every clean shutdown")
        }
        "extra-scrape-metrics"
        | "exemplar-storage"
        | "metadata-wal-records"
        | "promql-per-step-stats"
        | "concurrent-rule-eval"
        | "created-timestamp-zero-ingestion"
        | "xor2-encoding"
        | "histograms-st-encoding"
        | "st-synthesis"
        | "st-storage"
        | "delayed-compaction"
        | "old-ui"
        | "otlp-native-delta-ingestion"
        | "type-and-unit-labels"
        | "use-uncached-io"
        | "fast-startup"
        | "search-api" => Ignored,
        _ => Unknown,
    }
}

/// The feature names of `--enable-feature` values (`a,b` and repeated flags), trimmed, empty
/// ones dropped.
pub fn names(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `name` was asked for among the `--enable-feature` values.
pub fn enabled(values: &[String], name: &str) -> bool {
    names(values).iter().any(|n| n == name)
}

/// Logs what vigil does with each requested feature.
pub fn log(values: &[String]) {
    for name in names(values) {
        match lookup(&name) {
            Feature::AlwaysOn(why) => {
                tracing::info!(option = %name, "Feature enabled by default in vigil: {why}")
            }
            Feature::NoOp(why) => {
                tracing::warn!(option = %name, "This option for --enable-feature is a no-op: {why}")
            }
            Feature::Enabled(what) => {
                tracing::info!(option = %name, "Experimental feature enabled: {what}")
            }
            Feature::Ignored => tracing::warn!(
                option = %name,
                "This option for --enable-feature is not implemented by vigil and is ignored"
            ),
            Feature::Unknown => {
                tracing::warn!(option = %name, "Unknown option for --enable-feature")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_separated_and_repeated() {
        let v = vec![
            "native-histograms,exemplar-storage".to_string(),
            " promql-delayed-name-removal ".to_string(),
            ",".to_string(),
        ];
        assert_eq!(
            names(&v),
            [
                "native-histograms",
                "exemplar-storage",
                "promql-delayed-name-removal"
            ]
        );
    }

    #[test]
    fn every_prometheus_314_name_is_known() {
        // The names Prometheus 3.14's --help lists, plus the no-op ones it still accepts.
        for n in [
            "concurrent-rule-eval",
            "created-timestamp-zero-ingestion",
            "delayed-compaction",
            "exemplar-storage",
            "extra-scrape-metrics",
            "histograms-st-encoding",
            "memory-snapshot-on-shutdown",
            "metadata-wal-records",
            "old-ui",
            "otlp-deltatocumulative",
            "otlp-native-delta-ingestion",
            "promql-binop-fill-modifiers",
            "promql-delayed-name-removal",
            "promql-experimental-functions",
            "promql-extended-range-selectors",
            "promql-per-step-stats",
            "search-api",
            "st-storage",
            "st-synthesis",
            "type-and-unit-labels",
            "use-start-timestamps",
            "use-uncached-io",
            "xor2-encoding",
            "native-histograms",
            "promql-duration-expr",
            "ooo-native-histograms",
            "auto-reload-config",
            "fast-startup",
        ] {
            assert_ne!(lookup(n), Feature::Unknown, "{n}");
        }
        assert_eq!(lookup("no-such-feature"), Feature::Unknown);
    }
}
