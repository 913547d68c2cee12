//! `dns_sd_configs`: Prometheus' `discovery/dns` (v3.14) rebuilt on hickory's wire client.
//!
//! Every `refresh_interval` each name is looked up as Prometheus' `lookupWithSearchPath` does:
//! the resolver configuration is re-read (`/etc/resolv.conf`, parsed as miekg/dns'
//! `ClientConfigFromReader`: `nameserver`, `domain`, `search`, `options ndots:`), the name is
//! expanded with the search list as miekg's `NameList` (a name with more labels than `ndots` is
//! tried as is first, otherwise last; a name ending in `.` only as is), and each candidate is
//! asked of every nameserver in turn, over UDP with EDNS0 (4096 bytes), again over TCP when
//! the answer is truncated, with one attempt and a 2 s timeout per server (miekg's
//! `dns.Client{}` defaults: like Prometheus, vigil parses `timeout:` and `attempts:` but does
//! not use them). A server's answer counts when its RCODE is NOERROR or NXDOMAIN; the first
//! NOERROR answer wins; when every candidate got NXDOMAIN the name has no targets; when any
//! candidate got no viable answer from any server, the lookup fails, the name keeps its
//! previous targets, and the failure is logged and counted
//! (`prometheus_sd_dns_lookup_failures_total`).
//!
//! Targets and labels are Prometheus': `__address__` is `host:port` (IPv6 in brackets, an
//! IPv4-mapped AAAA printed as IPv4 as Go does, trailing dots of SRV/MX/NS targets removed),
//! `__meta_dns_name` the configured name, and `__meta_dns_srv_record_target`,
//! `__meta_dns_srv_record_port`, `__meta_dns_mx_record_target`, `__meta_dns_ns_record_target`
//! the raw record fields (trailing dot kept), empty where the record is of another type (empty
//! labels disappear when the target's labels are built, as in Prometheus 3). CNAME answers are
//! skipped; any other record type is logged and skipped. Each name is one target group whose
//! source is the name.
//!
//! `VIGIL_RESOLV_CONF` replaces `/etc/resolv.conf` (tests and diagnostics); only in that file
//! a `nameserver` may carry a port (`127.0.0.1:5353`, `[::1]:5353`), since resolv.conf syntax
//! has none.

use crate::discovery::SourcedGroup;
use crate::sd_util::join_host_port;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::tcp::TcpClientStream;
use hickory_resolver::net::udp::UdpClientStream;
use hickory_resolver::net::xfer::{DnsExchange, FirstAnswer};
use hickory_resolver::net::{DnsHandle, NetError};
use hickory_resolver::proto::op::{DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vigil_config::{DnsRecordType, DnsSdConfig, ScrapeConfig, TargetGroup};

/// The system resolver configuration Prometheus reads.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Environment variable naming another resolver configuration file (tests, diagnostics).
pub const RESOLV_CONF_ENV: &str = "VIGIL_RESOLV_CONF";
/// miekg/dns' `dns.Client{}` dial, read and write timeout.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);
/// miekg/dns' `dns.DefaultMsgSize`, advertised in EDNS0.
const EDNS_SIZE: u16 = 4096;

static LOOKUPS: AtomicU64 = AtomicU64::new(0);
static LOOKUP_FAILURES: AtomicU64 = AtomicU64::new(0);

/// `prometheus_sd_dns_lookups_total` and `prometheus_sd_dns_lookup_failures_total` in the text
/// format (always present, as Prometheus registers them at start).
pub fn render_metrics() -> String {
    format!(
        "# HELP prometheus_sd_dns_lookup_failures_total The number of DNS-SD lookup failures.\n# TYPE prometheus_sd_dns_lookup_failures_total counter\nprometheus_sd_dns_lookup_failures_total {}\n# HELP prometheus_sd_dns_lookups_total The number of DNS-SD lookups.\n# TYPE prometheus_sd_dns_lookups_total counter\nprometheus_sd_dns_lookups_total {}\n",
        LOOKUP_FAILURES.load(Ordering::Relaxed),
        LOOKUPS.load(Ordering::Relaxed)
    )
}

/// miekg/dns' `ClientConfig`. Servers are kept as written; see [`ResolvConf::server_addr`].
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvConf {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub port: u16,
    pub ndots: usize,
    pub timeout: u32,
    pub attempts: u32,
    /// Whether a `nameserver` may carry a port (only in the `VIGIL_RESOLV_CONF` file).
    pub ports_allowed: bool,
}

impl ResolvConf {
    /// miekg/dns' `ClientConfigFromReader`.
    pub fn parse(text: &str) -> ResolvConf {
        let mut c = ResolvConf {
            servers: Vec::new(),
            search: Vec::new(),
            port: 53,
            ndots: 1,
            timeout: 5,
            attempts: 2,
            ports_allowed: false,
        };
        // Go's strconv.Atoi: 0 on error.
        let atoi = |s: &str| s.parse::<i64>().unwrap_or(0);
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(first) = f.first() else { continue };
            match *first {
                "nameserver" => {
                    if let Some(s) = f.get(1) {
                        c.servers.push(s.to_string());
                    }
                }
                "domain" => c.search = f.get(1).map(|d| vec![d.to_string()]).unwrap_or_default(),
                "search" => c.search = f[1..].iter().map(|s| s.to_string()).collect(),
                "options" => {
                    for s in &f[1..] {
                        if let Some(n) = s.strip_prefix("ndots:") {
                            c.ndots = atoi(n).clamp(0, 15) as usize;
                        } else if let Some(n) = s.strip_prefix("timeout:") {
                            c.timeout = atoi(n).clamp(1, u32::MAX as i64) as u32;
                        } else if let Some(n) = s.strip_prefix("attempts:") {
                            c.attempts = atoi(n).clamp(1, u32::MAX as i64) as u32;
                        }
                    }
                }
                _ => {}
            }
        }
        c
    }

    /// Reads `VIGIL_RESOLV_CONF` if set, else `/etc/resolv.conf`.
    pub fn load() -> Result<ResolvConf, String> {
        let (path, ports_allowed) = match std::env::var_os(RESOLV_CONF_ENV) {
            Some(p) if !p.is_empty() => (std::path::PathBuf::from(p), true),
            _ => (std::path::PathBuf::from(RESOLV_CONF), false),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("could not load resolv.conf: open {}: {e}", path.display()))?;
        Ok(ResolvConf {
            ports_allowed,
            ..ResolvConf::parse(&text)
        })
    }

    /// The socket address of a `nameserver` entry (`JoinHostPort(server, conf.Port)`).
    pub fn server_addr(&self, server: &str) -> Result<SocketAddr, String> {
        if let Ok(ip) = server.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        if self.ports_allowed
            && let Ok(sa) = server.parse::<SocketAddr>()
        {
            return Ok(sa);
        }
        Err(format!("nameserver {server:?} is not an IP address"))
    }

    /// miekg/dns' `NameList`: the names to try, in order.
    pub fn name_list(&self, name: &str) -> Vec<String> {
        if is_fqdn(name) {
            return vec![name.to_string()];
        }
        let has_ndots = count_labels(name) > self.ndots;
        let name = format!("{name}.");
        let mut names = Vec::new();
        if has_ndots {
            names.push(name.clone());
        }
        for s in &self.search {
            names.push(fqdn(&format!("{name}{s}")));
        }
        if !has_ndots {
            names.push(name);
        }
        names
    }
}

/// Whether the name ends in an unescaped dot (miekg's `IsFqdn`).
fn is_fqdn(s: &str) -> bool {
    let Some(rest) = s.strip_suffix('.') else {
        return false;
    };
    let backslashes = rest.len() - rest.trim_end_matches('\\').len();
    backslashes % 2 == 0
}

fn fqdn(s: &str) -> String {
    if is_fqdn(s) {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

/// miekg's `CountLabel` for a name that is not fully qualified: unescaped dots plus one.
fn count_labels(s: &str) -> usize {
    if s == "." {
        return 0;
    }
    let mut labels = 1;
    let mut escaped = false;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' if !escaped => escaped = true,
            b'.' if !escaped && i + 1 < bytes.len() => {
                labels += 1;
            }
            _ => escaped = false,
        }
        if b != b'\\' {
            escaped = false;
        }
    }
    labels
}

/// One DNS answer record, as the target builder needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Srv { target: String, port: u16 },
    Mx { exchange: String },
    Ns { ns: String },
    A(std::net::Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Cname,
    Other(String),
}

impl Answer {
    fn from_record(r: &Record) -> Answer {
        match &r.data {
            RData::SRV(s) => Answer::Srv {
                target: s.target.to_ascii(),
                port: s.port,
            },
            RData::MX(m) => Answer::Mx {
                exchange: m.exchange.to_ascii(),
            },
            RData::NS(n) => Answer::Ns { ns: n.0.to_ascii() },
            RData::A(a) => Answer::A(a.0),
            RData::AAAA(a) => Answer::Aaaa(a.0),
            RData::CNAME(_) => Answer::Cname,
            _ => Answer::Other(r.to_string()),
        }
    }
}

/// A discovered target group: one per name, `source` the name, each target its own labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DnsGroup {
    pub source: String,
    pub targets: Vec<BTreeMap<String, String>>,
}

/// Go's `IP.String()` of an AAAA address: IPv4-mapped addresses print as IPv4.
fn ipv6_string(ip: &std::net::Ipv6Addr) -> String {
    match ip.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => ip.to_string(),
    }
}

/// Prometheus' `refreshOne` after the lookup: the target group of one name.
pub fn build_group(name: &str, answers: &[Answer], port: i64) -> DnsGroup {
    let mut targets = Vec::new();
    for a in answers {
        let (mut srv_target, mut srv_port, mut mx_target, mut ns_target) =
            (String::new(), String::new(), String::new(), String::new());
        let address = match a {
            Answer::Srv { target, port } => {
                srv_target = target.clone();
                srv_port = port.to_string();
                join_host_port(target.trim_end_matches('.'), *port as i64)
            }
            Answer::Mx { exchange } => {
                mx_target = exchange.clone();
                join_host_port(exchange.trim_end_matches('.'), port)
            }
            Answer::Ns { ns } => {
                ns_target = ns.clone();
                join_host_port(ns.trim_end_matches('.'), port)
            }
            Answer::A(ip) => join_host_port(&ip.to_string(), port),
            Answer::Aaaa(ip) => join_host_port(&ipv6_string(ip), port),
            Answer::Cname => continue,
            Answer::Other(record) => {
                tracing::warn!(%record, "Invalid record");
                continue;
            }
        };
        targets.push(BTreeMap::from([
            ("__address__".to_string(), address),
            ("__meta_dns_name".to_string(), name.to_string()),
            ("__meta_dns_srv_record_target".to_string(), srv_target),
            ("__meta_dns_srv_record_port".to_string(), srv_port),
            ("__meta_dns_mx_record_target".to_string(), mx_target),
            ("__meta_dns_ns_record_target".to_string(), ns_target),
        ]));
    }
    DnsGroup {
        source: name.to_string(),
        targets,
    }
}

fn record_type(t: DnsRecordType) -> RecordType {
    match t {
        DnsRecordType::Srv => RecordType::SRV,
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Ns => RecordType::NS,
    }
}

/// miekg's `Client.Exchange` of one question with one server; over TCP when `tcp`.
async fn exchange(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    tcp: bool,
) -> Result<DnsResponse, String> {
    let provider = TokioRuntimeProvider::new();
    // The provider's handle owns the connection's background task: keep it alive until the
    // answer is in (hickory's TCP exchange drops its own copy when it returns).
    let _tasks = provider.clone();
    let handle: DnsExchange<TokioRuntimeProvider> = if tcp {
        TcpClientStream::exchange(server, None, EXCHANGE_TIMEOUT, None, provider)
            .await
            .map_err(|e| e.to_string())?
    } else {
        UdpClientStream::builder(server, provider)
            .with_timeout(Some(EXCHANGE_TIMEOUT))
            .with_max_retries(0)
            .exchange()
    };
    let mut options = DnsRequestOptions::default();
    options.use_edns = !tcp;
    options.edns_payload_len = EDNS_SIZE;
    options.recursion_desired = true;
    let stream = handle.lookup(Query::query(name.clone(), qtype), options);
    // The exchange has its own timeout; this one bounds a server that never answers at all.
    tokio::time::timeout(
        EXCHANGE_TIMEOUT + Duration::from_millis(500),
        stream.first_answer(),
    )
    .await
    .map_err(|_| format!("read {server}: i/o timeout"))?
    .map_err(|e: NetError| e.to_string())
}

/// Prometheus' `askServerForName`: UDP first, TCP when truncated.
async fn ask_server_for_name(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
) -> Result<DnsResponse, String> {
    let r = exchange(server, name, qtype, false).await?;
    if !r.metadata.truncation {
        return Ok(r);
    }
    let r = exchange(server, name, qtype, true).await?;
    if r.metadata.truncation {
        return Err("got truncated message on TCP (64kiB limit exceeded?)".into());
    }
    Ok(r)
}

/// Prometheus' `lookupFromAnyServer`.
async fn lookup_from_any_server(
    conf: &ResolvConf,
    name: &str,
    qtype: RecordType,
) -> Result<DnsResponse, String> {
    let parsed = Name::from_ascii(name);
    for server in &conf.servers {
        let res = match (&parsed, conf.server_addr(server)) {
            (Err(e), _) => Err(format!("invalid name {name:?}: {e}")),
            (_, Err(e)) => Err(e),
            (Ok(n), Ok(addr)) => ask_server_for_name(addr, n, qtype).await,
        };
        match res {
            Err(err) => {
                tracing::warn!(server, name, err, "DNS resolution failed");
            }
            Ok(msg)
                if msg.metadata.response_code == ResponseCode::NoError
                    || msg.metadata.response_code == ResponseCode::NXDomain =>
            {
                return Ok(msg);
            }
            Ok(_) => {}
        }
    }
    Err(format!(
        "could not resolve {name}: no servers returned a viable answer"
    ))
}

/// Prometheus' `lookupWithSearchPath`: the answer records of the first name in the search
/// list that exists, none if every name is NXDOMAIN, an error if any name got no viable answer.
pub async fn lookup_with_search_path(
    conf: &ResolvConf,
    name: &str,
    qtype: DnsRecordType,
) -> Result<Vec<Answer>, String> {
    let mut all_valid = true;
    for lname in conf.name_list(name) {
        match lookup_from_any_server(conf, &lname, record_type(qtype)).await {
            Err(_) => all_valid = false,
            Ok(r) if r.metadata.response_code == ResponseCode::NoError => {
                return Ok(r.answers.iter().map(Answer::from_record).collect());
            }
            Ok(_) => {}
        }
    }
    if all_valid {
        return Ok(Vec::new());
    }
    Err(format!(
        "could not resolve {name:?}: all servers responded with errors to at least one search domain"
    ))
}

/// What is looked up: one name of one `dns_sd_configs` entry. Entries that ask the same
/// question at the same interval share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsKey {
    pub name: String,
    pub qtype: DnsRecordType,
    pub port: i64,
    pub interval: Duration,
}

impl DnsKey {
    fn of(sd: &DnsSdConfig) -> impl Iterator<Item = DnsKey> + '_ {
        sd.names.iter().map(|n| DnsKey {
            name: n.clone(),
            qtype: sd.qtype(),
            port: sd.port,
            interval: sd.refresh_interval.to_std(),
        })
    }
}

/// Prometheus' `refreshOne`: looks the name up and counts it.
pub async fn refresh(key: &DnsKey) -> Result<DnsGroup, String> {
    let res = match ResolvConf::load() {
        Ok(conf) => lookup_with_search_path(&conf, &key.name, key.qtype).await,
        Err(e) => Err(e),
    };
    LOOKUPS.fetch_add(1, Ordering::Relaxed);
    match res {
        Ok(answers) => Ok(build_group(&key.name, &answers, key.port)),
        Err(e) => {
            LOOKUP_FAILURES.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

#[derive(Default)]
struct DnsEntry {
    started_at: Option<Instant>,
    in_flight: bool,
    group: Option<DnsGroup>,
}

/// The last good target group of every DNS name.
#[derive(Default)]
pub struct DnsCache {
    entries: HashMap<DnsKey, DnsEntry>,
}

impl DnsCache {
    /// The target groups of a scrape config's `dns_sd_configs`, one `SourcedGroup` per target
    /// (each DNS target has its own `__meta_dns_*` labels).
    pub fn groups(&self, sc: &ScrapeConfig) -> Vec<SourcedGroup> {
        let mut out = Vec::new();
        for sd in &sc.dns_sd_configs {
            for key in DnsKey::of(sd) {
                let Some(g) = self.entries.get(&key).and_then(|e| e.group.as_ref()) else {
                    continue;
                };
                for t in &g.targets {
                    let mut meta = t.clone();
                    let addr = meta.remove("__address__").unwrap_or_default();
                    out.push(SourcedGroup {
                        group: TargetGroup {
                            targets: vec![addr],
                            labels: BTreeMap::new(),
                        },
                        meta,
                    });
                }
            }
        }
        out
    }

    /// The names due for a lookup (first time, or their refresh interval passed and none is
    /// running), marked as running; forgets names no config asks for any more.
    pub fn due(&mut self, configs: &[ScrapeConfig]) -> Vec<DnsKey> {
        let keys: Vec<DnsKey> = configs
            .iter()
            .flat_map(|sc| &sc.dns_sd_configs)
            .flat_map(DnsKey::of)
            .collect();
        self.entries.retain(|k, _| keys.contains(k));
        let mut out = Vec::new();
        for key in keys {
            let e = self.entries.entry(key.clone()).or_default();
            let due = !e.in_flight && e.started_at.is_none_or(|t| t.elapsed() >= key.interval);
            if due {
                e.in_flight = true;
                e.started_at = Some(Instant::now());
                out.push(key);
            }
        }
        out
    }

    /// Stores a lookup's outcome; answers whether the name's targets changed. A failed lookup
    /// keeps the previous targets, as Prometheus does.
    pub fn store(&mut self, key: &DnsKey, result: Result<DnsGroup, String>) -> bool {
        let Some(e) = self.entries.get_mut(key) else {
            return false;
        };
        e.in_flight = false;
        match result {
            Ok(g) => {
                let changed = e.group.as_ref() != Some(&g);
                e.group = Some(g);
                changed
            }
            Err(err) => {
                tracing::error!(name = %key.name, error = %err, "Error refreshing DNS targets; keeping the last good ones");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{Message, OpCode};
    use hickory_resolver::proto::rr::rdata::A;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn labels(address: &str, name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([
            ("__address__".to_string(), address.to_string()),
            ("__meta_dns_name".to_string(), name.to_string()),
            ("__meta_dns_srv_record_target".to_string(), String::new()),
            ("__meta_dns_srv_record_port".to_string(), String::new()),
            ("__meta_dns_mx_record_target".to_string(), String::new()),
            ("__meta_dns_ns_record_target".to_string(), String::new()),
        ]);
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn resolv_conf_is_read_as_miekg_does() {
        let c = ResolvConf::parse(
            "# comment\nnameserver 10.0.0.1\nnameserver ::1 # trailing\nnameserver\ndomain a.example\nsearch b.example c.example\noptions ndots:3 timeout:0 attempts:4 rotate\n",
        );
        assert_eq!(c.servers, ["10.0.0.1", "::1"]);
        assert_eq!(c.search, ["b.example", "c.example"]);
        assert_eq!((c.port, c.ndots, c.timeout, c.attempts), (53, 3, 1, 4));
        // `domain` after `search` replaces it; ndots is clamped to 0..=15, junk is 0.
        let c = ResolvConf::parse("search x y\ndomain z\noptions ndots:99\n");
        assert_eq!((c.search.as_slice(), c.ndots), (&["z".to_string()][..], 15));
        assert_eq!(ResolvConf::parse("options ndots:x").ndots, 0);
        let d = ResolvConf::parse("");
        assert_eq!((d.ndots, d.timeout, d.attempts), (1, 5, 2));
        // Addresses: port 53; a port only in the override file.
        assert_eq!(
            c.server_addr("::1").unwrap(),
            "[::1]:53".parse::<SocketAddr>().unwrap()
        );
        assert!(c.server_addr("127.0.0.1:5353").is_err());
        let o = ResolvConf {
            ports_allowed: true,
            ..c
        };
        assert_eq!(
            o.server_addr("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse::<SocketAddr>().unwrap()
        );
        assert!(o.server_addr("dns.example").is_err());
    }

    #[test]
    fn search_list_follows_miekg_name_list() {
        let c = ResolvConf::parse("search svc.local local\n");
        assert_eq!(c.name_list("x.example.com."), ["x.example.com."]);
        // One label is not more than ndots 1: search domains first, the name last.
        assert_eq!(c.name_list("web"), ["web.svc.local.", "web.local.", "web."]);
        // Two labels: the name first.
        assert_eq!(
            c.name_list("_p._tcp"),
            ["_p._tcp.", "_p._tcp.svc.local.", "_p._tcp.local."]
        );
        let c = ResolvConf::parse("search a\noptions ndots:0\n");
        assert_eq!(c.name_list("web"), ["web.", "web.a."]);
        let c = ResolvConf::parse("search a.\noptions ndots:5\n");
        assert_eq!(c.name_list("a.b.c"), ["a.b.c.a.", "a.b.c."]);
        assert_eq!(count_labels(r"a\.b.c"), 2);
        assert!(!is_fqdn(r"a\."));
        assert!(is_fqdn(r"a\\."));
    }

    #[test]
    fn targets_and_labels_are_prometheus_ones() {
        let g = build_group(
            "_prom._tcp.example.com",
            &[
                Answer::Srv {
                    target: "node1.example.com.".into(),
                    port: 9100,
                },
                Answer::Srv {
                    target: ".".into(),
                    port: 1,
                },
                Answer::Cname,
                Answer::Other("x. 60 IN TXT \"y\"".into()),
            ],
            0,
        );
        assert_eq!(g.source, "_prom._tcp.example.com");
        assert_eq!(
            g.targets,
            [
                labels(
                    "node1.example.com:9100",
                    "_prom._tcp.example.com",
                    &[
                        ("__meta_dns_srv_record_target", "node1.example.com."),
                        ("__meta_dns_srv_record_port", "9100")
                    ]
                ),
                labels(
                    ":1",
                    "_prom._tcp.example.com",
                    &[
                        ("__meta_dns_srv_record_target", "."),
                        ("__meta_dns_srv_record_port", "1")
                    ]
                ),
            ]
        );
        let g = build_group(
            "h",
            &[
                Answer::A(Ipv4Addr::new(10, 0, 0, 1)),
                Answer::Aaaa("2001:db8::1".parse().unwrap()),
                Answer::Aaaa(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped()),
                Answer::Aaaa(Ipv6Addr::LOCALHOST),
            ],
            9100,
        );
        let addrs: Vec<&str> = g
            .targets
            .iter()
            .map(|t| t["__address__"].as_str())
            .collect();
        assert_eq!(
            addrs,
            [
                "10.0.0.1:9100",
                "[2001:db8::1]:9100",
                "192.0.2.7:9100",
                "[::1]:9100"
            ]
        );
        assert_eq!(g.targets[0], labels("10.0.0.1:9100", "h", &[]));
        let g = build_group(
            "example.com",
            &[
                Answer::Mx {
                    exchange: "mail.example.com.".into(),
                },
                Answer::Ns {
                    ns: "ns1.example.com.".into(),
                },
            ],
            25,
        );
        assert_eq!(
            g.targets,
            [
                labels(
                    "mail.example.com:25",
                    "example.com",
                    &[("__meta_dns_mx_record_target", "mail.example.com.")]
                ),
                labels(
                    "ns1.example.com:25",
                    "example.com",
                    &[("__meta_dns_ns_record_target", "ns1.example.com.")]
                ),
            ]
        );
    }

    fn scrape_config(sd: &str) -> ScrapeConfig {
        let yaml = format!("scrape_configs:\n  - job_name: d\n    dns_sd_configs:\n{sd}");
        vigil_config::load_str(&yaml, std::path::Path::new("/tmp/d.yml"))
            .unwrap()
            .config
            .scrape_configs
            .remove(0)
    }

    #[test]
    fn cache_keeps_the_last_good_group_of_a_failing_name() {
        let sc = scrape_config("      - names: [a, b]\n        type: A\n        port: 80\n");
        let configs = std::slice::from_ref(&sc);
        let mut cache = DnsCache::default();
        let due = cache.due(configs);
        assert_eq!(due.len(), 2);
        assert!(cache.due(configs).is_empty(), "in flight and not yet due");
        let a = build_group("a", &[Answer::A(Ipv4Addr::new(10, 0, 0, 1))], 80);
        assert!(cache.store(&due[0], Ok(a.clone())));
        assert!(!cache.store(&due[1], Err("boom".into())));
        let groups = cache.groups(&sc);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].group.targets, ["10.0.0.1:80"]);
        assert_eq!(groups[0].meta["__meta_dns_name"], "a");
        assert!(!groups[0].meta.contains_key("__address__"));
        // A failure later keeps the targets; an empty answer (NXDOMAIN) clears them.
        assert!(!cache.store(&due[0], Err("boom".into())));
        assert_eq!(cache.groups(&sc).len(), 1);
        assert!(cache.store(&due[0], Ok(build_group("a", &[], 80))));
        assert!(cache.groups(&sc).is_empty());
        // A name no config names any more is forgotten.
        let other = scrape_config("      - names: [c]\n");
        assert_eq!(cache.due(std::slice::from_ref(&other)).len(), 1);
        assert!(cache.groups(&sc).is_empty());
    }

    /// A DNS server on loopback: `ok.test.` has an A record, `trunc.test.` is truncated over
    /// UDP and answered over TCP, names under `fail.test.` get SERVFAIL, the rest NXDOMAIN.
    async fn fake_server() -> SocketAddr {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
        fn answer(req: &[u8], udp: bool) -> Vec<u8> {
            let q = Message::from_vec(req).unwrap();
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            let query = q.queries[0].clone();
            let name = query.name().to_ascii();
            r.add_query(query.clone());
            if name == "ok.test." || name == "trunc.test." {
                if name == "trunc.test." && udp {
                    r.metadata.truncation = true;
                } else {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        60,
                        RData::A(A(Ipv4Addr::new(10, 1, 2, 3))),
                    ));
                }
            } else if name.ends_with("fail.test.") {
                r.metadata.response_code = ResponseCode::ServFail;
            } else {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            r.to_vec().unwrap()
        }
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let _ = udp.send_to(&answer(&buf[..n], true), from).await;
            }
        });
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while s.read_exact(&mut len).await.is_ok() {
                        let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
                        if s.read_exact(&mut req).await.is_err() {
                            return;
                        }
                        let resp = answer(&req, false);
                        let mut out = (resp.len() as u16).to_be_bytes().to_vec();
                        out.extend(resp);
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn lookup_follows_prometheus_search_and_fallback_logic() {
        let addr = fake_server().await;
        let conf = |search: &str| ResolvConf {
            ports_allowed: true,
            ..ResolvConf::parse(&format!("nameserver {addr}\nsearch {search}\n"))
        };
        let ok = [Answer::A(Ipv4Addr::new(10, 1, 2, 3))];
        // Found through the search list.
        let c = conf("nope.test test");
        assert_eq!(
            lookup_with_search_path(&c, "ok", DnsRecordType::A)
                .await
                .unwrap(),
            ok
        );
        // Truncated over UDP, answered over TCP.
        assert_eq!(
            lookup_with_search_path(&c, "trunc.test.", DnsRecordType::A)
                .await
                .unwrap(),
            ok
        );
        // NXDOMAIN for every candidate: no targets, no error.
        assert!(
            lookup_with_search_path(&c, "missing", DnsRecordType::A)
                .await
                .unwrap()
                .is_empty()
        );
        // SERVFAIL for one candidate and NXDOMAIN for the others: an error.
        let c = conf("fail.test");
        let e = lookup_with_search_path(&c, "x", DnsRecordType::A)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            "could not resolve \"x\": all servers responded with errors to at least one search domain"
        );
        // ... unless a later candidate exists.
        let c = conf("fail.test test");
        assert_eq!(
            lookup_with_search_path(&c, "ok", DnsRecordType::A)
                .await
                .unwrap(),
            ok
        );
        // A dead server first, then a working one.
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = ResolvConf {
            ports_allowed: true,
            ..ResolvConf::parse(&format!(
                "nameserver {}\nnameserver not-an-ip\nnameserver {addr}\n",
                dead.local_addr().unwrap()
            ))
        };
        drop(dead);
        assert_eq!(
            lookup_with_search_path(&c, "ok.test", DnsRecordType::A)
                .await
                .unwrap(),
            ok
        );
        // No nameserver at all: an error.
        let c = ResolvConf::parse("");
        assert!(
            lookup_with_search_path(&c, "ok.test", DnsRecordType::A)
                .await
                .is_err()
        );
    }
}
