//! Entity for the `tenant_data_keys` table: per-tenant data keys wrapped by the key-encryption key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_data_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i32,
    pub kek_id: String,
    /// Wrapped (encrypted) key material; useless without the KEK.
    pub wrapped_key: String,
    pub created_at: DateTimeUtc,
    pub rewrapped_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
