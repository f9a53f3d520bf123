//! Entity for the `users` table: people who log in (SRP verifier, legacy hash during upgrade).

use sea_orm::entity::prelude::*;

/// `Debug` is written by hand so verifiers and hashes never reach logs.
#[derive(Clone, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `None` only for `super_admin`.
    pub tenant_id: Option<Uuid>,
    pub email: String,
    pub name: Option<String>,
    /// `super_admin`, `tenant_admin`, `operator` or `viewer`.
    pub role: String,
    pub srp_salt: Option<Vec<u8>>,
    pub srp_verifier: Option<Vec<u8>>,
    pub secret_key_version: Option<i32>,
    pub secret_key_created_at: Option<DateTimeUtc>,
    pub legacy_password_hash: Option<String>,
    pub must_upgrade_auth: bool,
    pub is_active: bool,
    /// Tokens issued before this instant are rejected.
    pub tokens_valid_after: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("users::Model")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("srp", &self.srp_verifier.as_ref().map(|_| "<redacted>"))
            .field(
                "legacy_password_hash",
                &self.legacy_password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("must_upgrade_auth", &self.must_upgrade_auth)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
