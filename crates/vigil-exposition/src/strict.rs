//! OpenMetrics 1.0 semantic validation, used by [`Parser::strict`](crate::Parser::strict).
//!
//! The syntax parser sees one line at a time; the rules here need state across lines:
//! which family is open, which families and sample names were seen, the label group of a
//! histogram or summary, the previous sample's timestamp. This allocates (per family and per
//! sample) and so is kept out of the scrape hot path.

use std::collections::{HashMap, HashSet};

use crate::lex::parse_float;
use crate::{Entry, MetricType, SampleEntry};

/// Longest exemplar label set, in code points of names and values.
const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// An OpenMetrics rule a body breaks. The parser reports it as the message of a
/// [`ParseError`](crate::ParseError) at the line that broke it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum StrictError {
    /// A second `# HELP`, `# UNIT` or `# TYPE` line for one family.
    #[error("repeated {what} for metric family {family:?}")]
    RepeatedMetadata { what: &'static str, family: String },
    /// Metadata after the family's first sample.
    #[error("{what} for metric family {family:?} after its samples (metadata must come first)")]
    MetadataAfterSamples { what: &'static str, family: String },
    /// Two families may produce the same sample name (`a_total` of counter `a` and gauge
    /// `a_total`).
    #[error("metric family {family:?} clashes with family {owner:?} on sample name {sample:?}")]
    NameClash {
        family: String,
        owner: String,
        sample: String,
    },
    /// A family started again after another one.
    #[error("metric family {family:?} appears twice (families must be contiguous)")]
    FamilyNotContiguous { family: String },
    /// A histogram's or summary's label group started again after another one.
    #[error("samples of one label group of metric family {family:?} are not contiguous")]
    GroupNotContiguous { family: String },
    #[error("metric family {family:?} of type {kind} cannot have a unit")]
    UnitNotAllowed { family: String, kind: MetricType },
    #[error("metric family {family:?} must end in \"_{unit}\" to have unit {unit:?}")]
    UnitSuffix { family: String, unit: String },
    #[error(
        "exemplars are only allowed on counter _total and histogram _bucket samples, not on {sample:?} ({kind})"
    )]
    ExemplarPlacement { sample: String, kind: MetricType },
    #[error("exemplar labels have {chars} characters, more than {MAX_EXEMPLAR_LABEL_CHARS}")]
    ExemplarTooLong { chars: usize },
    /// A counter, count, sum or bucket value that is NaN or negative; `what` names it.
    #[error("{what} {sample:?} must not be NaN or negative, got {value}")]
    Negative {
        what: &'static str,
        sample: String,
        value: f64,
    },
    #[error("info sample {sample:?} must have value 1, got {value}")]
    InfoValue { sample: String, value: f64 },
    #[error("stateset sample {sample:?} must be 0 or 1, got {value}")]
    StateSetValue { sample: String, value: f64 },
    #[error("stateset sample {sample:?} must have a label named {family:?}")]
    StateSetLabel { sample: String, family: String },
    #[error("summary sample {sample:?} needs a quantile label")]
    MissingQuantile { sample: String },
    #[error("quantile {quantile:?} of {sample:?} is not a number between 0 and 1")]
    BadQuantile { quantile: String, sample: String },
    #[error("quantile value of {sample:?} is negative: {value}")]
    NegativeQuantileValue { sample: String, value: f64 },
    #[error("histogram bucket {sample:?} needs an le label")]
    MissingLe { sample: String },
    #[error("le {le:?} of {sample:?} is not a number")]
    BadLe { le: String, sample: String },
    #[error("the +Inf bucket must be written le=\"+Inf\", not {le:?}")]
    InfSpelling { le: String },
    #[error(
        "bucket le={le:?} is not after the previous bucket (buckets must be in increasing order)"
    )]
    BucketOrder { le: String },
    #[error("bucket le={le:?} has count {value}, less than the previous bucket's {previous}")]
    BucketDecreasing {
        le: String,
        value: f64,
        previous: f64,
    },
    #[error("histogram sum {sample:?} must not be NaN")]
    NanSum { sample: String },
    #[error("timestamp of {sample:?} goes backwards ({ts} ms after {prev} ms)")]
    TimestampBackwards { sample: String, prev: i64, ts: i64 },
    #[error("samples of series {sample:?} must all have a timestamp or none")]
    MixedTimestamps { sample: String },
    #[error("histogram {family:?} has no le=\"+Inf\" bucket")]
    MissingInfBucket { family: String },
    /// `_count` without `_sum` or the reverse (`_gcount`/`_gsum` for gauge histograms).
    #[error("histogram {family:?} has {present} but no {missing}")]
    Unpaired {
        family: String,
        present: &'static str,
        missing: &'static str,
    },
    #[error("{family}{count} is {value} but the +Inf bucket is {inf}; they must be equal")]
    CountMismatch {
        family: String,
        count: &'static str,
        value: f64,
        inf: f64,
    },
    #[error("histogram {family:?} has negative buckets and so must not have {sum}")]
    SumWithNegativeBuckets { family: String, sum: &'static str },
    #[error("{family}{sum} is negative ({value}) but there are no negative buckets")]
    NegativeSum {
        family: String,
        sum: &'static str,
        value: f64,
    },
    /// A state the validator should never reach.
    #[error("{0}")]
    Internal(&'static str),
}

type Result<T, E = StrictError> = std::result::Result<T, E>;

#[derive(Default)]
pub(crate) struct Validator {
    /// The family being read, if any.
    family: Option<Family>,
    /// Names of all families started so far.
    families: HashSet<String>,
    /// Sample names each family may produce, with the family that claims them.
    reserved: HashMap<String, String>,
    /// Series key and timestamp of the previous sample.
    prev_series: String,
    prev_ts: Option<Option<i64>>,
}

#[derive(Default)]
struct Family {
    name: String,
    kind: Option<MetricType>,
    help: bool,
    unit: Option<String>,
    has_samples: bool,
    /// Label groups (labels minus `le`/`quantile`) already closed in this family.
    groups: HashSet<String>,
    group: Option<Group>,
}

#[derive(Default)]
struct Group {
    key: String,
    last_le: Option<f64>,
    last_bucket: f64,
    inf_bucket: Option<f64>,
    negative_bucket: bool,
    count: Option<f64>,
    sum: Option<f64>,
}

fn suffixes(kind: MetricType) -> &'static [&'static str] {
    match kind {
        MetricType::Counter => &["_total", "_created"],
        MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[""],
        MetricType::Info => &["_info"],
        MetricType::Histogram => &["_bucket", "_count", "_sum", "_created"],
        MetricType::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
        MetricType::Summary => &["", "_count", "_sum", "_created"],
    }
}

impl Family {
    fn kind(&self) -> MetricType {
        self.kind.unwrap_or(MetricType::Unknown)
    }

    /// The suffix of `sample` if it belongs to this family.
    fn suffix_of<'s>(&self, sample: &'s str) -> Option<&'s str> {
        let rest = sample.strip_prefix(self.name.as_str())?;
        suffixes(self.kind()).contains(&rest).then_some(rest)
    }
}

impl Validator {
    pub(crate) fn check(&mut self, entry: &Entry<'_>) -> Result<()> {
        match entry {
            Entry::Help { family, .. } => {
                let fam = self.metadata_family(family, "HELP")?;
                if std::mem::replace(&mut fam.help, true) {
                    return Err(StrictError::RepeatedMetadata {
                        what: "HELP",
                        family: family.to_string(),
                    });
                }
                Ok(())
            }
            Entry::Unit { family, unit } => {
                let fam = self.metadata_family(family, "UNIT")?;
                if fam.unit.is_some() {
                    return Err(StrictError::RepeatedMetadata {
                        what: "UNIT",
                        family: family.to_string(),
                    });
                }
                fam.unit = Some(unit.to_string());
                check_unit(fam)
            }
            Entry::Type { family, kind } => {
                let fam = self.metadata_family(family, "TYPE")?;
                if fam.kind.is_some() {
                    return Err(StrictError::RepeatedMetadata {
                        what: "TYPE",
                        family: family.to_string(),
                    });
                }
                fam.kind = Some(*kind);
                check_unit(fam)?;
                let names: Vec<String> = suffixes(*kind)
                    .iter()
                    .map(|s| format!("{family}{s}"))
                    .collect();
                self.reserve(family, names)
            }
            Entry::Sample(s) => self.sample(s),
            // The text formats have none; only the protobuf parser makes them.
            Entry::Histogram(_) => Ok(()),
        }
    }

    pub(crate) fn finish(&mut self) -> Result<()> {
        self.close_family()
    }

    /// Claims sample names for `family`; fails if another family has one of them.
    fn reserve(&mut self, family: &str, names: Vec<String>) -> Result<()> {
        for n in names {
            match self.reserved.get(&n) {
                Some(owner) if owner != family => {
                    return Err(StrictError::NameClash {
                        family: family.to_string(),
                        owner: owner.clone(),
                        sample: n,
                    });
                }
                Some(_) => {}
                None => {
                    self.reserved.insert(n, family.to_string());
                }
            }
        }
        Ok(())
    }

    /// Opens a new family named `name` (closing the current one).
    fn open_family(&mut self, name: &str) -> Result<()> {
        self.close_family()?;
        if !self.families.insert(name.to_string()) {
            return Err(StrictError::FamilyNotContiguous {
                family: name.to_string(),
            });
        }
        self.reserve(name, vec![name.to_string()])?;
        self.family = Some(Family {
            name: name.to_string(),
            ..Family::default()
        });
        Ok(())
    }

    fn metadata_family(&mut self, name: &str, what: &'static str) -> Result<&mut Family> {
        let same = self.family.as_ref().is_some_and(|f| f.name == name);
        if !same {
            self.open_family(name)?;
        }
        let fam = self
            .family
            .as_mut()
            .ok_or(StrictError::Internal("no open family"))?;
        if fam.has_samples {
            return Err(StrictError::MetadataAfterSamples {
                what,
                family: name.to_string(),
            });
        }
        Ok(fam)
    }

    fn close_family(&mut self) -> Result<()> {
        if let Some(mut fam) = self.family.take() {
            close_group(&mut fam)?;
        }
        Ok(())
    }

    fn sample(&mut self, s: &SampleEntry<'_>) -> Result<()> {
        let name = s.name.as_ref();
        let belongs = self
            .family
            .as_ref()
            .is_some_and(|f| f.suffix_of(name).is_some());
        if !belongs {
            self.open_family(name)?;
        }
        self.check_timestamp(s)?;
        let fam = self
            .family
            .as_mut()
            .ok_or(StrictError::Internal("no open family"))?;
        fam.has_samples = true;
        let suffix = fam.suffix_of(name).unwrap_or("").to_string();
        let kind = fam.kind();
        let v = s.value;

        if let Some(ex) = &s.exemplar {
            let allowed = matches!(
                (kind, suffix.as_str()),
                (MetricType::Counter, "_total")
                    | (
                        MetricType::Histogram | MetricType::GaugeHistogram,
                        "_bucket"
                    )
            );
            if !allowed {
                return Err(StrictError::ExemplarPlacement {
                    sample: name.to_string(),
                    kind,
                });
            }
            let chars: usize = ex
                .labels
                .iter()
                .map(|(n, v)| n.chars().count() + v.chars().count())
                .sum();
            if chars > MAX_EXEMPLAR_LABEL_CHARS {
                return Err(StrictError::ExemplarTooLong { chars });
            }
        }

        let non_negative = |what: &'static str| {
            if v.is_nan() || v < 0.0 {
                Err(StrictError::Negative {
                    what,
                    sample: name.to_string(),
                    value: v,
                })
            } else {
                Ok(())
            }
        };
        match kind {
            MetricType::Counter if suffix == "_total" => non_negative("counter")?,
            MetricType::Info if v != 1.0 => {
                return Err(StrictError::InfoValue {
                    sample: name.to_string(),
                    value: v,
                });
            }
            MetricType::StateSet => {
                if v != 0.0 && v != 1.0 {
                    return Err(StrictError::StateSetValue {
                        sample: name.to_string(),
                        value: v,
                    });
                }
                if s.label(&fam.name).is_none() {
                    return Err(StrictError::StateSetLabel {
                        sample: name.to_string(),
                        family: fam.name.clone(),
                    });
                }
            }
            MetricType::Summary => {
                let key = group_key(s, "quantile");
                enter_group(fam, key)?;
                match suffix.as_str() {
                    "_count" => non_negative("summary count")?,
                    "_sum" => non_negative("summary sum")?,
                    "" => {
                        let q =
                            s.label("quantile")
                                .ok_or_else(|| StrictError::MissingQuantile {
                                    sample: name.to_string(),
                                })?;
                        match parse_float(&q) {
                            Some(q) if (0.0..=1.0).contains(&q) => {}
                            _ => {
                                return Err(StrictError::BadQuantile {
                                    quantile: q.to_string(),
                                    sample: name.to_string(),
                                });
                            }
                        }
                        if v < 0.0 {
                            return Err(StrictError::NegativeQuantileValue {
                                sample: name.to_string(),
                                value: v,
                            });
                        }
                    }
                    _ => {}
                }
            }
            MetricType::Histogram | MetricType::GaugeHistogram => {
                let key = group_key(s, "le");
                let group = enter_group(fam, key)?;
                match suffix.as_str() {
                    "_bucket" => {
                        non_negative("bucket")?;
                        let le_raw = s.label("le").ok_or_else(|| StrictError::MissingLe {
                            sample: name.to_string(),
                        })?;
                        let le = parse_float(&le_raw)
                            .filter(|f| !f.is_nan())
                            .ok_or_else(|| StrictError::BadLe {
                                le: le_raw.to_string(),
                                sample: name.to_string(),
                            })?;
                        if le == f64::INFINITY && le_raw != "+Inf" {
                            return Err(StrictError::InfSpelling {
                                le: le_raw.to_string(),
                            });
                        }
                        if let Some(last) = group.last_le {
                            if le <= last {
                                return Err(StrictError::BucketOrder {
                                    le: le_raw.to_string(),
                                });
                            }
                            if v < group.last_bucket {
                                return Err(StrictError::BucketDecreasing {
                                    le: le_raw.to_string(),
                                    value: v,
                                    previous: group.last_bucket,
                                });
                            }
                        }
                        if le < 0.0 {
                            group.negative_bucket = true;
                        }
                        group.last_le = Some(le);
                        group.last_bucket = v;
                        if le == f64::INFINITY {
                            group.inf_bucket = Some(v);
                        }
                    }
                    "_count" | "_gcount" => {
                        non_negative("histogram count")?;
                        group.count = Some(v);
                    }
                    "_sum" | "_gsum" => {
                        if v.is_nan() {
                            return Err(StrictError::NanSum {
                                sample: name.to_string(),
                            });
                        }
                        group.sum = Some(v);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Repeated samples of one series must agree on having a timestamp, and timestamps must
    /// not go backwards.
    fn check_timestamp(&mut self, s: &SampleEntry<'_>) -> Result<()> {
        let mut key = s.name.to_string();
        let mut labels: Vec<_> = s.labels().collect();
        labels.sort();
        for (n, v) in labels {
            key.push('\u{0}');
            key.push_str(&n);
            key.push('\u{0}');
            key.push_str(&v);
        }
        if let (true, Some(prev)) = (key == self.prev_series, self.prev_ts) {
            match (prev, s.timestamp_ms) {
                (Some(a), Some(b)) if b < a => {
                    return Err(StrictError::TimestampBackwards {
                        sample: s.name.to_string(),
                        prev: a,
                        ts: b,
                    });
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Err(StrictError::MixedTimestamps {
                        sample: s.name.to_string(),
                    });
                }
                _ => {}
            }
        }
        self.prev_series = key;
        self.prev_ts = Some(s.timestamp_ms);
        Ok(())
    }
}

fn check_unit(fam: &Family) -> Result<()> {
    let Some(unit) = fam.unit.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    if matches!(fam.kind, Some(MetricType::Info | MetricType::StateSet)) {
        return Err(StrictError::UnitNotAllowed {
            family: fam.name.clone(),
            kind: fam.kind(),
        });
    }
    if !fam
        .name
        .strip_suffix(unit)
        .is_some_and(|rest| rest.ends_with('_'))
    {
        return Err(StrictError::UnitSuffix {
            family: fam.name.clone(),
            unit: unit.to_string(),
        });
    }
    Ok(())
}

/// The sample's labels without `skip`, in a canonical order.
fn group_key(s: &SampleEntry<'_>, skip: &str) -> String {
    let mut labels: Vec<_> = s.labels().filter(|(n, _)| n != skip).collect();
    labels.sort();
    let mut key = String::new();
    for (n, v) in labels {
        key.push_str(&n);
        key.push('\u{0}');
        key.push_str(&v);
        key.push('\u{0}');
    }
    key
}

/// Makes `key` the family's current label group; groups must be contiguous.
fn enter_group(fam: &mut Family, key: String) -> Result<&mut Group> {
    if fam.group.as_ref().is_none_or(|g| g.key != key) {
        close_group(fam)?;
        if !fam.groups.insert(key.clone()) {
            return Err(StrictError::GroupNotContiguous {
                family: fam.name.clone(),
            });
        }
        fam.group = Some(Group {
            key,
            ..Group::default()
        });
    }
    fam.group.as_mut().ok_or(StrictError::Internal("no group"))
}

fn close_group(fam: &mut Family) -> Result<()> {
    let Some(g) = fam.group.take() else {
        return Ok(());
    };
    let kind = fam.kind();
    if !matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram) {
        return Ok(());
    }
    let family = || fam.name.clone();
    let Some(inf) = g.inf_bucket else {
        return Err(StrictError::MissingInfBucket { family: family() });
    };
    let (count, sum) = match kind {
        MetricType::Histogram => ("_count", "_sum"),
        _ => ("_gcount", "_gsum"),
    };
    match (g.count, g.sum) {
        (Some(_), None) => {
            return Err(StrictError::Unpaired {
                family: family(),
                present: count,
                missing: sum,
            });
        }
        (None, Some(_)) => {
            return Err(StrictError::Unpaired {
                family: family(),
                present: sum,
                missing: count,
            });
        }
        _ => {}
    }
    if let Some(c) = g.count.filter(|&c| c != inf) {
        return Err(StrictError::CountMismatch {
            family: family(),
            count,
            value: c,
            inf,
        });
    }
    if let Some(s) = g.sum {
        if g.negative_bucket && kind == MetricType::Histogram {
            return Err(StrictError::SumWithNegativeBuckets {
                family: family(),
                sum,
            });
        }
        if s < 0.0 && !g.negative_bucket {
            return Err(StrictError::NegativeSum {
                family: family(),
                sum,
                value: s,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Format, Parser};

    /// The first strict error in `body` (an OpenMetrics body without `# EOF`).
    fn first_error(body: &str) -> String {
        let text = format!("{body}# EOF\n");
        Parser::new(text.as_bytes(), Format::OpenMetrics)
            .strict()
            .find_map(Result::err)
            .map(|e| e.message)
            .unwrap_or_else(|| panic!("accepted: {body:?}"))
    }

    #[test]
    fn messages_name_the_broken_rule() {
        let long = "v".repeat(130);
        let exemplar = format!("# TYPE a counter\na_total 1 # {{x=\"{long}\"}} 1\n");
        let cases: &[(&str, &str)] = &[
            (
                "# HELP a x\n# HELP a y\n",
                "repeated HELP for metric family \"a\"",
            ),
            (
                "# TYPE a gauge\n# TYPE a gauge\n",
                "repeated TYPE for metric family \"a\"",
            ),
            (
                "# UNIT a_s s\n# UNIT a_s s\n",
                "repeated UNIT for metric family \"a_s\"",
            ),
            (
                "a 1\n# HELP a x\n",
                "HELP for metric family \"a\" after its samples (metadata must come first)",
            ),
            (
                "# TYPE a counter\n# TYPE a_total gauge\n",
                "metric family \"a_total\" clashes with family \"a\" on sample name \"a_total\"",
            ),
            (
                "a 1\nb 1\na 2\n",
                "metric family \"a\" appears twice (families must be contiguous)",
            ),
            (
                "# TYPE a info\n# UNIT a x\n",
                "metric family \"a\" of type info cannot have a unit",
            ),
            (
                "# UNIT a s\n",
                "metric family \"a\" must end in \"_s\" to have unit \"s\"",
            ),
            (
                "a 1 # {x=\"y\"} 1\n",
                "exemplars are only allowed on counter _total and histogram _bucket samples, not on \"a\" (unknown)",
            ),
            (
                &exemplar,
                "exemplar labels have 131 characters, more than 128",
            ),
            (
                "# TYPE a counter\na_total -1\n",
                "counter \"a_total\" must not be NaN or negative, got -1",
            ),
            (
                "# TYPE a info\na_info 2\n",
                "info sample \"a_info\" must have value 1, got 2",
            ),
            (
                "# TYPE a stateset\na{a=\"x\"} 2\n",
                "stateset sample \"a\" must be 0 or 1, got 2",
            ),
            (
                "# TYPE a stateset\na{b=\"x\"} 1\n",
                "stateset sample \"a\" must have a label named \"a\"",
            ),
            (
                "# TYPE a summary\na 1\n",
                "summary sample \"a\" needs a quantile label",
            ),
            (
                "# TYPE a summary\na{quantile=\"2\"} 1\n",
                "quantile \"2\" of \"a\" is not a number between 0 and 1",
            ),
            (
                "# TYPE a summary\na{quantile=\"0.5\"} -1\n",
                "quantile value of \"a\" is negative: -1",
            ),
            (
                "# TYPE a summary\na{quantile=\"0.5\",x=\"1\"} 1\na{quantile=\"0.5\",x=\"2\"} 1\na{quantile=\"0.9\",x=\"1\"} 1\n",
                "samples of one label group of metric family \"a\" are not contiguous",
            ),
            (
                "# TYPE a histogram\na_bucket 1\n",
                "histogram bucket \"a_bucket\" needs an le label",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"x\"} 1\n",
                "le \"x\" of \"a_bucket\" is not a number",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"Inf\"} 1\n",
                "the +Inf bucket must be written le=\"+Inf\", not \"Inf\"",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"2\"} 1\na_bucket{le=\"1\"} 1\n",
                "bucket le=\"1\" is not after the previous bucket (buckets must be in increasing order)",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"2\"} 1\n",
                "bucket le=\"2\" has count 1, less than the previous bucket's 2",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"+Inf\"} 1\na_sum NaN\n",
                "histogram sum \"a_sum\" must not be NaN",
            ),
            (
                "a 1 2\na 1 1\n",
                "timestamp of \"a\" goes backwards (1000 ms after 2000 ms)",
            ),
            (
                "a 1 2\na 1\n",
                "samples of series \"a\" must all have a timestamp or none",
            ),
            (
                "# TYPE a histogram\na_count 1\n",
                "histogram \"a\" has no le=\"+Inf\" bucket",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"+Inf\"} 1\na_count 1\n",
                "histogram \"a\" has _count but no _sum",
            ),
            (
                "# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 1\na_gsum 1\n",
                "histogram \"a\" has _gsum but no _gcount",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"+Inf\"} 2\na_count 1\na_sum 1\n",
                "a_count is 1 but the +Inf bucket is 2; they must be equal",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"-1\"} 0\na_bucket{le=\"+Inf\"} 1\na_count 1\na_sum 1\n",
                "histogram \"a\" has negative buckets and so must not have _sum",
            ),
            (
                "# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 1\na_gcount 1\na_gsum -1\n",
                "a_gsum is negative (-1) but there are no negative buckets",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|(body, want)| {
                let got = first_error(body);
                (got != *want).then(|| format!("{body:?}\n  want {want}\n  got  {got}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
