//! Groups, tags and sites of a tenant: list (viewer), create and delete (operator).

use std::sync::Arc;

use drover_auth::tokens::Role;
use drover_store::entities::{device_groups, device_tags, sites};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, QueryOrder};
use uuid::Uuid;

use crate::audit::{self, Audit};
use crate::caller::Auth;
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiTags, NoContent};
use crate::state::ApiState;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Label {
    pub id: Uuid,
    pub name: String,
    /// Tags: a colour like `#3b82f6`; groups: a description.
    pub detail: Option<String>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewLabel {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    #[oai(validator(max_length = 500))]
    pub detail: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Site {
    pub id: Uuid,
    pub name: String,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewSite {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    #[oai(validator(max_length = 500))]
    pub address: Option<String>,
    #[oai(validator(minimum(value = "-90"), maximum(value = "90")))]
    pub latitude: Option<f64>,
    #[oai(validator(minimum(value = "-180"), maximum(value = "180")))]
    pub longitude: Option<f64>,
}

fn valid_colour(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[derive(Debug)]
pub struct CatalogApi;

#[OpenApi(prefix_path = "/api/tenants", tag = "ApiTags::Catalog")]
impl CatalogApi {
    /// Device groups.
    #[oai(
        path = "/:tenant_id/groups",
        method = "get",
        operation_id = "list_groups"
    )]
    async fn list_groups(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
    ) -> ApiResult<Json<Vec<Label>>> {
        let t = state.scope(&auth, tenant_id.0, Role::Viewer).await?;
        let tx = state.store.begin(t).await?;
        let rows = device_groups::Entity::find()
            .order_by_asc(device_groups::Column::Name)
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(Json(
            rows.into_iter()
                .map(|g| Label {
                    id: g.id,
                    name: g.name,
                    detail: g.description,
                })
                .collect(),
        ))
    }

    /// Creates a group (operator).
    #[oai(
        path = "/:tenant_id/groups",
        method = "post",
        operation_id = "create_group"
    )]
    async fn create_group(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<NewLabel>,
    ) -> ApiResult<Json<Label>> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let tx = state.store.begin(t).await?;
        let g = device_groups::ActiveModel {
            id: Set(Uuid::new_v4()),
            tenant_id: Set(t.0),
            name: Set(body.name.trim().to_owned()),
            description: Set(body.detail.clone()),
            created_at: Set(chrono::Utc::now()),
        }
        .insert(tx.conn())
        .await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "group_create").resource("group", g.id.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(Label {
            id: g.id,
            name: g.name,
            detail: g.description,
        }))
    }

    /// Deletes a group; its devices stay (operator).
    #[oai(
        path = "/:tenant_id/groups/:group_id",
        method = "delete",
        operation_id = "delete_group"
    )]
    async fn delete_group(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        group_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let tx = state.store.begin(t).await?;
        if device_groups::Entity::delete_by_id(group_id.0)
            .exec(tx.conn())
            .await?
            .rows_affected
            == 0
        {
            return Err(ApiError::not_found("group"));
        }
        audit::in_tx(
            &tx,
            Audit::by(&auth, "group_delete").resource("group", group_id.0.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::Done)
    }

    /// Device tags.
    #[oai(path = "/:tenant_id/tags", method = "get", operation_id = "list_tags")]
    async fn list_tags(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
    ) -> ApiResult<Json<Vec<Label>>> {
        let t = state.scope(&auth, tenant_id.0, Role::Viewer).await?;
        let tx = state.store.begin(t).await?;
        let rows = device_tags::Entity::find()
            .order_by_asc(device_tags::Column::Name)
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(Json(
            rows.into_iter()
                .map(|g| Label {
                    id: g.id,
                    name: g.name,
                    detail: g.color,
                })
                .collect(),
        ))
    }

    /// Creates a tag (operator); `detail` is its colour, `#rrggbb`.
    #[oai(
        path = "/:tenant_id/tags",
        method = "post",
        operation_id = "create_tag"
    )]
    async fn create_tag(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<NewLabel>,
    ) -> ApiResult<Json<Label>> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        if body.detail.as_deref().is_some_and(|c| !valid_colour(c)) {
            return Err(ApiError::invalid("a tag colour looks like #3b82f6"));
        }
        let tx = state.store.begin(t).await?;
        let g = device_tags::ActiveModel {
            id: Set(Uuid::new_v4()),
            tenant_id: Set(t.0),
            name: Set(body.name.trim().to_owned()),
            color: Set(body.detail.clone()),
            created_at: Set(chrono::Utc::now()),
        }
        .insert(tx.conn())
        .await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "tag_create").resource("tag", g.id.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(Label {
            id: g.id,
            name: g.name,
            detail: g.color,
        }))
    }

    /// Deletes a tag and removes it from its devices (operator).
    #[oai(
        path = "/:tenant_id/tags/:tag_id",
        method = "delete",
        operation_id = "delete_tag"
    )]
    async fn delete_tag(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        tag_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let tx = state.store.begin(t).await?;
        if device_tags::Entity::delete_by_id(tag_id.0)
            .exec(tx.conn())
            .await?
            .rows_affected
            == 0
        {
            return Err(ApiError::not_found("tag"));
        }
        audit::in_tx(
            &tx,
            Audit::by(&auth, "tag_delete").resource("tag", tag_id.0.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::Done)
    }

    /// Sites.
    #[oai(
        path = "/:tenant_id/sites",
        method = "get",
        operation_id = "list_sites"
    )]
    async fn list_sites(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
    ) -> ApiResult<Json<Vec<Site>>> {
        let t = state.scope(&auth, tenant_id.0, Role::Viewer).await?;
        let tx = state.store.begin(t).await?;
        let rows = sites::Entity::find()
            .order_by_asc(sites::Column::Name)
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(Json(
            rows.into_iter()
                .map(|s| Site {
                    id: s.id,
                    name: s.name,
                    address: s.address,
                    latitude: s.latitude,
                    longitude: s.longitude,
                })
                .collect(),
        ))
    }

    /// Creates a site (operator).
    #[oai(
        path = "/:tenant_id/sites",
        method = "post",
        operation_id = "create_site"
    )]
    async fn create_site(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<NewSite>,
    ) -> ApiResult<Json<Site>> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let now = chrono::Utc::now();
        let tx = state.store.begin(t).await?;
        let s = sites::ActiveModel {
            id: Set(Uuid::new_v4()),
            tenant_id: Set(t.0),
            name: Set(body.name.trim().to_owned()),
            address: Set(body.address.clone()),
            latitude: Set(body.latitude),
            longitude: Set(body.longitude),
            notes: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(tx.conn())
        .await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "site_create").resource("site", s.id.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(Site {
            id: s.id,
            name: s.name,
            address: s.address,
            latitude: s.latitude,
            longitude: s.longitude,
        }))
    }

    /// Deletes a site; its devices stay, without a site (operator).
    #[oai(
        path = "/:tenant_id/sites/:site_id",
        method = "delete",
        operation_id = "delete_site"
    )]
    async fn delete_site(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        site_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let tx = state.store.begin(t).await?;
        if sites::Entity::delete_by_id(site_id.0)
            .exec(tx.conn())
            .await?
            .rows_affected
            == 0
        {
            return Err(ApiError::not_found("site"));
        }
        audit::in_tx(
            &tx,
            Audit::by(&auth, "site_delete").resource("site", site_id.0.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::Done)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tag_colours_are_hex() {
        assert!(super::valid_colour("#3b82f6"));
        assert!(!super::valid_colour("red"));
        assert!(!super::valid_colour("#3b82f"));
    }
}
