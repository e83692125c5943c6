//! `cart-reminder`: reminds a user of the cart they left. The application
//! schedules it for later when the cart is abandoned and cancels it when
//! the order completes.
//!
//! Params: `{"cart_id": "c-17", "email": "ada@example.com", "name": "Ada",
//! "items": [{"sku": "mug-01", "title": "Mug", "quantity": 2, "price_cents": 1299}]}`.
//! Result: `{"cart_id": "c-17", "sent_to": "ada@example.com", "items": 2, "total_cents": 2598}`.

use mailer::Message;
use serde::{Deserialize, Serialize};
use spool_sdk::{Error, Job};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    cart_id: String,
    email: String,
    name: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    sku: String,
    title: String,
    quantity: u32,
    price_cents: u64,
}

#[derive(Serialize)]
struct Reminded {
    cart_id: String,
    sent_to: String,
    items: u32,
    total_cents: u64,
}

#[spool_sdk::job]
fn cart_reminder(job: &Job, params: Params) -> Result<Reminded, Error> {
    if params.cart_id.trim().is_empty() {
        return Err(Error::fail("cart_id: must not be empty"));
    }
    mailer::check_address("email", &params.email)?;
    if params.items.is_empty() {
        return Err(Error::fail("items: must not be empty"));
    }
    for (i, item) in params.items.iter().enumerate() {
        if item.quantity == 0 {
            return Err(Error::fail(format!(
                "items[{i}].quantity: must be at least 1"
            )));
        }
        if item.sku.trim().is_empty() {
            return Err(Error::fail(format!("items[{i}].sku: must not be empty")));
        }
    }

    let quantity: u32 = params.items.iter().map(|i| i.quantity).sum();
    let total_cents: u64 = params
        .items
        .iter()
        .map(|i| i.price_cents.saturating_mul(u64::from(i.quantity)))
        .sum();
    let lines: String = params
        .items
        .iter()
        .map(|i| {
            format!(
                "  {} x {} ({})\n",
                i.quantity,
                i.title,
                price(i.price_cents)
            )
        })
        .collect();
    let message = Message {
        to: &params.email,
        subject: "You left something in your cart".to_string(),
        text: format!(
            "Hi {},\n\nyour cart is waiting:\n{lines}\nTotal: {}\n",
            params.name,
            price(total_cents)
        ),
    };
    mailer::send(job, &message)?;

    Ok(Reminded {
        cart_id: params.cart_id,
        sent_to: params.email,
        items: quantity,
        total_cents,
    })
}

fn price(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}
