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
    pub(crate) fn check(&mut self, entry: &Entry<'_>) -> Result<(), String> {
        match entry {
            Entry::Help { family, .. } => {
                let fam = self.metadata_family(family, "HELP")?;
                if std::mem::replace(&mut fam.help, true) {
                    return Err(format!("repeated HELP for metric family {family:?}"));
                }
                Ok(())
            }
            Entry::Unit { family, unit } => {
                let fam = self.metadata_family(family, "UNIT")?;
                if fam.unit.is_some() {
                    return Err(format!("repeated UNIT for metric family {family:?}"));
                }
                fam.unit = Some(unit.to_string());
                check_unit(fam)
            }
            Entry::Type { family, kind } => {
                let fam = self.metadata_family(family, "TYPE")?;
                if fam.kind.is_some() {
                    return Err(format!("repeated TYPE for metric family {family:?}"));
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
        }
    }

    pub(crate) fn finish(&mut self) -> Result<(), String> {
        self.close_family()
    }

    /// Claims sample names for `family`; fails if another family has one of them.
    fn reserve(&mut self, family: &str, names: Vec<String>) -> Result<(), String> {
        for n in names {
            match self.reserved.get(&n) {
                Some(owner) if owner != family => {
                    return Err(format!(
                        "metric family {family:?} clashes with family {owner:?} on sample name {n:?}"
                    ));
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
    fn open_family(&mut self, name: &str) -> Result<(), String> {
        self.close_family()?;
        if !self.families.insert(name.to_string()) {
            return Err(format!(
                "metric family {name:?} appears twice (families must be contiguous)"
            ));
        }
        self.reserve(name, vec![name.to_string()])?;
        self.family = Some(Family {
            name: name.to_string(),
            ..Family::default()
        });
        Ok(())
    }

    fn metadata_family(&mut self, name: &str, what: &str) -> Result<&mut Family, String> {
        let same = self.family.as_ref().is_some_and(|f| f.name == name);
        if !same {
            self.open_family(name)?;
        }
        let fam = self.family.as_mut().ok_or("no open family")?;
        if fam.has_samples {
            return Err(format!(
                "{what} for metric family {name:?} after its samples (metadata must come first)"
            ));
        }
        Ok(fam)
    }

    fn close_family(&mut self) -> Result<(), String> {
        if let Some(mut fam) = self.family.take() {
            close_group(&mut fam)?;
        }
        Ok(())
    }

    fn sample(&mut self, s: &SampleEntry<'_>) -> Result<(), String> {
        let name = s.name.as_ref();
        let belongs = self
            .family
            .as_ref()
            .is_some_and(|f| f.suffix_of(name).is_some());
        if !belongs {
            self.open_family(name)?;
        }
        self.check_timestamp(s)?;
        let fam = self.family.as_mut().ok_or("no open family")?;
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
                return Err(format!(
                    "exemplars are only allowed on counter _total and histogram _bucket samples, not on {name:?} ({kind})"
                ));
            }
            let chars: usize = ex
                .labels
                .iter()
                .map(|(n, v)| n.chars().count() + v.chars().count())
                .sum();
            if chars > MAX_EXEMPLAR_LABEL_CHARS {
                return Err(format!(
                    "exemplar labels have {chars} characters, more than {MAX_EXEMPLAR_LABEL_CHARS}"
                ));
            }
        }

        let non_negative = |what: &str| {
            if v.is_nan() || v < 0.0 {
                Err(format!(
                    "{what} {name:?} must not be NaN or negative, got {v}"
                ))
            } else {
                Ok(())
            }
        };
        match kind {
            MetricType::Counter if suffix == "_total" => non_negative("counter")?,
            MetricType::Info if v != 1.0 => {
                return Err(format!("info sample {name:?} must have value 1, got {v}"));
            }
            MetricType::StateSet => {
                if v != 0.0 && v != 1.0 {
                    return Err(format!("stateset sample {name:?} must be 0 or 1, got {v}"));
                }
                if s.label(&fam.name).is_none() {
                    return Err(format!(
                        "stateset sample {name:?} must have a label named {:?}",
                        fam.name
                    ));
                }
            }
            MetricType::Summary => {
                let key = group_key(s, "quantile");
                enter_group(fam, key)?;
                match suffix.as_str() {
                    "_count" => non_negative("summary count")?,
                    "_sum" => non_negative("summary sum")?,
                    "" => {
                        let q = s.label("quantile").ok_or_else(|| {
                            format!("summary sample {name:?} needs a quantile label")
                        })?;
                        match parse_float(&q) {
                            Some(q) if (0.0..=1.0).contains(&q) => {}
                            _ => {
                                return Err(format!(
                                    "quantile {q:?} of {name:?} is not a number between 0 and 1"
                                ));
                            }
                        }
                        if v < 0.0 {
                            return Err(format!("quantile value of {name:?} is negative: {v}"));
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
                        let le_raw = s.label("le").ok_or_else(|| {
                            format!("histogram bucket {name:?} needs an le label")
                        })?;
                        let le = parse_float(&le_raw)
                            .filter(|f| !f.is_nan())
                            .ok_or_else(|| format!("le {le_raw:?} of {name:?} is not a number"))?;
                        if le == f64::INFINITY && le_raw != "+Inf" {
                            return Err(format!(
                                "the +Inf bucket must be written le=\"+Inf\", not {le_raw:?}"
                            ));
                        }
                        if let Some(last) = group.last_le {
                            if le <= last {
                                return Err(format!(
                                    "bucket le={le_raw:?} is not after the previous bucket (buckets must be in increasing order)"
                                ));
                            }
                            if v < group.last_bucket {
                                return Err(format!(
                                    "bucket le={le_raw:?} has count {v}, less than the previous bucket's {}",
                                    group.last_bucket
                                ));
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
                            return Err(format!("histogram sum {name:?} must not be NaN"));
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
    fn check_timestamp(&mut self, s: &SampleEntry<'_>) -> Result<(), String> {
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
                    return Err(format!(
                        "timestamp of {:?} goes backwards ({b} ms after {a} ms)",
                        s.name
                    ));
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Err(format!(
                        "samples of series {:?} must all have a timestamp or none",
                        s.name
                    ));
                }
                _ => {}
            }
        }
        self.prev_series = key;
        self.prev_ts = Some(s.timestamp_ms);
        Ok(())
    }
}

fn check_unit(fam: &Family) -> Result<(), String> {
    let Some(unit) = fam.unit.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    if matches!(fam.kind, Some(MetricType::Info | MetricType::StateSet)) {
        return Err(format!(
            "metric family {:?} of type {} cannot have a unit",
            fam.name,
            fam.kind()
        ));
    }
    if !fam
        .name
        .strip_suffix(unit)
        .is_some_and(|rest| rest.ends_with('_'))
    {
        return Err(format!(
            "metric family {:?} must end in \"_{unit}\" to have unit {unit:?}",
            fam.name
        ));
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
fn enter_group(fam: &mut Family, key: String) -> Result<&mut Group, String> {
    if fam.group.as_ref().is_none_or(|g| g.key != key) {
        close_group(fam)?;
        if !fam.groups.insert(key.clone()) {
            return Err(format!(
                "samples of one label group of metric family {:?} are not contiguous",
                fam.name
            ));
        }
        fam.group = Some(Group {
            key,
            ..Group::default()
        });
    }
    fam.group.as_mut().ok_or_else(|| "no group".to_string())
}

fn close_group(fam: &mut Family) -> Result<(), String> {
    let Some(g) = fam.group.take() else {
        return Ok(());
    };
    let kind = fam.kind();
    if !matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram) {
        return Ok(());
    }
    let name = &fam.name;
    let Some(inf) = g.inf_bucket else {
        return Err(format!("histogram {name:?} has no le=\"+Inf\" bucket"));
    };
    let (count, sum) = match kind {
        MetricType::Histogram => ("_count", "_sum"),
        _ => ("_gcount", "_gsum"),
    };
    match (g.count, g.sum) {
        (Some(_), None) => return Err(format!("histogram {name:?} has {count} but no {sum}")),
        (None, Some(_)) => return Err(format!("histogram {name:?} has {sum} but no {count}")),
        _ => {}
    }
    if let Some(c) = g.count.filter(|&c| c != inf) {
        return Err(format!(
            "{name}{count} is {c} but the +Inf bucket is {inf}; they must be equal"
        ));
    }
    if let Some(s) = g.sum {
        if g.negative_bucket && kind == MetricType::Histogram {
            return Err(format!(
                "histogram {name:?} has negative buckets and so must not have {sum}"
            ));
        }
        if s < 0.0 && !g.negative_bucket {
            return Err(format!(
                "{name}{sum} is negative ({s}) but there are no negative buckets"
            ));
        }
    }
    Ok(())
}
