//! `spool demo`: the examples on the bundled sample data, end to end, with
//! every number checked against the data files.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use spool::cli::demo::{self, DemoOptions, Discarded};
use spool::queue::JobState;

use crate::support::TestDb;

/// The records of a file in `examples/demo/`.
fn records(file: &str) -> Vec<Value> {
    let path = spool::guests::workspace_root()
        .join("examples/demo")
        .join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_numbers_follow_from_the_bundled_data() {
    // The data: 300 sign-ups from 270 addresses, three of them malformed;
    // 600 events; 120 carts, 45 ordered; cart c-1060, not ordered, holds
    // an item of quantity 0.
    let signups = records("signups.jsonl");
    let addresses: HashSet<&str> = signups
        .iter()
        .map(|s| s["email"].as_str().unwrap())
        .collect();
    let malformed = [
        "alan.kay@example",
        "barbara.grosz.example.com",
        "ken iverson@example.net",
    ];
    assert!(malformed.iter().all(|a| addresses.contains(a)));
    let activity = records("activity.jsonl");
    let carts = records("carts.jsonl");
    let orders = records("orders.jsonl");
    let ordered: HashSet<&str> = orders
        .iter()
        .map(|o| o["cart_id"].as_str().unwrap())
        .collect();
    let bad_cart = "c-1060";
    assert!(carts.iter().any(|c| {
        c["cart_id"] == bad_cart
            && c["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["quantity"] == 0)
    }));
    assert!(!ordered.contains(bad_cart));
    let db = TestDb::new().await;

    let options = DemoOptions {
        reminder_delay: Duration::from_secs(3),
        verbose: false,
        show_progress: false,
    };
    let report = demo::run_demo(db.pool.clone(), &options)
        .await
        .expect("the demo runs");

    assert_eq!(report.problems(), Vec::<String>::new());
    assert_eq!(report.signups, signups.len()); // 300
    assert_eq!(report.signups_collapsed, signups.len() - addresses.len()); // 30
    let welcomed = addresses.len() - malformed.len(); // 267
    assert_eq!(
        report.jobs(demo::SEND_EMAIL, JobState::Completed),
        welcomed as i64
    );
    assert_eq!(report.welcome_emails().len(), welcomed);
    assert_eq!(report.welcome_addresses(), welcomed);
    assert_eq!(
        report.jobs(demo::USER_STATS, JobState::Completed),
        activity.len() as i64
    );
    let reminded = carts.len() - ordered.len() - 1; // 74
    assert_eq!(report.reminders_sent(), reminded as i64);
    assert_eq!(report.reminder_emails().len(), reminded);
    assert_eq!(report.reminders_cancelled(), ordered.len() as i64); // 45
    assert_eq!(report.inbox.messages.len(), welcomed + reminded); // 341
    assert_eq!(
        db.job_count().await,
        (addresses.len() + activity.len() + carts.len()) as i64
    );

    let mut expected: Vec<Discarded> = malformed
        .iter()
        .map(|address| Discarded {
            id: format!("send-email:{address}"),
            reason: format!("to: not an email address: {address:?}"),
        })
        .collect();
    expected.push(Discarded {
        id: format!("cart-reminder:{bad_cart}"),
        reason: "items[1].quantity: must be at least 1".to_string(),
    });
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(report.discarded, expected);

    let sample = report.sample.expect("a sample job");
    assert_eq!(
        sample.id, "stats:1:100",
        "user 1 is the most active, with 100 events"
    );
    let result = sample.result.expect("the sample completed");
    assert_eq!(
        (result["user_id"].clone(), result["events"].clone()),
        (1.into(), 100.into())
    );
}
