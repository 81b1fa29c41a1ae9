//! Authorization that needs a call to another service, as pure parts: what the host dispatches
//! (`Call`), what came back (`Answer`), and the answers a request or a worker already has
//! (`Answers`). The host makes the call; the policy decides with its answer.
//!
//! - `introspection`: Oathkeeper's `oauth2_introspection` (RFC 7662);
//! - `ext_authz`: an APIRule v2 `extAuth` authorizer, as Envoy's HTTP `ext_authz` asks one.

pub mod ext_authz;
mod introspection;

pub use introspection::*;
