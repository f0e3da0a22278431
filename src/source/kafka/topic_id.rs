//! A topic's id. Kafka (2.8 on, KIP-516) gives each topic a UUID when it is created, so a
//! topic deleted and created again under its old name has a new one: the one way to tell the
//! new log from the old once it has grown past where a reader was. librdkafka asks for it with
//! its DescribeTopics admin call, which rdkafka does not wrap.

use std::ffi::{c_char, CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;

/// What the brokers said of a topic's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicId {
    /// Its id, base64 as Kafka's tools print it.
    Id(String),
    /// An answer without one: brokers before Kafka 2.8 (or Kafka-protocol brokers without
    /// ids), or a topic that does not exist (yet).
    Unknown,
    /// No answer within the time given (librdkafka's mock cluster names a controller it does
    /// not have, and its admin requests wait for it).
    NoAnswer,
}

/// The id of `topic` as the brokers of the client `rk` (a live handle of any kind) know it,
/// waiting up to `timeout` for their answer.
pub fn topic_id(rk: *mut rd::rd_kafka_t, topic: &str, timeout: Duration) -> TopicId {
    let Ok(name) = CString::new(topic) else {
        return TopicId::Unknown;
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rk` is a live client; every object made here is destroyed here, after the
    // event (whose result borrows from it) is read. A reply arriving after the poll gave up
    // goes to a queue librdkafka keeps alive for it (the request holds a reference).
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        if queue.is_null() {
            return TopicId::NoAnswer;
        }
        let mut names = [name.as_ptr()];
        let topics = rd::rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), 1);
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        let mut errstr = [0 as c_char; 256];
        if !options.is_null() {
            rd::rd_kafka_AdminOptions_set_request_timeout(
                options,
                ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
        }
        rd::rd_kafka_DescribeTopics(rk, topics, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, ms);
        let id = if event.is_null() {
            TopicId::NoAnswer
        } else {
            let id = described_id(event).map_or(TopicId::Unknown, TopicId::Id);
            rd::rd_kafka_event_destroy(event);
            id
        };
        if !options.is_null() {
            rd::rd_kafka_AdminOptions_destroy(options);
        }
        rd::rd_kafka_TopicCollection_destroy(topics);
        rd::rd_kafka_queue_destroy(queue);
        id
    }
}

/// The one topic's id in a DescribeTopics result event (not zero, which means none).
///
/// # Safety
/// `event` is a live event.
unsafe fn described_id(event: *mut rd::rd_kafka_event_t) -> Option<String> {
    // SAFETY: as the caller says; what the result hands out lives as long as the event.
    unsafe {
        let result = rd::rd_kafka_event_DescribeTopics_result(event);
        if result.is_null() {
            return None;
        }
        let mut count = 0usize;
        let described = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
        if described.is_null() || count != 1 {
            return None;
        }
        let description = *described;
        let error = rd::rd_kafka_TopicDescription_error(description);
        if !error.is_null()
            && rd::rd_kafka_error_code(error) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return None;
        }
        let uuid = rd::rd_kafka_TopicDescription_topic_id(description);
        if uuid.is_null()
            || (rd::rd_kafka_Uuid_most_significant_bits(uuid) == 0
                && rd::rd_kafka_Uuid_least_significant_bits(uuid) == 0)
        {
            return None;
        }
        let text = rd::rd_kafka_Uuid_base64str(uuid);
        (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
    }
}
