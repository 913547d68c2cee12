//! Name checks shared by every section: the metric-name validation and escaping schemes,
//! label names, and relabel rules under the `legacy` scheme.

use crate::error::Problem;
use crate::relabel::{RelabelConfig, legacy_label_name_valid};

pub(super) fn validate_name_schemes(
    validation: Option<&str>,
    escaping: Option<&str>,
    key: &str,
) -> Result<(), Problem> {
    match validation {
        None | Some("") | Some("utf8") | Some("legacy") => {}
        Some(other) => {
            return Err(Problem::new(
                format!("{key}.metric_name_validation_scheme"),
                format!(
                    "unknown metric name validation scheme {other:?} (expected \"utf8\" or \"legacy\")"
                ),
            ));
        }
    }
    match escaping {
        None | Some("") | Some("underscores") | Some("dots") | Some("values") => {}
        Some("allow-utf-8") => {
            if validation == Some("legacy") {
                return Err(Problem::new(
                    format!("{key}.metric_name_escaping_scheme"),
                    "metric_name_escaping_scheme \"allow-utf-8\" conflicts with metric_name_validation_scheme \"legacy\"",
                ));
            }
        }
        Some(other) => {
            return Err(Problem::new(
                format!("{key}.metric_name_escaping_scheme"),
                format!(
                    "unknown metric name escaping scheme {other:?} (expected allow-utf-8, underscores, dots or values)"
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn validate_label_name(name: &str, legacy: bool, key: &str) -> Result<(), Problem> {
    if name.is_empty() || (legacy && !legacy_label_name_valid(name)) {
        return Err(Problem::new(
            key,
            format!("{name:?} is not a valid label name"),
        ));
    }
    Ok(())
}

pub(super) fn check_legacy_relabel(
    r: &RelabelConfig,
    legacy: bool,
    key: &str,
) -> Result<(), Problem> {
    if legacy {
        r.validate_legacy().map_err(|m| Problem::new(key, m))?;
    }
    Ok(())
}

/// [`check_legacy_relabel`] over a list, naming each entry `prefix[i]`.
pub(super) fn check_legacy_relabels(
    list: &[RelabelConfig],
    legacy: bool,
    prefix: &str,
) -> Result<(), Problem> {
    for (i, r) in list.iter().enumerate() {
        check_legacy_relabel(r, legacy, &format!("{prefix}[{i}]"))?;
    }
    Ok(())
}
