//! The sample input bundled in `examples/demo/`, one JSON object per line,
//! compiled into the binary: a day of a small shop. 300 sign-ups, of which
//! 30 repeat an earlier address and 3 have a malformed one; 600 likes,
//! comments and shares in time order; 120 abandoned carts, one holding an
//! item of quantity 0; the 45 of those carts that were ordered after all.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A user signing up: the welcome email goes to `email`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    pub name: String,
    pub email: String,
}

/// A user liking, commenting on or sharing a post.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    pub user_id: u64,
    pub post_id: u64,
    /// `like`, `comment` or `share`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339 in UTC.
    pub at: String,
}

/// A cart left without an order; it is also the reminder's params.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cart {
    pub cart_id: String,
    pub email: String,
    pub name: String,
    pub items: Vec<CartItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartItem {
    pub sku: String,
    pub title: String,
    pub quantity: u32,
    pub price_cents: u64,
}

/// A cart that was checked out after all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub cart_id: String,
}

/// Everything the demo feeds, in file order.
#[derive(Debug, Clone)]
pub struct Data {
    pub signups: Vec<Signup>,
    pub activity: Vec<Activity>,
    pub carts: Vec<Cart>,
    pub orders: Vec<Order>,
}

impl Data {
    /// Parses the bundled files.
    pub fn bundled() -> anyhow::Result<Self> {
        Ok(Self {
            signups: parse(
                "signups.jsonl",
                include_str!("../../../../examples/demo/signups.jsonl"),
            )?,
            activity: parse(
                "activity.jsonl",
                include_str!("../../../../examples/demo/activity.jsonl"),
            )?,
            carts: parse(
                "carts.jsonl",
                include_str!("../../../../examples/demo/carts.jsonl"),
            )?,
            orders: parse(
                "orders.jsonl",
                include_str!("../../../../examples/demo/orders.jsonl"),
            )?,
        })
    }

    /// How many different addresses signed up.
    pub fn distinct_signup_addresses(&self) -> usize {
        let addresses: HashSet<&str> = self.signups.iter().map(|s| s.email.as_str()).collect();
        addresses.len()
    }

    /// The user with the most activity (the lowest id on a tie) and how
    /// many events they have.
    pub fn most_active_user(&self) -> Option<(u64, usize)> {
        let mut per_user: BTreeMap<u64, usize> = BTreeMap::new();
        for event in &self.activity {
            *per_user.entry(event.user_id).or_default() += 1;
        }
        per_user
            .into_iter()
            .max_by_key(|(user_id, events)| (*events, Reverse(*user_id)))
    }
}

/// Parses JSON Lines, naming the file and line of a bad record.
fn parse<T: DeserializeOwned>(file: &str, text: &str) -> anyhow::Result<Vec<T>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("examples/demo/{file} line {}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_data_parses() {
        let data = Data::bundled().unwrap();
        assert_eq!(data.signups.len(), 300);
        assert_eq!(data.distinct_signup_addresses(), 270);
        assert_eq!(data.activity.len(), 600);
        assert_eq!(data.carts.len(), 120);
        assert_eq!(data.orders.len(), 45);
        assert_eq!(data.most_active_user(), Some((1, 100)));
    }

    #[test]
    fn bad_lines_are_named() {
        let error = parse::<Order>("orders.jsonl", "{\"cart_id\": \"c-1\"}\n{}\n").unwrap_err();
        assert_eq!(format!("{error}"), "examples/demo/orders.jsonl line 2");
    }
}
