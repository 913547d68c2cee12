//! serde helpers for Prometheus' YAML conventions.
//!
//! Prometheus decodes with yaml.v2's strict mode and custom types; serde_yaml plus these helpers
//! reproduce it: durations and byte sizes in Prometheus' syntax, secrets that serialize as
//! `<secret>`, maps that refuse duplicate keys (serde_yaml silently keeps the last one), and
//! lists that refuse empty `-` entries (serde_yaml would turn them into default structs).

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use vigil_model::Duration;

/// `url` with the password of its userinfo replaced by `xxxxx` (`http://u:xxxxx@host/`), as
/// Prometheus prints a URL of its config (`config.URL.Redacted`); a URL without a password is
/// returned unchanged. For every place a configured URL is shown: `/api/v1/status/config`,
/// logs, metric labels, error messages.
pub fn redact_url(url: &str) -> std::borrow::Cow<'_, str> {
    redact_url_as(url, "xxxxx")
}

/// [`redact_url`] with another mask: Go's HTTP client errors, which Prometheus shows as a
/// target's `lastError`, write the password as `***`.
pub fn redact_url_as<'a>(url: &'a str, mask: &str) -> std::borrow::Cow<'a, str> {
    let Some(scheme_end) = url.find("://") else {
        return url.into();
    };
    let auth_start = scheme_end + 3;
    let auth_end = url[auth_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| auth_start + i);
    let Some(at) = url[auth_start..auth_end].rfind('@').map(|i| auth_start + i) else {
        return url.into();
    };
    let Some(colon) = url[auth_start..at].find(':').map(|i| auth_start + i) else {
        return url.into();
    };
    format!("{}:{mask}{}", &url[..colon], &url[at..]).into()
}

/// Serializes a URL through [`redact_url`].
pub(crate) fn ser_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

/// Serializes an optional URL through [`redact_url`].
pub(crate) fn ser_url_opt<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => s.serialize_some(&*redact_url(u)),
        None => s.serialize_none(),
    }
}

/// A password, token or key. Serializes as `<secret>` so `/api/v1/status/config` never leaks it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_str("")
        } else {
            s.serialize_str("<secret>")
        }
    }
}

/// A YAML subtree vigil accepts but does not interpret (unsupported service discoveries,
/// tracing, otlp, sigv4, ...). Values under secret-looking keys are redacted on output.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Opaque(pub serde_yaml::Value);

impl Opaque {
    /// True for a key given with no value (`kubernetes_sd_configs:`) or an empty list/map.
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            serde_yaml::Value::Null => true,
            serde_yaml::Value::Sequence(s) => s.is_empty(),
            serde_yaml::Value::Mapping(m) => m.is_empty(),
            _ => false,
        }
    }
}

fn redact(v: &serde_yaml::Value) -> serde_yaml::Value {
    use serde_yaml::Value;
    match v {
        Value::Mapping(m) => {
            let mut out = serde_yaml::Mapping::new();
            for (k, val) in m {
                let secret = k.as_str().is_some_and(|k| {
                    let k = k.to_ascii_lowercase();
                    !k.ends_with("_file")
                        && !k.ends_with("_id")
                        && (k.contains("secret")
                            || k.contains("password")
                            || k.contains("token")
                            || k.contains("credentials")
                            || k == "private_key"
                            || k == "key_passphrase"
                            || k == "service_account_key")
                });
                let nv = if secret && !val.is_mapping() && !val.is_null() {
                    Value::String("<secret>".into())
                } else {
                    redact(val)
                };
                out.insert(k.clone(), nv);
            }
            Value::Mapping(out)
        }
        Value::Sequence(s) => Value::Sequence(s.iter().map(redact).collect()),
        Value::Tagged(t) => redact(&t.value),
        other => other.clone(),
    }
}

impl Serialize for Opaque {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        redact(&self.0).serialize(s)
    }
}

pub(crate) fn default_true() -> bool {
    true
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn parse_duration<E: de::Error>(s: &str) -> Result<Duration, E> {
    s.parse::<Duration>().map_err(|_| {
        E::custom(format!(
            "not a valid duration string: {s:?} (use e.g. 15s, 1m30s, 500ms, 1h, 2d)"
        ))
    })
}

/// `#[serde(with = "duration")]` for `vigil_model::Duration`.
pub(crate) mod duration {
    use super::*;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        match s {
            None => Ok(Duration::ZERO),
            Some(s) => parse_duration(&s),
        }
    }
}

/// `#[serde(with = "opt_duration")]` for `Option<vigil_model::Duration>`.
pub(crate) mod opt_duration {
    use super::*;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&d.to_string()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| parse_duration(&s)).transpose()
    }
}

/// Parses a byte size as Prometheus does (`units.ParseBase2Bytes`): `512B`, `15MB`, `1GiB`,
/// `1GB512MB`, `1.5KB`; every multiple is a power of 1024; a unit is required except for `0`.
pub fn parse_size(s: &str) -> Result<i128, String> {
    let bad = || format!("not a valid size: {s:?} (use e.g. 512KB, 15MB, 1GB)");
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let (neg, mut rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let pow = match unit {
            "B" => 0,
            "KB" | "KiB" => 1,
            "MB" | "MiB" => 2,
            "GB" | "GiB" => 3,
            "TB" | "TiB" => 4,
            "PB" | "PiB" => 5,
            "EB" | "EiB" => 6,
            _ => return Err(bad()),
        };
        total += n * 1024f64.powi(pow);
    }
    if total > i64::MAX as f64 {
        return Err(format!("size out of range: {s:?}"));
    }
    let v = total as i128;
    Ok(if neg { -v } else { v })
}

/// Formats a byte count the way Prometheus prints `Base2Bytes`.
pub fn format_size(n: u64) -> String {
    if n == 0 {
        return "0B".into();
    }
    for (i, unit) in ["EiB", "PiB", "TiB", "GiB", "MiB", "KiB"]
        .iter()
        .enumerate()
    {
        let m = 1u64 << (10 * (6 - i));
        if n.is_multiple_of(m) {
            return format!("{}{}", n / m, unit);
        }
    }
    format!("{n}B")
}

fn size_from_yaml<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i128>, D::Error> {
    let v = Option::<serde_yaml::Value>::deserialize(d)?;
    match v {
        None | Some(serde_yaml::Value::Null) => Ok(None),
        Some(serde_yaml::Value::String(s)) => parse_size(&s).map(Some).map_err(de::Error::custom),
        Some(serde_yaml::Value::Number(n)) => parse_size(&n.to_string())
            .map(Some)
            .map_err(de::Error::custom),
        Some(_) => Err(de::Error::custom("expected a size such as 15MB")),
    }
}

/// `#[serde(with = "size")]`: a non-negative byte size as `u64` (0 = unset).
pub(crate) mod size {
    use super::*;
    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(*n))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match size_from_yaml(d)? {
            None => Ok(0),
            Some(v) if v < 0 => Err(de::Error::custom("size cannot be negative")),
            Some(v) => Ok(v as u64),
        }
    }
}

/// `#[serde(with = "signed_size")]`: a byte size that may be negative in the file, so the
/// validator can refuse it with a message naming the key (as Prometheus does for retention).
pub(crate) mod signed_size {
    use super::*;
    pub fn serialize<S: Serializer>(n: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) if *n >= 0 => s.serialize_str(&format_size(*n as u64)),
            Some(n) => s.serialize_str(&format!("-{}", format_size(n.unsigned_abs()))),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(size_from_yaml(d)?.map(|v| v as i64))
    }
}

/// A map from string keys that refuses duplicate keys, as yaml.v2's strict mode does.
pub(crate) fn unique_map<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct MapV<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for MapV<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(k) = m.next_key::<String>()? {
                if out.contains_key(&k) {
                    return Err(de::Error::custom(format!("duplicate key {k:?}")));
                }
                let v = m.next_value::<V>()?;
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(MapV(PhantomData))
}

/// A list whose entries must not be empty: `-` alone is refused, as in Prometheus.
pub(crate) fn no_null_seq<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct SeqV<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqV<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(x) = s.next_element::<Option<T>>()? {
                match x {
                    Some(v) => out.push(v),
                    None => {
                        return Err(de::Error::custom(format!(
                            "entry {} of the list is empty (a `-` with no value)",
                            out.len()
                        )));
                    }
                }
            }
            Ok(out)
        }
    }
    d.deserialize_seq(SeqV(PhantomData))
}

/// Distinguishes an absent key (`None`, via `#[serde(default)]`) from a key given as null
/// (`Some(None)`).
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A string list that also accepts null as empty.
pub(crate) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("15MB").unwrap(), 15 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GB512MB").unwrap(), (1 << 30) + (512 << 20));
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("-1GB").unwrap(), -(1 << 30));
        assert!(parse_size("100").is_err());
        assert!(parse_size("1XB").is_err());
        assert_eq!(format_size(15 << 20), "15MiB");
        assert_eq!(format_size(1000), "1000B");
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn url_passwords_are_redacted_and_nothing_else_changes() {
        for (url, want) in [
            (
                "http://u:p4ss@h:9/api/v1/write",
                "http://u:xxxxx@h:9/api/v1/write",
            ),
            ("https://u:p@ss:w@h/", "https://u:xxxxx@h/"),
            ("http://u:@h", "http://u:xxxxx@h"),
            ("http://u@h/x", "http://u@h/x"),
            ("http://h/p?q=a:b@c", "http://h/p?q=a:b@c"),
            ("http://h:9090", "http://h:9090"),
            ("not a url", "not a url"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
        assert_eq!(
            super::redact_url_as("http://u:p@h/", "***"),
            "http://u:***@h/"
        );
    }
}
