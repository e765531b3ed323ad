//! FileGrid's Kubernetes operator: the `FileGrid` resource, pure builders of its children,
//! and the controller that applies them.

pub mod builders;
pub mod config;
pub mod crd;
pub mod crd_upgrade;
pub mod head_api;
pub mod install;
pub mod leadership;
pub mod metrics;
pub mod reconciler;
pub mod render;
pub mod rollout;
pub mod run;
pub mod scaling;
pub mod security;
pub mod status;
pub mod validate;
pub mod warnings;
pub mod zone;
