//! foobar: provision a classic web stack (HAProxy → Nginx → app → MySQL primary/replica) from a
//! declarative inventory and playbook.
//!
//! ```text
//! inventory + playbook --load--> Inventory --render--> DesiredState ----+
//!                                                                       +--diff--> Plan --apply--> Report
//!                      Transport (ssh | local) --gather--> ActualState -+             |
//!                                                                                     +--verify--> Health
//! ```
//!
//! `plan` is pure; only `gather`, `apply` and `verify` touch a [`transport::Transport`] (and
//! the backup commands in `cli`, which run the scripts `apply` installed; see [`backup`]).
//! Every script they send is built with [`shell::Script`]: values enter only as quoted words;
//! a file's `validate` and a handler's `run:` are the only commands taken from the playbook.

pub mod apply;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod error;
pub mod gather;
pub mod graph;
pub mod inventory;
pub mod mysql;
pub mod plan;
pub mod render;
pub mod report;
pub mod secret;
pub mod shell;
pub mod transport;
pub mod verify;
