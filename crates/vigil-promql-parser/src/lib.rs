//! vigil's PromQL parser: Prometheus 3.14's grammar (duration expressions, `fill()`
//! modifiers, `anchored`/`smoothed`, the trim operators `</` `>/`, quoted UTF-8 names), its
//! type checks, and its error messages with `line:column` positions; plus `or` between
//! label matchers (`{a="1" or b="2"}`), which `promql-parser` accepted and vigil keeps.
//!
//! Hand-written (a lexer and a precedence-climbing parser) rather than taken from the
//! `promql-parser` crate, which lacks most of that grammar and reports no positions; see
//! `docs/dependencies.md`.
//!
//! ```
//! let e = vigil_promql_parser::parse("sum by (job) (rate(http_requests_total[5m]))").unwrap();
//! assert_eq!(e.to_string(), "sum by (job) (rate(http_requests_total[5m]))");
//! let err = vigil_promql_parser::parse("rate(foo)").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"
//! );
//! ```

pub mod ast;
mod check;
pub mod functions;
pub mod json;
mod lexer;
mod parser;
pub mod pretty;
mod printer;

pub use ast::*;
pub use functions::{Function, lookup as lookup_function};
pub use lexer::go_quote_bytes;
pub use parser::{ErrorKind, MAX_CHAIN, MAX_DEPTH, ParseError, parse, parse_metric_selector};
pub use printer::format_duration_ms;
