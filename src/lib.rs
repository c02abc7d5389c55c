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
//! The modules, in pipeline order (each opens with a `//!` saying what comes in and out):
//!
//! | module | in → out |
//! | --- | --- |
//! | [`cli`] | arguments → a command over a `Session` (load, render, connect, finish); picks human or JSON, maps outcomes to exit codes |
//! | [`inventory`] | inventory + playbook YAML → [`inventory::Inventory`] (hosts, groups, vars, secrets, and the [`inventory::Topology`]: load balancers, web servers, database primary and replicas, monitoring, backups) and [`inventory::Playbook`] |
//! | [`render`] | Inventory + Playbook + secrets → one `DesiredState` per host (minijinja, strict) |
//! | [`transport`] | a [`host::HostName`]'s connection settings → a [`transport::Transport`] (ssh, local; `dry` wraps either for `apply --dry-run`: reads are sent, changes answered with their known success output; ssh `held`: an apply's gather keeps its shell waiting and the host's script continues in it, one session for both) |
//! | [`remote`] | what exists on a host: foobar's paths there (one state directory), the `#foobar:` sections of every script's output (one `Section` enum, one reader), the `OK`/`ERR` reply protocol, and the scripts stages share (lock, backups and restore, handlers, HAProxy's runtime API) |
//! | [`gather`] | Transport + DesiredState → `ActualState`, in one remote command per host |
//! | [`plan`] | (DesiredState, ActualState) → `Plan`; pure; `planfile` saves and checks plans |
//! | [`apply`] | Plan → `apply::Report`: schedule, plays, rollout, database tier (pure `database::plan`, then `exec`/`seed`), lock, typed `ApplyError`s with a `Stage` and hints |
//! | [`mysql`] | flavour/version, facts, replication statements and status parsing |
//! | [`verify`] | Inventory + open transports → `Health`: replication heartbeat, HAProxy state, HTTP(S) through the load balancer; each failing check a typed `VerifyFailure` with its hint |
//! | [`audit`], [`graph`] | Inventory (and, live, the hosts) → findings; → a drawing of the stack |
//! | [`backup`] | the `backups:` section → backups taken, listed and restored on the backup host (scripts `apply` installed) |
//! | [`event`] | what running stages tell the user: `Event`s sent to a `Reporter` |
//! | [`report`] | the only code that prints: progress, human plans and reports, JSON documents |
//! | [`host`], [`http`], [`shell`], [`secret`], [`error`] | shared values: host names, a bounded HTTP GET, quoted scripts, masked secrets, locations/hints/exit codes |
//! | [`confined`] | files on the controller from less trusted hands: read only when regular, unlinked and bounded; `render --out` written only as new files, never through a link |
//!
//! Dependencies point down the pipeline: `gather`, `apply`, `verify` and `audit` share what
//! runs on a host through `remote` (which knows none of them), `transport` does not know
//! `inventory`, `apply` sends
//! [`event::Event`]s without knowing `report`, and `report` reads `apply`'s results.
//!
//! `plan` is pure; only `gather`, `apply` and `verify` touch a [`transport::Transport`] (and
//! the backup commands in `cli`, which run the scripts `apply` installed; see [`backup`]).
//! Every script they send is built with [`shell::Script`]: values enter only as quoted words;
//! a file's `validate` and a handler's `run:` are the only commands taken from the playbook.

pub mod apply;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod confined;
pub mod error;
pub mod event;
pub mod gather;
pub mod graph;
pub mod host;
pub mod http;
pub mod inventory;
pub mod mysql;
pub mod plan;
pub mod remote;
pub mod render;
pub mod report;
pub mod secret;
pub mod shell;
pub mod transport;
pub mod verify;
