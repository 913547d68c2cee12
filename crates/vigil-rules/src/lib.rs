//! Recording and alerting rules, and delivery of alerts to Alertmanager.
//!
//! Place in the DAG: above `vigil-model` (it writes through the `Appender` and reads
//! through `Queryable`), `vigil-config` (rule files, `alerting:`), `vigil-promql` (the
//! engine evaluates every rule) and `vigil-scrape` (only for its HTTP client builder, so
//! Alertmanager clients honour `basic_auth`/`tls_config` exactly as scrapes do); below
//! `vigil-api` (which serves `/api/v1/rules` and `/api/v1/alerts` from [`RuleManager`]) and
//! the binary.
//!
//! The key decision is that rule evaluation is a plain synchronous function of
//! (group state, storage, timestamp): [`group::Group::eval`]. The live [`RuleManager`] calls it
//! from one tokio task per group on a blocking thread; `vigil test rules` ([`unittest`]) calls
//! it in a loop over a small in-memory storage with a fake clock; so promtool's unit-test
//! semantics and the server's cannot drift apart. Alerts leave through the [`Notifier`]'s
//! bounded queue, which never blocks evaluation: when it is full the oldest alerts are
//! dropped and counted, as Prometheus does, and firing alerts are re-sent every resend delay
//! so an Alertmanager that was down receives them when it returns.
//!
//! Modules: [`rulefmt`] (rule-file schema and validation), [`template`] (Go's template
//! language; numbers through `vigil_model::gofmt`), [`alerting`] (the alert state machine),
//! [`group`] (groups and their evaluation), [`manager`] (scheduling, reload, for-state restore,
//! self-metrics), [`notifier`] (Alertmanager discovery, queue, delivery), [`unittest`]
//! (promtool's rule unit tests).

pub mod alerting;
mod error;
use vigil_model::gofmt;
pub mod group;
pub mod manager;
pub mod notifier;
pub mod rulefmt;
pub mod template;
pub mod unittest;

pub use alerting::{Alert, AlertState, AlertingRule};
pub use error::RulesError;
pub use group::{Group, Health, Rule, RuleKind};
pub use manager::{ManagerOptions, RuleManager};
pub use notifier::{DiscoveredGroups, Notifier, NotifyAlert};
