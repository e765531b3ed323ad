//! Who may do what: client credentials checked by the heads ([`credentials`], [`gate`]) and
//! the signatures heads and cluster servers put on their requests to each other ([`peer`]).
//! See `docs/security.md`.

pub mod credentials;
pub mod gate;
pub mod peer;

pub use credentials::{Credentials, CredentialsError, Principal};
pub use filegrid_proto::auth::Access;
pub use peer::{ClusterSecret, PeerSigner, PeerVerifier};
