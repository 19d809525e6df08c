//! The queue between the outbox and the channel workers: RabbitMQ (`rabbit/`, lapin) or the
//! embedded queue (`embedded.rs`, a table in the store), with one consumer contract.

mod rabbit;
mod types;

pub use rabbit::{RabbitConsumer, RabbitDelivery, RabbitQueue};
pub use types::*;
