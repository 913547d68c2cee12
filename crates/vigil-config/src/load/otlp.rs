//! The `otlp` section, checked as Prometheus 3.x checks it when the file loads: a known
//! translation strategy (the UTF-8 ones refused under the legacy name validation scheme), and
//! either a list of promoted resource attributes or "promote all, ignore these", never both.

use crate::error::Problem;
use crate::types::{OtlpConfig, TranslationStrategy};
use std::collections::HashSet;

pub(super) fn validate_otlp(o: &mut OtlpConfig, legacy: bool) -> Result<(), Problem> {
    match TranslationStrategy::parse(&o.translation_strategy) {
        None => {
            return Err(Problem::new(
                "otlp.translation_strategy",
                format!(
                    "unsupported OTLP translation strategy {:?}",
                    o.translation_strategy
                ),
            ));
        }
        Some(s) if !s.escapes() && legacy => {
            return Err(Problem::new(
                "otlp.translation_strategy",
                format!(
                    "OTLP translation strategy {:?} is not allowed when UTF8 is disabled",
                    o.translation_strategy
                ),
            ));
        }
        Some(_) => {}
    }
    if o.promote_all_resource_attributes {
        if !o.promote_resource_attributes.is_empty() {
            return Err(Problem::new(
                "otlp.promote_resource_attributes",
                "'promote_all_resource_attributes' and 'promote_resource_attributes' cannot be configured simultaneously",
            ));
        }
        clean_attributes(&mut o.ignore_resource_attributes, "ignored").map_err(|m| {
            Problem::new(
                "otlp.ignore_resource_attributes",
                format!("invalid 'ignore_resource_attributes': {m}"),
            )
        })?;
    } else {
        if !o.ignore_resource_attributes.is_empty() {
            return Err(Problem::new(
                "otlp.ignore_resource_attributes",
                "'ignore_resource_attributes' cannot be configured unless 'promote_all_resource_attributes' is true",
            ));
        }
        clean_attributes(&mut o.promote_resource_attributes, "promoted").map_err(|m| {
            Problem::new(
                "otlp.promote_resource_attributes",
                format!("invalid 'promote_resource_attributes': {m}"),
            )
        })?;
    }
    Ok(())
}

/// Trims each attribute name; empty and repeated names are errors (all of them listed).
fn clean_attributes(attrs: &mut [String], adjective: &str) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut errs = Vec::new();
    for a in attrs.iter_mut() {
        let t = a.trim().to_string();
        if t.is_empty() {
            errs.push(format!("empty {adjective} OTel resource attribute"));
            continue;
        }
        if !seen.insert(t.clone()) {
            errs.push(format!(
                "duplicated {adjective} OTel resource attribute {t:?}"
            ));
            continue;
        }
        *a = t;
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> OtlpConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_are_prometheus_defaults() {
        let o = cfg("{}");
        assert_eq!(
            o.strategy(),
            TranslationStrategy::UnderscoreEscapingWithSuffixes
        );
        assert!(o.label_name_underscore_sanitization);
        assert!(o.label_name_preserve_multiple_underscores);
        assert!(!o.promote_all_resource_attributes);
        assert_eq!(o, OtlpConfig::default());
    }

    #[test]
    fn strategies() {
        for s in TranslationStrategy::ALL {
            let mut o = cfg(&format!("translation_strategy: {}", s.name()));
            validate_otlp(&mut o, false).unwrap();
            assert_eq!(o.strategy(), s);
            assert_eq!(validate_otlp(&mut o, true).is_ok(), s.escapes());
        }
        let mut o = cfg("translation_strategy: Underscores");
        let e = validate_otlp(&mut o, false).unwrap_err();
        assert!(
            e.message
                .contains("unsupported OTLP translation strategy \"Underscores\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn promote_lists() {
        let mut o = cfg("promote_all_resource_attributes: true\npromote_resource_attributes: [a]");
        assert!(
            validate_otlp(&mut o, false)
                .unwrap_err()
                .message
                .contains("cannot be configured simultaneously")
        );
        let mut o = cfg("ignore_resource_attributes: [a]");
        assert!(
            validate_otlp(&mut o, false)
                .unwrap_err()
                .message
                .contains("unless 'promote_all_resource_attributes' is true")
        );
        let mut o = cfg("promote_resource_attributes: [' a ', b, b, '']");
        let m = validate_otlp(&mut o, false).unwrap_err().message;
        assert!(
            m.contains("duplicated promoted OTel resource attribute \"b\""),
            "{m}"
        );
        assert!(m.contains("empty promoted OTel resource attribute"), "{m}");
        let mut o =
            cfg("promote_all_resource_attributes: true\nignore_resource_attributes: [' x ']");
        validate_otlp(&mut o, false).unwrap();
        assert_eq!(o.ignore_resource_attributes, ["x"]);
    }
}
