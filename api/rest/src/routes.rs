//! The route groups of the API and the tags they appear under in the spec.

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod devices;
pub mod health;

use poem_openapi::{ApiResponse, Tags};

/// The answer of an action that returns nothing.
#[derive(Debug, ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// Sections of the spec.
#[derive(Debug, Tags)]
pub enum ApiTags {
    /// Login (SRP-6a), tokens, the caller's account.
    Auth,
    /// Tenants (super_admin).
    Tenants,
    /// Users and API keys of a tenant.
    Users,
    /// Devices, the fleet list, commands and metrics.
    Devices,
    /// Groups, tags and sites.
    Catalog,
    /// The audit log.
    Audit,
    /// Server-Sent Events.
    Events,
    /// Liveness and readiness.
    Health,
}
