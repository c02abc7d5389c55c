//! What exists on a host, in one place: foobar's own paths there ([`layout`]), the framing of
//! what every script prints ([`section`]: one [`Section`] enum and one reader, used by
//! gather, apply, verify and audit), the `OK`/`ERR` reply protocol of apply scripts
//! ([`protocol`]), and the scripts every stage shares: the lock's ([`lock`]), backups and
//! restore ([`backups`]), handlers ([`handlers`]) and HAProxy's runtime API ([`haproxy`]).
//!
//! In: values (paths, run ids, holders). Out: [`crate::shell::Script`]s and parsed lines.
//! It knows no stage: gather, apply, verify and audit depend on it, never the other way, and
//! when to lock stays the apply's policy.

pub mod backups;
pub mod handlers;
pub mod haproxy;
pub mod layout;
pub mod lock;
pub mod protocol;
pub mod section;
pub mod sh;

pub use protocol::{Reply, parse_reply};
pub use section::Section;
