//! Many alerts in flight at once, through a pool of instances, with a
//! bounded queue.

use crate::common::server::wait_until;
use crate::common::{event, runtime, web_api_config};
use alert_handler_host::Level;
use host_test::mock_slack::MockSlack;
use host_test::pool::Pool;

/// Waits (bounded) until `cond` holds; panics if it never does.
#[test]
fn alerts_are_in_flight_concurrently_and_the_queue_is_bounded() {
    let slack = MockSlack::start().unwrap();
    slack.hold();
    let pool = Pool::start(runtime(), &web_api_config(&slack), 4, 4)
        .unwrap()
        .unwrap();

    let mut answers = Vec::new();
    for i in 0..4 {
        answers.push(
            pool.submit(event(&format!("alert {i}"), Level::Critical), vec![])
                .unwrap(),
        );
    }
    wait_until("four requests held at the stand-in", || {
        slack.in_flight() == 4
    });
    for i in 4..8 {
        let queued = pool
            .try_submit(event(&format!("alert {i}"), Level::Critical), vec![])
            .unwrap();
        answers.push(queued.expect("room in the queue"));
    }
    let refused = pool
        .try_submit(event("one too many", Level::Critical), vec![])
        .unwrap();
    assert_eq!(
        refused.expect_err("the queue is full").0.message,
        "one too many"
    );

    slack.release();
    for answer in answers {
        answer.recv().unwrap().unwrap().unwrap();
    }
    assert_eq!(slack.requests().len(), 8);
    assert_eq!(slack.max_in_flight(), 4);
}

#[test]
fn a_thousand_alerts_through_eight_workers_are_each_delivered_once() {
    let slack = MockSlack::start().unwrap();
    let pool = Pool::start(runtime(), &web_api_config(&slack), 8, 64)
        .unwrap()
        .unwrap();
    let answers: Vec<_> = (0..1000)
        .map(|i| {
            pool.submit(event(&format!("alert {i}"), Level::Warning), vec![])
                .unwrap()
        })
        .collect();
    for answer in answers {
        answer.recv().unwrap().unwrap().unwrap();
    }
    let mut texts: Vec<String> = slack
        .requests()
        .iter()
        .map(|r| {
            r.json()["attachments"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 1000);
    assert_eq!(slack.requests().len(), 1000);
}

#[test]
fn a_refused_configuration_is_reported_before_any_worker_starts() {
    let refused = Pool::start(runtime(), "[slack]\nbogus = 1\n", 2, 2).unwrap();
    assert!(refused.is_err());
}
