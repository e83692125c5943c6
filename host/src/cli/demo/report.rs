//! What a demo run found, how it is shown, and the checks that make the
//! demo an end-to-end test: every number must follow from the input.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use comfy_table::CellAlignment;

use super::sink::{Inbox, Message};
use super::{CART_REMINDER, SEND_EMAIL, USER_STATS, feed};
use crate::api::types::JobView;
use crate::cli::output;
use crate::queue::{JobCount, JobState};

/// The numbers of one run.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Jobs per kind and state once every job finished.
    pub counts: Vec<JobCount>,
    /// Sign-ups fed, and how many different addresses they had.
    pub signups: usize,
    pub signup_addresses: usize,
    /// Sign-ups whose enqueue returned the existing job of an earlier
    /// sign-up with the same address.
    pub signups_collapsed: usize,
    /// Likes, comments and shares fed.
    pub activity: usize,
    /// Abandoned carts fed, and how many of them were ordered.
    pub carts: usize,
    pub orders: usize,
    /// What the mail sink received.
    pub inbox: Inbox,
    /// Every discarded job and why it was given up.
    pub discarded: Vec<Discarded>,
    /// The newest statistics update of the most active user.
    pub sample: Option<JobView>,
    /// From the build to the last finished job.
    pub elapsed: Duration,
}

/// A discarded job and the error of its last attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    pub id: String,
    pub reason: String,
}

impl DemoReport {
    /// Jobs of `kind` in `state`.
    pub fn jobs(&self, kind: &str, state: JobState) -> i64 {
        self.counts
            .iter()
            .filter(|c| c.kind == kind && c.state() == state)
            .map(|c| c.count)
            .sum()
    }

    /// Jobs of `kind` in any state.
    pub fn jobs_of_kind(&self, kind: &str) -> i64 {
        JobState::ALL.iter().map(|s| self.jobs(kind, *s)).sum()
    }

    /// Welcome emails the sink received (one per `send-email` job).
    pub fn welcome_emails(&self) -> Vec<&Message> {
        self.messages(feed::SIGNUP_ID_PREFIX)
    }

    /// Different addresses among the welcome emails.
    pub fn welcome_addresses(&self) -> usize {
        let addresses: BTreeSet<&str> = self
            .welcome_emails()
            .iter()
            .map(|m| m.to.as_str())
            .collect();
        addresses.len()
    }

    /// Cart reminders the sink received.
    pub fn reminder_emails(&self) -> Vec<&Message> {
        self.messages(feed::REMINDER_ID_PREFIX)
    }

    /// Reminders whose job completed: the email went out.
    pub fn reminders_sent(&self) -> i64 {
        self.jobs(CART_REMINDER, JobState::Completed)
    }

    /// Reminders cancelled because the cart was ordered.
    pub fn reminders_cancelled(&self) -> i64 {
        self.jobs(CART_REMINDER, JobState::Cancelled)
    }

    /// The distinct reasons jobs were discarded, each with its jobs' ids.
    pub fn discard_reasons(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut reasons: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for job in &self.discarded {
            reasons.entry(&job.reason).or_default().push(&job.id);
        }
        reasons
    }

    /// Every way the numbers fail to follow from the input; empty when
    /// the run is consistent.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut expect = |what: &str, actual: i64, expected: i64| {
            if actual != expected {
                problems.push(format!("{what}: {actual}, expected {expected}"));
            }
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);

        let unfinished: i64 = (self.counts.iter())
            .filter(|c| !c.state().is_finished())
            .map(|c| c.count)
            .sum();
        expect("unfinished jobs", unfinished, 0);
        expect(
            "send-email jobs (one per address)",
            self.jobs_of_kind(SEND_EMAIL),
            count(self.signup_addresses),
        );
        expect(
            "sign-ups that returned an existing job",
            count(self.signups_collapsed),
            count(self.signups.saturating_sub(self.signup_addresses)),
        );
        expect(
            "welcome emails received (one per completed send-email job)",
            count(self.welcome_emails().len()),
            self.jobs(SEND_EMAIL, JobState::Completed),
        );
        expect(
            "addresses welcomed (each once)",
            count(self.welcome_addresses()),
            count(self.welcome_emails().len()),
        );
        expect(
            "statistics updates completed",
            self.jobs(USER_STATS, JobState::Completed),
            count(self.activity),
        );
        expect(
            "cart:reminder jobs",
            self.jobs_of_kind(CART_REMINDER),
            count(self.carts),
        );
        expect(
            "reminders cancelled (one per order)",
            self.reminders_cancelled(),
            count(self.orders),
        );
        expect(
            "reminder emails received (one per completed reminder)",
            count(self.reminder_emails().len()),
            self.reminders_sent(),
        );
        expect(
            "emails received",
            count(self.inbox.messages.len()),
            count(self.welcome_emails().len() + self.reminder_emails().len()),
        );
        problems
    }

    /// Prints the table of jobs and the totals.
    pub fn print(&self) {
        println!("jobs per kind and state:");
        self.print_table();
        println!();
        println!(
            "sign-ups fed                {:>4}, from {} addresses",
            self.signups, self.signup_addresses
        );
        println!(
            "  duplicates collapsed      {:>4}  (same address, same job id: one job)",
            self.signups_collapsed
        );
        println!(
            "emails received by the sink {:>4}  ({} repeated deliveries dropped)",
            self.inbox.messages.len(),
            self.inbox.repeated
        );
        println!(
            "  welcome emails            {:>4}, to {} distinct addresses",
            self.welcome_emails().len(),
            self.welcome_addresses()
        );
        println!(
            "  cart reminders            {:>4}",
            self.reminder_emails().len()
        );
        println!(
            "reminders sent              {:>4}  of {} abandoned carts",
            self.reminders_sent(),
            self.carts
        );
        println!(
            "reminders cancelled         {:>4}  (the cart was ordered in time)",
            self.reminders_cancelled()
        );
        println!(
            "statistics updates          {:>4}  for {} likes, comments and shares",
            self.jobs(USER_STATS, JobState::Completed),
            self.activity
        );

        let reasons = self.discard_reasons();
        if !reasons.is_empty() {
            println!();
            println!("discarded jobs, by the error of their last attempt:");
            for (reason, ids) in reasons {
                println!("  {reason}");
                println!("    {}", ids.join(", "));
            }
        }
        if let Some(job) = &self.sample
            && let Some(result) = &job.result
        {
            println!();
            println!("the result of one job, {} ({}):", job.id, job.kind);
            let pretty =
                serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string());
            for line in pretty.lines() {
                println!("  {line}");
            }
        }
        println!();
        println!("done in {:.1}s", self.elapsed.as_secs_f64());
    }

    /// Jobs per kind (rows) and state (columns, those that occur).
    fn print_table(&self) {
        let states: Vec<JobState> = JobState::ALL
            .into_iter()
            .filter(|s| self.counts.iter().any(|c| c.state() == *s))
            .collect();
        let kinds: BTreeSet<&str> = self.counts.iter().map(|c| c.kind.as_str()).collect();

        let mut header = vec!["kind"];
        header.extend(states.iter().map(|s| s.as_str()));
        header.push("total");
        let mut table = output::table(&header);
        for kind in kinds {
            let mut row = vec![kind.to_string()];
            row.extend(states.iter().map(|s| self.jobs(kind, *s).to_string()));
            row.push(self.jobs_of_kind(kind).to_string());
            table.add_row(row);
        }
        for column in table.column_iter_mut().skip(1) {
            column.set_cell_alignment(CellAlignment::Right);
        }
        println!("{table}");
    }

    fn messages(&self, key_prefix: &str) -> Vec<&Message> {
        self.inbox
            .messages
            .iter()
            .filter(|(key, _)| key.starts_with(key_prefix))
            .map(|(_, message)| message)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(kind: &str, state: JobState, count: i64) -> JobCount {
        JobCount {
            kind: kind.to_string(),
            state: state.as_str().to_string(),
            count,
        }
    }

    fn message(to: &str) -> Message {
        Message {
            to: to.to_string(),
            subject: "s".to_string(),
            text: "t".to_string(),
        }
    }

    /// Three sign-ups from two addresses, one event, two carts of which
    /// one was ordered; everything went through.
    fn consistent() -> DemoReport {
        let mut inbox = Inbox::default();
        for (key, to) in [
            ("send-email:a@example.com", "a@example.com"),
            ("send-email:b@example.com", "b@example.com"),
            ("cart-reminder:c-1", "a@example.com"),
        ] {
            inbox.messages.insert(key.to_string(), message(to));
        }
        DemoReport {
            counts: vec![
                count(CART_REMINDER, JobState::Cancelled, 1),
                count(CART_REMINDER, JobState::Completed, 1),
                count(SEND_EMAIL, JobState::Completed, 2),
                count(USER_STATS, JobState::Completed, 1),
            ],
            signups: 3,
            signup_addresses: 2,
            signups_collapsed: 1,
            activity: 1,
            carts: 2,
            orders: 1,
            inbox,
            discarded: Vec::new(),
            sample: None,
            elapsed: Duration::from_secs(1),
        }
    }

    #[test]
    fn numbers_that_follow_from_the_input_are_no_problem() {
        assert_eq!(consistent().problems(), Vec::<String>::new());
    }

    #[test]
    fn a_reminder_sent_for_an_ordered_cart_is_a_problem() {
        let mut report = consistent();
        report.counts = vec![
            count(CART_REMINDER, JobState::Completed, 2),
            count(SEND_EMAIL, JobState::Completed, 2),
            count(USER_STATS, JobState::Completed, 1),
        ];

        assert_eq!(
            report.problems(),
            [
                "reminders cancelled (one per order): 0, expected 1",
                "reminder emails received (one per completed reminder): 1, expected 2",
            ]
        );
    }

    #[test]
    fn an_address_welcomed_twice_is_a_problem() {
        let mut report = consistent();
        report.inbox.messages.insert(
            "send-email:A@example.com".to_string(),
            message("a@example.com"),
        );
        report.counts[2].count = 3;

        assert_eq!(
            report.problems(),
            [
                "send-email jobs (one per address): 3, expected 2",
                "addresses welcomed (each once): 2, expected 3",
            ]
        );
    }
}
