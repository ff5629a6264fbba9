//! The crate's error type: each variant says what failed and, where the user can act,
//! which right or host feature is missing.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A network that is not a private /24.
    #[error("`{text}` is not a usable network: {reason}")]
    BadSubnet {
        /// As given.
        text: String,
        /// Why not.
        reason: String,
    },
    /// The network asked for collides with the host's.
    #[error("the network {subnet} is in use on this host: it {with}")]
    SubnetBusy {
        /// The network.
        subnet: String,
        /// What it collides with.
        with: String,
    },
    /// Every candidate collides.
    #[error("every candidate network is in use on this host ({tried})")]
    NoFreeSubnet {
        /// Each candidate and its reason.
        tried: String,
    },
    /// An adapter name the host cannot take.
    #[error("`{name}` cannot name a TAP adapter: {reason}")]
    BadName {
        /// As given.
        name: String,
        /// Why not.
        reason: String,
    },
    /// The caller lacks a right the operation needs.
    #[error("{action}: the right {right} is missing ({detail})")]
    NoRight {
        /// The right, as the host names it (`CAP_NET_ADMIN`, `administrator`).
        right: String,
        /// What was being done.
        action: String,
        /// The host's own words.
        detail: String,
    },
    /// The host has no TAP support.
    #[error("{what}")]
    NoTapSupport {
        /// What is missing and what to do.
        what: String,
    },
    /// An interface of that name exists and is not a TAP adapter.
    #[error(
        "an interface named {name} exists and is not a TAP adapter ({kind}); choose another name"
    )]
    NotTap {
        /// The name.
        name: String,
        /// What it is.
        kind: String,
    },
    /// A host call failed.
    #[error("{op}: {source}")]
    Os {
        /// What was being done.
        op: String,
        /// The host's error.
        #[source]
        source: std::io::Error,
    },
    /// The host answered something this crate cannot read.
    #[error("{op}: unexpected answer from the host: {detail}")]
    Protocol {
        /// What was being done.
        op: String,
        /// What was wrong.
        detail: String,
    },
}
