//! Kafka, through librdkafka: client settings, the reachability check, topic creation, a
//! counting producer (trades for `simulate --brokers`, windows and dead letters for the
//! aggregator), and the decoding of one trade message into the trades/rejects builders.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::bindings::rd_kafka_flush;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, PurgeConfig};
use rdkafka::ClientContext;

use super::decode::{self, Field, RawTrade, Scalar};
use super::{csv, DecodeStats, LineReader, SourceError};
use crate::model::{Reject, RejectBuilder, RejectReason, SourcePos, TradeBuilder};
use crate::venue::Registry;

mod reports;
mod topic_id;
use reports::ReportedProducer;
pub use topic_id::TopicId;

/// The original system's topics.
pub const TRADES_TOPIC: &str = "finra-ats-raw";
pub const WINDOWS_TOPIC: &str = "dark-pool-heatmap-data";

/// How to reach the brokers.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// `bootstrap.servers`: HOST:PORT[,HOST:PORT...].
    pub brokers: String,
    /// librdkafka settings (`-X key=value`), applied last so they override darkpool's.
    pub settings: Vec<(String, String)>,
    /// How long to keep trying to reach the brokers at start.
    pub connect_timeout: Duration,
}

impl KafkaOptions {
    pub fn new(brokers: impl Into<String>) -> KafkaOptions {
        KafkaOptions {
            brokers: brokers.into(),
            settings: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// A client configuration: the brokers, darkpool's `defaults`, then the user's settings.
    pub fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        // rdkafka sets librdkafka's log level from the `log` crate's, which darkpool (on
        // tracing) leaves unset: only errors came through, never a warning (an offset reset,
        // a request timing out) nor what `-X debug=...` asks for.
        config.set_log_level(
            if tracing::enabled!(target: "darkpool::source::kafka", tracing::Level::DEBUG) {
                rdkafka::config::RDKafkaLogLevel::Debug
            } else {
                rdkafka::config::RDKafkaLogLevel::Warning
            },
        );
        config
    }
}

/// `key=value` of `-X` (librdkafka setting names, as in kcat and librdkafka's CONFIGURATION.md).
pub fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "{text:?} is not key=value (a librdkafka setting, e.g. -X security.protocol=SASL_SSL)"
        )),
    }
}

/// Why a commit waits for the lake, said where a setting would undo it.
const COMMITS: &str = "offsets are committed only once the lake holds what they cover; \
    committed by librdkafka on its own, they could run ahead of the lake, and a restart with \
    --start committed would skip what a crash kept out of it";
/// Why producers are idempotent with acks=all.
const DELIVERY: &str = "the producers are idempotent and wait for every in-sync replica, \
    so a retried send is written once and an acknowledged one is not lost";

/// Why assignors of both kinds cannot be mixed.
const ASSIGNORS: &str = "a member's assignors must all rebalance the same way (range and \
    roundrobin eagerly, cooperative-sticky incrementally); cooperative-sticky alone is taken too";
/// Why the consumer group protocol of KIP-848 is refused.
const CLASSIC: &str = "the aggregator is built and tested on the classic group protocol only \
    (its test broker has no KIP-848 consumer groups); cooperative-sticky gives incremental \
    rebalancing on it";

/// What a user setting of a key darkpool makes itself may say.
#[derive(Clone, Copy)]
enum Allowed {
    /// Nothing: a flag says it.
    Nothing,
    /// Only darkpool's own value.
    Only(&'static str),
    /// `all`, or `-1`, its number.
    AllReplicas,
    /// Eager assignors (`range`, `roundrobin`, in any order), or `cooperative-sticky` alone.
    Assignors,
}

/// librdkafka settings darkpool makes itself, because its flags or its guarantees rest on them:
/// the name, what a user setting of it may say, and why. Given with `-X` or `DARKPOOL_KAFKA_*`
/// they would override darkpool's own without a word (user settings come last in
/// [`KafkaOptions::config`]).
const OWN_SETTINGS: [(&str, Allowed, &str); 13] = [
    ("bootstrap.servers", Allowed::Nothing, "--brokers says"),
    ("metadata.broker.list", Allowed::Nothing, "--brokers says"),
    ("group.id", Allowed::Nothing, "--group says"),
    (
        "auto.offset.reset",
        Allowed::Nothing,
        "--start says where reading begins, and a position the broker no longer has resumes at its log's start (losing only what it deleted)",
    ),
    ("enable.auto.commit", Allowed::Only("false"), COMMITS),
    ("auto.commit.enable", Allowed::Only("false"), COMMITS),
    ("enable.auto.offset.store", Allowed::Only("false"), COMMITS),
    (
        "enable.partition.eof",
        Allowed::Only("true"),
        "--until-end and the watermark alignment learn that a partition is read to its end \
         from librdkafka's end-of-partition events",
    ),
    ("enable.idempotence", Allowed::Only("true"), DELIVERY),
    ("acks", Allowed::AllReplicas, DELIVERY),
    ("request.required.acks", Allowed::AllReplicas, DELIVERY),
    ("partition.assignment.strategy", Allowed::Assignors, ASSIGNORS),
    ("group.protocol", Allowed::Only("classic"), CLASSIC),
];

/// Refuse a setting of [`OWN_SETTINGS`] that would change darkpool's value.
pub fn check_settings(settings: &[(String, String)]) -> Result<(), String> {
    for (key, value) in settings {
        let Some((_, allowed, why)) = OWN_SETTINGS.iter().find(|(name, ..)| name == key) else {
            continue;
        };
        let given = value.trim().to_ascii_lowercase();
        let (taken, sets) = match *allowed {
            Allowed::Nothing => (false, String::new()),
            Allowed::AllReplicas => (given == "all" || given == "-1", " to all".into()),
            Allowed::Only(own) => (given == own, format!(" to {own}")),
            Allowed::Assignors => (
                given.trim() == "cooperative-sticky"
                    || given
                        .split(',')
                        .all(|s| matches!(s.trim(), "range" | "roundrobin")),
                " to range,roundrobin".into(),
            ),
        };
        if !taken {
            return Err(format!(
                "the Kafka setting {key}={value} (from -X or a DARKPOOL_KAFKA_ variable) is refused: darkpool sets {key}{sets} itself, as {why}"
            ));
        }
    }
    check_kerberos(settings)
}

/// Kerberos (SASL mechanism GSSAPI) needs librdkafka built against Cyrus SASL, which only the
/// `gssapi` feature does: without it librdkafka refuses the client, saying to recompile
/// librdkafka. GSSAPI is also librdkafka's mechanism when a SASL protocol names none.
fn check_kerberos(settings: &[(String, String)]) -> Result<(), String> {
    if cfg!(feature = "gssapi") {
        return Ok(());
    }
    let last = |names: &[&str]| {
        (settings.iter().rev())
            .find(|(key, _)| names.contains(&key.as_str()))
            .map(|(_, value)| value.trim())
    };
    let sasl = last(&["security.protocol"])
        .is_some_and(|protocol| protocol.to_ascii_lowercase().starts_with("sasl_"));
    let mechanism = last(&["sasl.mechanism", "sasl.mechanisms"]);
    if !sasl || mechanism.is_some_and(|m| !m.eq_ignore_ascii_case("gssapi")) {
        return Ok(());
    }
    let given = match mechanism {
        Some(m) => format!("sasl.mechanism={m}"),
        None => "a SASL security.protocol with no sasl.mechanism (librdkafka then uses GSSAPI)"
            .to_string(),
    };
    Err(format!(
        "{given} asks for Kerberos, which this darkpool was built without: build it with `cargo build --release --features gssapi` (librdkafka then uses the system's Cyrus SASL; Debian: apt-get install libsasl2-dev), or set another sasl.mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
    ))
}

/// Longest topic name Kafka takes.
const MAX_TOPIC_CHARS: usize = 249;

/// A topic name as Kafka's own brokers take it: 1 to 249 of `a-z A-Z 0-9 . _ -`, not `.` or
/// `..`. Brokers that take more (tansu takes `a/b`) would otherwise let a name lead the
/// lake's per-topic offset files (`_offsets/<topic>/`) into other folders.
pub fn check_topic(flag: &str, name: &str) -> Result<(), String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let why = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "Kafka does not take . or .. as topic names"
    } else if name.len() > MAX_TOPIC_CHARS {
        "Kafka topic names are at most 249 characters"
    } else if !name.chars().all(legal) {
        "Kafka topic names are letters, digits, '.', '_' and '-'"
    } else {
        return Ok(());
    };
    Err(format!("{flag} {name:?} is not a topic name: {why}"))
}

/// Settings from the environment: `DARKPOOL_KAFKA_<NAME>` becomes `name` with `_` as `.`
/// (`DARKPOOL_KAFKA_SASL_USERNAME=u` -> `sasl.username=u`), as Kafka Connect's images do.
pub fn env_settings() -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = std::env::vars()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix("DARKPOOL_KAFKA_")?;
            Some((key.to_ascii_lowercase().replace('_', "."), value))
        })
        .collect();
    settings.sort();
    settings
}

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot reach Kafka at {brokers} (tried for {waited:.0?}): {detail}. Is the broker running and is --brokers right? (--connect-timeout waits longer)")]
    Unreachable {
        brokers: String,
        waited: Duration,
        detail: String,
    },
    #[error("Kafka at {brokers} answers, but the broker address(es) it gives its clients, {advertised}, cannot be reached from here (tried for {waited:.0?}): the brokers' advertised.listeners (KAFKA_ADVERTISED_LISTENERS with Docker) must name an address this machine reaches")]
    Advertised {
        brokers: String,
        advertised: String,
        waited: Duration,
    },
    #[error("topic {topic} is not available at {brokers} (tried for {waited:.0?}): {detail}. Is --topic right? (--until-end reads to the end offsets the topic has at the start, so it must exist; without it the aggregator waits for the topic)")]
    TopicUnavailable {
        topic: String,
        brokers: String,
        waited: Duration,
        detail: String,
    },
    #[error("partition {partition} of {topic} starts again below the lake's end for it: the lake holds its offsets up to {last_landed}, and the broker now gives offset {first} as the first to read. The topic was deleted and created again, the broker lost its data (a Kafka without a data volume, restarted), or a replica without the newest messages became the leader (an unclean election). Reading on would skip its messages up to offset {last_landed} as already landed, so none of them was landed (what was read before them was). {}", land_as_new(.topic))]
    LogRestarted {
        topic: String,
        partition: i32,
        /// The last offset the lake holds (one below its end).
        last_landed: i64,
        /// The offset the broker delivered first, after it reset the position.
        first: i64,
    },
    #[error("topic {topic} is not the topic this lake read: the lake's offsets of it are of topic id {landed}, and the brokers' topic {topic} is id {now}, so it was deleted and created again since. Its offsets start again, so reading on from the lake's end would skip its messages as already landed, so nothing of it was read. {}", land_as_new(.topic))]
    TopicRecreated {
        topic: String,
        /// The id the lake recorded with the topic's offsets.
        landed: String,
        /// The id the brokers give it now.
        now: String,
    },
    #[error("Kafka refused {what}: {code}. {remedy}")]
    Refused {
        what: String,
        code: RDKafkaErrorCode,
        /// What to do about it.
        remedy: &'static str,
    },
    #[error("Kafka client setting rejected: {0} (check -X / DARKPOOL_KAFKA_* settings)")]
    Config(RdError),
    #[error("Kafka {what}: {source}")]
    Client { what: &'static str, source: RdError },
    #[error("creating topic {topic}: {detail}")]
    CreateTopic { topic: String, detail: String },
    #[error("starting the Kafka producer: {0}")]
    Producer(String),
    #[error("stopped by Ctrl-C or SIGTERM")]
    Stopped,
    #[error("{failed} message(s) to {topic} were not delivered; first error: {first}")]
    Delivery {
        topic: String,
        failed: u64,
        first: String,
        /// The first error's code (what tells a broker outage from a refusal).
        code: Option<RDKafkaErrorCode>,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path} line {line} ({bytes} bytes) was not sent: {source}{hint}", path = path.display())]
    Replay {
        path: std::path::PathBuf,
        line: u64,
        bytes: usize,
        source: Box<KafkaError>,
        /// What to do about it, when known.
        hint: &'static str,
    },
}

/// What to do when a topic's log started again under the lake's offsets of it.
fn land_as_new(topic: &str) -> String {
    format!(
        "To land the topic as it is now: ingest it into another lake (--lake), or keep this \
         lake's trades and move its folder _offsets/{topic} away, so that the topic is read as a \
         new log from --start"
    )
}

impl KafkaError {
    /// Messages not delivered because the brokers were out of reach or had no leader for a
    /// while (the producer gave up at `message.timeout.ms`): a later run may well deliver them.
    /// A refusal (too large, an ACL, a missing topic) is not transient.
    pub fn is_transient(&self) -> bool {
        use RDKafkaErrorCode as C;
        matches!(
            self,
            KafkaError::Delivery {
                code: Some(
                    C::MessageTimedOut
                        | C::AllBrokersDown
                        | C::BrokerTransportFailure
                        | C::RequestTimedOut
                        | C::OperationTimedOut
                        | C::NetworkException
                        | C::BrokerNotAvailable
                        | C::LeaderNotAvailable
                        | C::NotLeaderForPartition
                        | C::NotEnoughReplicas
                        | C::NotEnoughReplicasAfterAppend
                        | C::KafkaStorageError
                ),
                ..
            }
        )
    }

    /// The brokers did not answer (or answered with addresses out of reach).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            KafkaError::Unreachable { .. } | KafkaError::Advertised { .. }
        )
    }

    /// The producer refused a message as larger than `message.max.bytes`.
    fn is_too_large(&self) -> bool {
        matches!(
            self,
            KafkaError::Client {
                source: RdError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                ..
            }
        )
    }
}

/// Wait until the brokers answer a metadata request, or fail after `connect_timeout`. With a
/// `topic`, also until they list it without an error: still missing then, it is an error too
/// (a reader that stops at the end offsets seen at its start would otherwise wait for ever).
pub fn check_reachable(options: &KafkaOptions, topic: Option<&str>) -> Result<(), KafkaError> {
    let consumer: BaseConsumer<Reaching> = options
        .config(&[])
        .create_with_context(Reaching::default())
        .map_err(KafkaError::Config)?;
    // What librdkafka last said went wrong: the cause ("SSL handshake failed", "SASL
    // authentication error", a wrong security.protocol), which the metadata request's own
    // error ("broker transport failure") does not give.
    let cause = |detail: String| {
        // Errors reach the context when the client's queue is served.
        let _ = consumer.poll(Duration::ZERO);
        match consumer.context().last.lock() {
            Ok(last) => match (last.as_deref(), tls_protocol(&options.settings)) {
                (Some(reason), _) => format!("{detail}; librdkafka said: {reason}"),
                // A plaintext listener never answers a TLS handshake: librdkafka says nothing
                // until its 30 s connection setup timeout.
                (None, Some(protocol)) => format!(
                    "{detail}; no answer to the TLS handshake (security.protocol={protocol}): a plaintext listener gives none"
                ),
                (None, None) => detail,
            },
            Err(_) => detail,
        }
    };
    let started = Instant::now();
    // Once the advertised addresses failed, librdkafka sends its metadata requests there, and
    // they time out: the addresses stay the cause.
    let mut unreachable_advertised = None;
    loop {
        let left = options.connect_timeout.saturating_sub(started.elapsed());
        let failure = match consumer.fetch_metadata(
            topic,
            left.clamp(Duration::from_millis(200), Duration::from_secs(2)),
        ) {
            Ok(metadata) if metadata.brokers().is_empty() => KafkaError::Unreachable {
                brokers: options.brokers.clone(),
                waited: started.elapsed(),
                detail: "the cluster lists no brokers".into(),
            },
            // The bootstrap address answers, but every later connection goes to the addresses
            // the brokers advertise: none reachable (a Docker broker advertising its container
            // name), librdkafka retries for ever, silently. An advertised address that is one
            // of --brokers just answered; others are tried with a bare TCP connection.
            Ok(metadata)
                if !metadata.brokers().iter().any(|b| {
                    let address = format!("{}:{}", b.host(), b.port());
                    options
                        .brokers
                        .split(',')
                        .any(|given| given.trim() == address)
                        || connects(b.host(), b.port(), left)
                }) =>
            {
                let advertised: Vec<String> = metadata
                    .brokers()
                    .iter()
                    .map(|b| format!("{}:{}", b.host(), b.port()))
                    .collect();
                unreachable_advertised = Some(advertised.join(", "));
                KafkaError::Advertised {
                    brokers: options.brokers.clone(),
                    advertised: advertised.join(", "),
                    waited: started.elapsed(),
                }
            }
            // A consumer's metadata request never creates the topic (allow.auto.create.topics
            // is off for consumers), so a missing one stays missing.
            Ok(metadata) => match topic.map(|t| (t, metadata.topics().first())) {
                Some((t, listed)) if listed.is_none_or(|l| l.error().is_some()) => {
                    KafkaError::TopicUnavailable {
                        topic: t.to_string(),
                        brokers: options.brokers.clone(),
                        waited: started.elapsed(),
                        detail: listed.and_then(|l| l.error()).map_or_else(
                            || "not listed".to_string(),
                            |e| RDKafkaErrorCode::from(e).to_string(),
                        ),
                    }
                }
                _ => {
                    close_in_background(consumer);
                    return Ok(());
                }
            },
            Err(e) => {
                let detail = cause(e.to_string());
                // librdkafka learned the advertised addresses from the bootstrap's answer before
                // this request of ours got one: its connection to one of them failing says it.
                if let Some(address) = consumer
                    .context()
                    .last
                    .lock()
                    .ok()
                    .and_then(|last| last.as_deref().and_then(advertised_failure))
                {
                    unreachable_advertised.get_or_insert(address);
                }
                KafkaError::Unreachable {
                    brokers: options.brokers.clone(),
                    waited: started.elapsed(),
                    detail,
                }
            }
        };
        if started.elapsed() >= options.connect_timeout {
            return Err(match (failure, unreachable_advertised) {
                (KafkaError::Unreachable { brokers, .. }, Some(advertised)) => {
                    KafkaError::Advertised {
                        brokers,
                        advertised,
                        waited: started.elapsed(),
                    }
                }
                (failure, _) => failure,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The address of an advertised broker that librdkafka failed to reach, from its reason: it names
/// a broker `[proto://]host:port/<node id>` (the bootstrap address is `host:port/bootstrap`).
fn advertised_failure(reason: &str) -> Option<String> {
    let (name, said) = reason.split_once(": ")?;
    let name = name.rsplit_once("://").map_or(name, |(_, n)| n);
    let (address, node) = name.rsplit_once('/')?;
    let failed = said.starts_with("Connect to ") || said.starts_with("Failed to resolve ");
    (failed && node.parse::<i32>().is_ok()).then(|| address.to_string())
}

/// The `security.protocol` set, when it speaks TLS (`ssl`, `sasl_ssl`).
fn tls_protocol(settings: &[(String, String)]) -> Option<&str> {
    settings
        .iter()
        .rev()
        .find(|(key, _)| key == "security.protocol")
        .map(|(_, value)| value.as_str())
        .filter(|value| value.to_ascii_lowercase().ends_with("ssl"))
}

/// Whether a TCP connection to `host:port` opens within `wait` (at least 200 ms, at most 2 s).
fn connects(host: &str, port: i32, wait: Duration) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(port) = u16::try_from(port) else {
        return false;
    };
    let wait = wait.clamp(Duration::from_millis(200), Duration::from_secs(2));
    (host, port).to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|addr| std::net::TcpStream::connect_timeout(&addr, wait).is_ok())
    })
}

/// The partitions `topic` has now (none while it does not exist).
pub fn partitions_now(options: &KafkaOptions, topic: &str) -> Result<BTreeSet<i32>, KafkaError> {
    let consumer: BaseConsumer<Reaching> = options
        .config(&[])
        .create_with_context(Reaching::default())
        .map_err(KafkaError::Config)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), options.connect_timeout)
        .map_err(|source| KafkaError::Client {
            what: "metadata request",
            source,
        })?;
    let present = partitions_in(&metadata, topic);
    close_in_background(consumer);
    Ok(present)
}

/// The partitions a metadata answer lists for `topic` (none when it lists the topic with an
/// error, as a missing one).
fn partitions_in(metadata: &rdkafka::metadata::Metadata, topic: &str) -> BTreeSet<i32> {
    metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect()
}

/// The reachability check's client context: librdkafka's latest warning or error is kept for
/// the error message (and logged at debug level only: the message says it).
#[derive(Default)]
struct Reaching {
    last: Mutex<Option<String>>,
}

impl Reaching {
    fn keep(&self, reason: &str) {
        // "[thrd:127.0.0.1:9092/bootstrap]: 127.0.0.1:9092/bootstrap: Connect to ..." names
        // the broker twice.
        let reason = match reason.strip_prefix("[thrd:") {
            Some(rest) => rest.split_once("]: ").map_or(reason, |(_, r)| r),
            None => reason,
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some(reason.to_string());
        }
    }
}

impl ClientContext for Reaching {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        tracing::debug!("librdkafka: {fac}: {message}");
        if matches!(
            level,
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
        ) && fac != "CONFWARN"
        {
            self.keep(message);
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
        self.keep(reason);
    }
}

impl rdkafka::consumer::ConsumerContext for Reaching {}

/// Drop a client that has done its job on a thread of its own: destroying a librdkafka client
/// waits for its threads to wind down (tens of milliseconds), which a caller about to start
/// its real work need not wait for.
fn close_in_background<T: Send + 'static>(client: T) {
    // Should no thread start, the closure, client and all, is dropped here instead.
    let _ = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || drop(client));
}

/// The id the brokers give `topic` (KIP-516; see [`TopicId`]), asked with a client of its own
/// that waits up to `wait` for the answer.
pub fn topic_id(options: &KafkaOptions, topic: &str, wait: Duration) -> TopicId {
    let Ok(client) = options.config(&[]).create::<BaseConsumer>() else {
        return TopicId::NoAnswer;
    };
    let id = topic_id::topic_id(client.client().native_ptr(), topic, wait);
    close_in_background(client);
    id
}

/// Partitions of the topics darkpool creates, unless `--partitions` says otherwise.
pub const DEFAULT_PARTITIONS: i32 = 3;

/// Create topics that do not exist yet (`partitions` each, [`DEFAULT_PARTITIONS`] if not given;
/// replication 1); an existing topic is left as it is. Returns the topics that existed with
/// another number of partitions than one given, with theirs.
///
/// A topic the brokers refuse to create is no error when they list it: a cluster with ACLs often
/// lets an application write a topic it may not create (`TOPIC_AUTHORIZATION_FAILED`), and some
/// Kafka-compatible brokers do not offer topic creation at all. As Kafka Connect does, darkpool
/// then goes by the topic's metadata, and fails with the refusal only when the topic is not
/// there.
pub async fn ensure_topics(
    options: &KafkaOptions,
    topics: &[&str],
    partitions: Option<i32>,
) -> Result<Vec<(String, usize)>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        options.config(&[]).create().map_err(KafkaError::Config)?;
    let count = partitions.unwrap_or(DEFAULT_PARTITIONS);
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, count, TopicReplication::Fixed(1)))
        .collect();
    // The request's own timeout is librdkafka's 60 s otherwise: a broker without CreateTopics
    // never answers it.
    let admin_options = AdminOptions::new()
        .operation_timeout(Some(options.connect_timeout))
        .request_timeout(Some(options.connect_timeout + Duration::from_secs(5)));
    let mut existing = Vec::new();
    let mut refused = Vec::new();
    match admin.create_topics(&new, &admin_options).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(_) => {}
                    Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(topic),
                    Err((topic, code)) => refused.push((topic, code.to_string())),
                }
            }
        }
        Err(source) => refused.extend(topics.iter().map(|t| (t.to_string(), source.to_string()))),
    }
    if refused.is_empty() && (partitions.is_none() || existing.is_empty()) {
        close_in_background(admin);
        return Ok(Vec::new());
    }
    let timeout = options.connect_timeout;
    let expected = partitions.map(|_| count as usize);
    tokio::task::spawn_blocking(move || {
        let outcome = check_listed(&admin, refused, existing, expected, timeout);
        close_in_background(admin);
        outcome
    })
    .await
    .unwrap_or_else(|e| {
        Err(KafkaError::CreateTopic {
            topic: topics.join(", "),
            detail: format!("checking the topics failed: {e}"),
        })
    })
}

/// After [`ensure_topics`]' request: a topic whose creation was refused (`(topic, why)`) must
/// be listed, or its refusal is the error. With `expected` partitions, the topics listed with
/// another count, with theirs.
fn check_listed(
    admin: &AdminClient<DefaultClientContext>,
    refused: Vec<(String, String)>,
    existing: Vec<String>,
    expected: Option<usize>,
    timeout: Duration,
) -> Result<Vec<(String, usize)>, KafkaError> {
    let listed = |topic: &str| {
        let metadata = admin.inner().fetch_metadata(Some(topic), timeout).ok()?;
        Some(partitions_in(&metadata, topic).len()).filter(|have| *have > 0)
    };
    let mut differing = Vec::new();
    for (topic, detail) in refused {
        let Some(have) = listed(&topic) else {
            return Err(KafkaError::CreateTopic { topic, detail });
        };
        tracing::debug!(
            "topic {topic} exists ({have} partitions); creating it was refused: {detail}"
        );
        if expected.is_some_and(|n| n != have) {
            differing.push((topic, have));
        }
    }
    // The count is only told, never needed: a metadata request that fails tells nothing.
    if let Some(n) = expected {
        differing.extend(existing.into_iter().filter_map(|topic| {
            let have = listed(&topic)?;
            (have != n).then_some((topic, have))
        }));
    }
    Ok(differing)
}

/// Delivery outcomes, counted by the producer's callback.
#[derive(Default)]
pub struct Deliveries {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    /// The first failed delivery's error, and its code.
    first_error: Mutex<Option<(String, Option<RDKafkaErrorCode>)>>,
}

/// The producer's context: counts into the shared [`Deliveries`].
pub struct Counter(Arc<Deliveries>);

impl ClientContext for Counter {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }
}

/// librdkafka's log lines through tracing. Settings of the other client kind (one -X list
/// serves the consumer and the producer) are expected, so their warnings are debug lines.
pub fn log(level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as L;
    match level {
        _ if fac == "CONFWARN" => tracing::debug!("librdkafka: {fac}: {message}"),
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!("librdkafka: {fac}: {message}")
        }
        L::Warning => tracing::warn!("librdkafka: {fac}: {message}"),
        L::Notice | L::Info => tracing::info!("librdkafka: {fac}: {message}"),
        L::Debug => tracing::debug!("librdkafka: {fac}: {message}"),
    }
}

impl ProducerContext for Counter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.0.first_error.lock().unwrap_or_else(|p| p.into_inner());
                if first.is_none() {
                    *first = Some((error.to_string(), error.rdkafka_error_code()));
                }
            }
        }
    }
}

/// An idempotent, acks=all producer that counts what the brokers acknowledged.
pub struct Publisher {
    producer: ReportedProducer<Counter>,
    deliveries: Arc<Deliveries>,
    sent: u64,
    /// Ctrl-C / SIGTERM signals so far, for a publisher a user waits on (`interruptible`).
    signals: Option<Arc<AtomicU64>>,
}

impl Publisher {
    /// A producer with librdkafka's default local queue (1 GiB).
    pub fn new(options: &KafkaOptions) -> Result<Publisher, KafkaError> {
        Publisher::with_queue(options, 1 << 20)
    }

    /// A producer whose local queue holds at most `queue_kbytes` KiB of unacknowledged
    /// messages ([`Publisher::send`] waits while it is full), unless `-X` says otherwise.
    pub fn with_queue(
        options: &KafkaOptions,
        queue_kbytes: usize,
    ) -> Result<Publisher, KafkaError> {
        let deliveries = Arc::new(Deliveries::default());
        let queue_kbytes = queue_kbytes.to_string();
        let producer = options
            .config(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "20"),
                ("compression.type", "lz4"),
                ("queue.buffering.max.messages", "500000"),
                ("queue.buffering.max.kbytes", queue_kbytes.as_str()),
            ])
            .create_with_context::<_, BaseProducer<Counter>>(Counter(deliveries.clone()))
            .map_err(KafkaError::Config)?;
        Ok(Publisher {
            producer: ReportedProducer::new(producer).map_err(KafkaError::Producer)?,
            deliveries,
            sent: 0,
            signals: None,
        })
    }

    /// Let the user's signals (a count of Ctrl-C / SIGTERM so far) end the waits: a send
    /// waiting on a full queue stops at the first ([`KafkaError::Stopped`]), and
    /// [`Publisher::flush`] gives up what is still unacknowledged at one that comes while it
    /// waits (the brokers gone, librdkafka would wait out `message.timeout.ms`, 5 minutes).
    pub fn interruptible(mut self, signals: Arc<AtomicU64>) -> Publisher {
        self.signals = Some(signals);
        self
    }

    fn signals(&self) -> u64 {
        self.signals
            .as_ref()
            .map_or(0, |s| s.load(Ordering::Relaxed))
    }

    /// Queue one message, waiting while the local queue is full. Delivery is reported by
    /// [`Publisher::flush`].
    pub fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), KafkaError> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        loop {
            match self.producer.producer().send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if self.signals() > 0 {
                        return Err(KafkaError::Stopped);
                    }
                    // The report thread frees the room as acknowledgements come; polling here
                    // too would spin through the poll's last millisecond (see `reports`).
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((source, _)) => {
                    return Err(KafkaError::Client {
                        what: "produce",
                        source,
                    })
                }
            }
        }
    }

    /// Queue a dead letter. One the producer refuses as too large (over `message.max.bytes`,
    /// 1,000,000 bytes by default, which a message up to --max-line-bytes can be) goes with
    /// its key and value cut to their first [`DEAD_LETTER_CUT`] bytes and their full sizes in
    /// the headers `darkpool.value_bytes` / `darkpool.key_bytes`: a dead letter that could
    /// never be sent would stop the aggregator at every restart. Its headers still say where
    /// the whole message is.
    pub fn send_dead_letter(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        match self.send(topic, key, value, Some(headers.clone())) {
            Err(e) if e.is_too_large() => {
                let mut headers = headers;
                for (bytes, name) in [(key, "darkpool.key_bytes"), (value, "darkpool.value_bytes")]
                {
                    if let Some(bytes) = bytes.filter(|b| b.len() > DEAD_LETTER_CUT) {
                        headers = headers.insert(Header {
                            key: name,
                            value: Some(bytes.len().to_string().as_str()),
                        });
                    }
                }
                let key = key.map(|b| &b[..b.len().min(DEAD_LETTER_CUT)]);
                let value = value.map(|b| &b[..b.len().min(DEAD_LETTER_CUT)]);
                self.send(topic, key, value, Some(headers))
            }
            other => other,
        }
    }

    /// Messages queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn delivered(&self) -> u64 {
        self.deliveries.delivered.load(Ordering::Relaxed)
    }

    /// Wait until every queued message is acknowledged (librdkafka retries until
    /// `message.timeout.ms`); an error says how many were not.
    pub fn flush(&self, topic: &str) -> Result<(), KafkaError> {
        let signals = self.signals();
        let mut told = false;
        loop {
            // librdkafka's own flush, not rdkafka's: that one flushes with no wait and then
            // polls for reports 100 ms at a time, and as this producer's thread serves the
            // reports, each poll sleeps its 100 ms out (every commit paid at least that). With
            // a timeout, librdkafka sends lingering batches at once and returns within 10 ms of
            // the last acknowledgement.
            // SAFETY: the handle is this producer's, which outlives the call.
            let code =
                unsafe { rd_kafka_flush(self.producer.producer().client().native_ptr(), 1000) };
            match RDKafkaErrorCode::from(code) {
                RDKafkaErrorCode::NoError => break,
                RDKafkaErrorCode::OperationTimedOut if self.signals() > signals => {
                    // Given up: each purged message is reported as not delivered.
                    let producer = self.producer.producer();
                    producer.purge(PurgeConfig::default().queue().inflight());
                    // SAFETY: as above.
                    unsafe { rd_kafka_flush(producer.client().native_ptr(), 1000) };
                    break;
                }
                RDKafkaErrorCode::OperationTimedOut => {
                    if self.signals.is_some() && !told {
                        told = true;
                        tracing::warn!(
                            "waiting for the brokers to acknowledge {} message(s) \
                             (Ctrl-C gives them up)",
                            self.producer.producer().in_flight_count()
                        );
                    }
                    continue;
                }
                other => {
                    return Err(KafkaError::Client {
                        what: "flush",
                        source: RdError::Flush(other),
                    })
                }
            }
        }
        let failed = self.deliveries.failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let (first, code) = self
                .deliveries
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_default();
            return Err(KafkaError::Delivery {
                topic: topic.to_string(),
                failed,
                first,
                code,
            });
        }
        Ok(())
    }
}

/// What is kept of a dead letter's key and value when the whole is too large to send.
pub const DEAD_LETTER_CUT: usize = 64 << 10;

/// Headers of a dead letter: the message's own (`original`, as Kafka Connect's dead letters
/// keep them), then why it was refused and where it came from.
pub fn dead_letter_headers(
    original: &[(String, Option<Vec<u8>>)],
    reject: &Reject,
    pos: &SourcePos,
) -> OwnedHeaders {
    let partition = pos.partition.unwrap_or(-1).to_string();
    let offset = pos.offset.unwrap_or(-1).to_string();
    let mut headers = OwnedHeaders::new_with_capacity(original.len() + 5);
    for (key, value) in original {
        headers = headers.insert(Header {
            key: key.as_str(),
            value: value.as_deref(),
        });
    }
    headers
        .insert(Header {
            key: "darkpool.reason",
            value: Some(reject.reason.as_str()),
        })
        .insert(Header {
            key: "darkpool.detail",
            value: Some(reject.detail.as_str()),
        })
        .insert(Header {
            key: "darkpool.topic",
            value: Some(pos.topic.as_deref().unwrap_or("")),
        })
        .insert(Header {
            key: "darkpool.partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "darkpool.offset",
            value: Some(offset.as_str()),
        })
}

/// Trade messages decoded into Arrow builders, with their Kafka positions.
pub struct MessageDecoder {
    trades: TradeBuilder,
    key_order: decode::KeyOrder,
    rejects: RejectBuilder,
    max_bytes: usize,
    stats: DecodeStats,
}

/// What became of one message.
pub enum Outcome {
    /// A trade at this event time (µs).
    Trade(i64),
    Rejected(Reject),
}

impl MessageDecoder {
    pub fn new(registry: Arc<Registry>, max_bytes: usize) -> MessageDecoder {
        MessageDecoder {
            trades: TradeBuilder::new(registry),
            key_order: decode::KeyOrder::default(),
            rejects: RejectBuilder::default(),
            max_bytes,
            stats: DecodeStats::default(),
        }
    }

    /// Rows held (trades and rejects).
    pub fn len(&self) -> usize {
        self.trades.len() + self.rejects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decode one message value (`None`: a null value, a tombstone).
    pub fn push(&mut self, value: Option<&[u8]>, pos: &SourcePos, rejected_at: i64) -> Outcome {
        self.stats.records += 1;
        let raw = value.unwrap_or_default();
        self.stats.bytes += raw.len() as u64;
        let outcome = self
            .decode(value, pos)
            .map_err(|reject| framed_reject(raw, reject));
        match outcome {
            Ok(ts) => {
                self.stats.accepted += 1;
                Outcome::Trade(ts)
            }
            Err(reject) => {
                *self
                    .stats
                    .rejected
                    .entry(reject.reason.as_str())
                    .or_default() += 1;
                let kept = &raw[..raw.len().min(self.max_bytes)];
                self.rejects
                    .append(rejected_at, &reject, kept, raw.len(), pos);
                Outcome::Rejected(reject)
            }
        }
    }

    fn decode(&mut self, value: Option<&[u8]>, pos: &SourcePos) -> Result<i64, Reject> {
        let Some(bytes) = value else {
            return Err(Reject::new(
                RejectReason::NullValue,
                "the message has no value (a null or tombstone)",
            ));
        };
        if bytes.len() > self.max_bytes {
            return Err(Reject::new(
                RejectReason::LineTooLong,
                format!(
                    "message of {} bytes exceeds the {} byte limit (--max-line-bytes); first bytes kept",
                    bytes.len(),
                    self.max_bytes
                ),
            ));
        }
        let text = super::utf8_text(confluent_unframed(bytes))?;
        // A byte order mark (some Windows producers write one) is not JSON's whitespace.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text).trim();
        let trades = &mut self.trades;
        decode::decode_json(text, &mut self.key_order, |trade| {
            trades.append(trade, pos);
            trade.timestamp
        })
    }

    /// The rows decoded since the last call.
    pub fn take(&mut self) -> (RecordBatch, RecordBatch) {
        (self.trades.finish(), self.rejects.finish())
    }

    /// The counters since the last call, with the unknown venues seen.
    pub fn take_stats(&mut self) -> DecodeStats {
        let mut stats = std::mem::take(&mut self.stats);
        stats.unknown_venues = std::mem::take(&mut self.trades.unknown_venues);
        stats
    }
}

/// A value without the frame Confluent's Schema Registry serializers put before it (a zero byte
/// and a 4-byte schema id), when JSON follows: a JSON text never starts with a zero byte.
fn confluent_unframed(bytes: &[u8]) -> &[u8] {
    match bytes {
        [0, _, _, _, _, rest @ ..] if rest.first() == Some(&b'{') => rest,
        _ => bytes,
    }
}

/// A reject of a value in a Schema Registry frame that holds no JSON says so: a topic of Avro or
/// Protobuf records is otherwise a puzzle of "not UTF-8" and "invalid JSON" rejects.
fn framed_reject(bytes: &[u8], mut reject: Reject) -> Reject {
    if let [0, a, b, c, d, _, ..] = *bytes {
        if confluent_unframed(bytes).len() == bytes.len() {
            let id = u32::from_be_bytes([a, b, c, d]);
            reject.detail = format!(
                "{}; the value starts as a Schema Registry frame (a zero byte, then schema id {id}) of something not JSON, Avro or Protobuf perhaps: darkpool reads JSON trades",
                reject.detail
            );
        }
    }
    reject
}

/// One record of a file to replay onto a topic: the message key (the symbol) and value.
pub type Replayed = (Option<String>, Vec<u8>);

/// Read a CSV or NDJSON file of trades as messages in the original JSON: NDJSON lines are sent
/// as they are (bad ones too: the aggregator rejects them with reasons), CSV rows become JSON
/// objects. Blank lines are skipped. Stops after `limit` messages, if given.
pub fn replay_file(
    path: &Path,
    limit: Option<u64>,
    each: &mut dyn FnMut(Replayed) -> Result<(), KafkaError>,
) -> Result<u64, KafkaError> {
    let io_err = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let format = super::Format::detect(path).unwrap_or(super::Format::Ndjson);
    let file = match format {
        super::Format::Ndjson => super::open_ndjson(path),
        _ => super::open_text(path),
    }
    .map_err(io_err)?;
    if !matches!(format, super::Format::Csv | super::Format::Ndjson) {
        return Err(SourceError::Header {
            path: path.to_path_buf(),
            format: "CSV or NDJSON trades",
            message: format!("{} files cannot be replayed onto Kafka", format.name()),
        }
        .into());
    }
    let mut lines = LineReader::new(file, 1 << 20, usize::MAX / 2);
    let mut header: Option<csv::Header> = None;
    let mut count = 0u64;
    let mut line = 0u64;
    let limit = limit.unwrap_or(u64::MAX);
    while count < limit {
        let Some((buf, _)) = lines.next_line().map_err(io_err)? else {
            break;
        };
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // A record whose quoted field has line breaks is one message, named by its first line.
        let record_line = line;
        let joined;
        let buf = match &header {
            Some(h) if csv::open_quote(buf) => {
                let first = buf.to_vec();
                let (record, more) = lines.quoted_record(first, h, 1 << 20).map_err(io_err)?;
                line += more as u64;
                joined = record;
                &joined[..]
            }
            _ => buf,
        };
        let text = String::from_utf8_lossy(buf);
        if format == super::Format::Csv && header.is_none() {
            header = Some(csv::Header::parse(text.trim()).map_err(|missing| {
                SourceError::CsvHeader {
                    path: path.to_path_buf(),
                    missing: missing.join(", "),
                    expected: csv::ORIGINAL_HEADER,
                }
            })?);
            continue;
        }
        let message = match &header {
            Some(h) => match h.record(&text) {
                Ok(raw) => (symbol_of(&raw), to_json(&raw).into_bytes()),
                Err(_) => (None, buf.to_vec()),
            },
            None => {
                let symbol = decode::parse_json(text.trim())
                    .ok()
                    .and_then(|raw| symbol_of(&raw));
                (symbol, buf.to_vec())
            }
        };
        let bytes = message.1.len();
        each(message).map_err(|e| match e {
            // The producer refused it: say which line (a stop asked for is not the line's).
            KafkaError::Client { .. } => KafkaError::Replay {
                path: path.to_path_buf(),
                line: record_line,
                bytes,
                hint: if e.is_too_large() {
                    ". The producer takes up to message.max.bytes (1,000,000 by default; -X message.max.bytes=N raises it, up to what the broker and topic take)"
                } else {
                    ""
                },
                source: Box::new(e),
            },
            other => other,
        })?;
        count += 1;
    }
    Ok(count)
}

fn symbol_of(raw: &RawTrade<'_>) -> Option<String> {
    match raw.field(Field::Symbol)? {
        Scalar::Str(s) | Scalar::Text(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

/// A record's fields as a JSON object in the original names. Text cells of numeric fields
/// that read as numbers become JSON numbers; everything else stays as it arrived.
fn to_json(raw: &RawTrade<'_>) -> String {
    let mut object = serde_json::Map::new();
    for field in Field::ALL {
        let Some(value) = raw.field(field) else {
            continue;
        };
        let numeric = matches!(
            field,
            Field::Price
                | Field::Quantity
                | Field::IsSpoof
                | Field::TradeValue
                | Field::Latitude
                | Field::Longitude
        );
        let json = match value {
            Scalar::Str(s) => serde_json::Value::from(s.as_ref()),
            Scalar::Text(s) if numeric => serde_json::from_str::<serde_json::Number>(s.trim())
                .map(serde_json::Value::Number)
                .unwrap_or_else(|_| serde_json::Value::from(s.as_ref())),
            Scalar::Text(s) => serde_json::Value::from(s.as_ref()),
            Scalar::Int(i) => serde_json::Value::from(*i),
            Scalar::Float(f) => serde_json::Value::from(*f),
            Scalar::Bool(b) => serde_json::Value::from(*b),
            Scalar::Micros(m) => {
                let mut text = String::new();
                crate::time::format_iso_micros(*m, &mut text);
                serde_json::Value::from(text)
            }
            Scalar::Null | Scalar::Composite => continue,
        };
        object.insert(field.name().to_string(), json);
    }
    serde_json::Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: i64) -> SourcePos {
        SourcePos {
            topic: Some(Arc::from("t")),
            partition: Some(3),
            offset: Some(offset),
            ..SourcePos::default()
        }
    }

    #[test]
    fn bad_messages_become_rejects_with_their_position() {
        let mut decoder = MessageDecoder::new(Arc::new(Registry::embedded()), 200);
        let good = br#"{"timestamp":"2024-01-01T11:50:03","symbol":"S","price":2.5,"quantity":4,"venue":"DARK1"}"#;
        assert!(matches!(
            decoder.push(Some(good), &pos(0), 0),
            Outcome::Trade(_)
        ));
        let long = vec![b' '; 300];
        let cases: [(Option<&[u8]>, &str); 6] = [
            (None, "null_value"),
            (Some(b"not json"), "invalid_json"),
            (Some(b"\xff\xfe"), "invalid_utf8"),
            (Some(br#"{"symbol":"S"}"#), "missing_field"),
            (Some(br#"{"timestamp":"2024-01-01T11:50:03","symbol":"S","price":"x","quantity":4,"venue":"LIT"}"#), "wrong_type"),
            (Some(&long), "line_too_long"),
        ];
        for (i, (value, reason)) in cases.iter().enumerate() {
            match decoder.push(*value, &pos(i as i64 + 1), 0) {
                Outcome::Rejected(r) => assert_eq!(r.reason.as_str(), *reason, "{value:?}"),
                Outcome::Trade(_) => panic!("{value:?} accepted"),
            }
        }
        let (trades, rejects) = decoder.take();
        assert_eq!(trades.num_rows(), 1);
        assert_eq!(rejects.num_rows(), 6);
        let offsets = rejects
            .column_by_name("source_offset")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(offsets.values().to_vec(), vec![1, 2, 3, 4, 5, 6]);
        let raw_bytes = rejects
            .column_by_name("raw_bytes")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(
            raw_bytes.value(5),
            300,
            "the full size is kept, the bytes cut"
        );
        assert_eq!(decoder.take_stats().rejected_total(), 6);
    }

    #[test]
    fn an_advertised_brokers_failure_is_told_from_the_bootstraps() {
        for (reason, address) in [
            ("127.0.0.1:45167/111: Connect to ipv4#127.0.0.1:45167 failed: Connection refused (after 0ms in state CONNECT)", Some("127.0.0.1:45167")),
            ("sasl_ssl://kafka:9092/1: Failed to resolve 'kafka:9092': Name or service not known", Some("kafka:9092")),
            ("127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused", None),
            ("127.0.0.1:9092/1: SASL authentication error: Authentication failed", None),
        ] {
            assert_eq!(advertised_failure(reason).as_deref(), address, "{reason}");
        }
    }

    #[test]
    fn framed_and_wrapped_trades_are_read() {
        let mut decoder = MessageDecoder::new(Arc::new(Registry::embedded()), 1000);
        let trade = r#"{"timestamp":"2024-01-01T11:50:03","symbol":"S","price":2.5,"quantity":4,"venue":"DARK1"}"#;
        let bom = format!("\u{feff}{trade}");
        let mut framed = vec![0, 0, 0, 1, 7];
        framed.extend_from_slice(trade.as_bytes());
        let connect = format!(r#"{{"schema":{{"type":"struct","fields":[]}},"payload":{trade}}}"#);
        let bad_payload = r#"{"schema":null,"payload":{"symbol":"S"}}"#;
        for (value, accepted) in [
            (bom.as_bytes(), true),
            (&framed[..], true),
            (connect.as_bytes(), true),
            (bad_payload.as_bytes(), false),
            // A frame before something that is not an object stays a reject.
            (&[0, 0, 0, 0, 1, b'[', b']'][..], false),
            (br#"{"payload":{"timestamp":"2024-01-01T11:50:03","symbol":"S","price":2.5,"quantity":4,"venue":"DARK1"}}"#, false),
        ] {
            match decoder.push(Some(value), &pos(0), 0) {
                Outcome::Trade(ts) => {
                    assert!(accepted, "{value:?} accepted");
                    assert_eq!(ts, 1_704_109_803_000_000);
                }
                Outcome::Rejected(r) => {
                    assert!(!accepted, "{value:?} rejected: {}", r.detail);
                    if value == bad_payload.as_bytes() {
                        assert_eq!(r.reason.as_str(), "missing_field", "the payload's own reason");
                    }
                }
            }
        }
        let (trades, rejects) = decoder.take();
        assert_eq!((trades.num_rows(), rejects.num_rows()), (3, 3));
        // Avro in a Schema Registry frame: said so, with the schema id.
        match decoder.push(Some(&[0, 0, 0, 1, 2, 0x06, 0x53, 0xff][..]), &pos(1), 0) {
            Outcome::Rejected(r) => assert!(
                r.detail
                    .contains("Schema Registry frame (a zero byte, then schema id 258)"),
                "{}",
                r.detail
            ),
            Outcome::Trade(_) => panic!("Avro accepted"),
        }
    }

    #[test]
    fn csv_rows_replay_as_the_original_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "timestamp,symbol,price,quantity,venue,is_spoof,algo_fingerprint,order_type,order_id,side\n\
             2024-01-01T11:50:03.120000,SYNTH_AMZN,262.39,3143,DARK2,0,A7,LIMIT,o1,BUY\n\n",
        )
        .unwrap();
        let mut got = Vec::new();
        replay_file(&path, None, &mut |m| {
            got.push(m);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.as_deref(), Some("SYNTH_AMZN"));
        let value: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
        assert_eq!(value["price"], serde_json::json!(262.39));
        assert_eq!(value["quantity"], serde_json::json!(3143));
        assert_eq!(value["venue"], "DARK2");
        // The aggregator accepts it.
        let mut decoder = MessageDecoder::new(Arc::new(Registry::embedded()), 1 << 20);
        assert!(matches!(
            decoder.push(Some(&got[0].1), &pos(0), 0),
            Outcome::Trade(_)
        ));
    }

    /// Settings darkpool makes itself are refused unless they say what darkpool says; any
    /// other setting passes.
    #[test]
    fn own_settings_are_refused_unless_unchanged() {
        let set = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        for (key, value) in [
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "TRUE"),
            ("auto.commit.enable", "true"),
            ("enable.partition.eof", "false"),
            ("enable.idempotence", "false"),
            ("acks", "1"),
            ("request.required.acks", "0"),
            ("group.id", "other"),
            ("bootstrap.servers", "elsewhere:9092"),
            ("auto.offset.reset", "earliest"),
            ("partition.assignment.strategy", "range,cooperative-sticky"),
            (
                "partition.assignment.strategy",
                "cooperative-sticky,roundrobin",
            ),
            ("partition.assignment.strategy", "sticky"),
            ("group.protocol", "consumer"),
        ] {
            let refused = check_settings(&set(key, value)).unwrap_err();
            assert!(refused.contains(&format!("{key}=")), "{refused}");
        }
        for (key, value) in [
            ("enable.auto.commit", "false"),
            ("enable.idempotence", " True "),
            ("acks", "all"),
            ("acks", "-1"),
            ("enable.partition.eof", "true"),
            ("session.timeout.ms", "2000"),
            ("security.protocol", "SSL"),
            ("partition.assignment.strategy", "roundrobin"),
            ("partition.assignment.strategy", "roundrobin, range"),
            ("partition.assignment.strategy", " Cooperative-Sticky"),
            ("group.protocol", "classic"),
        ] {
            assert_eq!(check_settings(&set(key, value)), Ok(()), "{key}={value}");
        }
    }

    /// Without the `gssapi` feature, Kerberos is refused naming the feature, whether asked
    /// for by name or as librdkafka's default mechanism; other mechanisms pass.
    /// Both ways a log can start again under the lake's offsets end with the same remedy,
    /// naming the topic's folder.
    #[test]
    fn a_log_started_again_names_the_folder_to_move() {
        let restarted = KafkaError::LogRestarted {
            topic: "t1".into(),
            partition: 0,
            last_landed: 9,
            first: 0,
        };
        let recreated = KafkaError::TopicRecreated {
            topic: "t1".into(),
            landed: "a".into(),
            now: "b".into(),
        };
        for error in [restarted.to_string(), recreated.to_string()] {
            assert!(
                error.ends_with(
                    "ingest it into another lake (--lake), or keep this lake's trades and move \
                     its folder _offsets/t1 away, so that the topic is read as a new log from \
                     --start"
                ),
                "{error}"
            );
        }
    }

    #[cfg(not(feature = "gssapi"))]
    #[test]
    fn kerberos_without_the_gssapi_feature_names_the_feature() {
        let settings = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            (pairs.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for pairs in [
            &[("security.protocol", "SASL_SSL")][..],
            &[
                ("security.protocol", "sasl_plaintext"),
                ("sasl.mechanism", "gssapi"),
            ],
            &[
                ("sasl.mechanisms", "PLAIN"),
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "GSSAPI"),
            ],
        ] {
            let refused = check_settings(&settings(pairs)).unwrap_err();
            assert!(
                refused.contains("--features gssapi"),
                "{pairs:?}: {refused}"
            );
        }
        for pairs in [
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "PLAIN"),
            ][..],
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanisms", "SCRAM-SHA-512"),
            ],
            // Not SASL: the mechanism is not used.
            &[("security.protocol", "SSL"), ("sasl.mechanism", "GSSAPI")],
            &[("sasl.mechanism", "GSSAPI")],
        ] {
            assert_eq!(check_settings(&settings(pairs)), Ok(()), "{pairs:?}");
        }
    }

    /// With the `gssapi` feature, librdkafka takes Kerberos (without it, creating the client
    /// fails: "No provider for SASL mechanism GSSAPI"), and darkpool lets it through.
    #[cfg(feature = "gssapi")]
    #[test]
    fn kerberos_is_built_in_with_the_gssapi_feature() {
        let settings = [("security.protocol".to_string(), "SASL_SSL".to_string())];
        assert_eq!(check_settings(&settings), Ok(()));
        let created: Result<BaseProducer, _> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "GSSAPI")
            .set("sasl.kerberos.service.name", "kafka")
            // No ticket refresh (librdkafka would run kinit at once).
            .set("sasl.kerberos.min.time.before.relogin", "0")
            .create();
        assert!(created.is_ok(), "{:?}", created.err());
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        for name in [
            "finra-ats-raw",
            "dark-pool-heatmap-data",
            "a.b_C-9",
            "...",
            &"x".repeat(249),
        ] {
            assert_eq!(check_topic("--topic", name), Ok(()), "{name}");
        }
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "../lake",
            "/etc",
            "two words",
            "é",
            &"x".repeat(250),
        ] {
            let refused = check_topic("--topic", name).unwrap_err();
            assert!(refused.starts_with("--topic \""), "{refused}");
        }
    }

    #[test]
    fn settings_parse_as_key_value() {
        assert_eq!(
            parse_setting("sasl.password=a=b").unwrap(),
            ("sasl.password".into(), "a=b".into())
        );
        assert!(parse_setting("nokey").is_err());
        assert!(parse_setting("=v").is_err());
    }
}
